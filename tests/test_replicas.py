"""Replicas on one Postgres database: a conversation moves between them, a thread runs once at a time
across them, and a replica killed mid-answer leaves its run interrupted while the others serve on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from bench.run import free_port
from tests.conftest import Reply, fresh_database

REPO = Path(__file__).resolve().parent.parent
QUESTION = "How long can I return a faulty item?"


@pytest.fixture
def shared(postgres_server) -> str:
    return fresh_database(postgres_server)


def chat(url: str, message: str, thread_id: str | None = None) -> httpx.Response:
    return httpx.post(f"{url}/api/chat", json={"message": message, "thread_id": thread_id}, timeout=60)


def test_a_conversation_moves_between_replicas_and_each_run_is_stored_once(serve_glassbox, scripted_model, shared):
    scripted_model.replies = [Reply(tokens=["Within 45 days."]), Reply(tokens=["Yes, unopened."])]
    first, second = (serve_glassbox(database_url=shared).url for _ in range(2))
    one = chat(first, QUESTION).json()
    two = chat(second, "And headphones?", one["thread_id"]).json()

    assert (one["status"], two["status"], two["thread_id"]) == ("completed", "completed", one["thread_id"])
    for url in (first, second):  # either replica reads the whole conversation, each run once
        runs = httpx.get(f"{url}/api/runs", params={"thread_id": one["thread_id"]}).json()["runs"]
        assert sorted(run["id"] for run in runs) == sorted([one["run_id"], two["run_id"]])
        messages = httpx.get(f"{url}/api/threads/{one['thread_id']}").json()["messages"]
        assert [m["content"] for m in messages if m["role"] == "user"] == [QUESTION, "And headphones?"]


def test_one_thread_runs_once_at_a_time_across_replicas(serve_glassbox, scripted_model, shared):
    scripted_model.replies = [Reply(tokens=["Ready."]), Reply(tokens=[f"w{i} " for i in range(20)], delay_s=0.1)]
    first, second = (serve_glassbox(database_url=shared).url for _ in range(2))
    thread_id = chat(first, QUESTION).json()["thread_id"]
    answers: dict[str, httpx.Response] = {}
    slow = threading.Thread(target=lambda: answers.setdefault("first", chat(first, "Tell me slowly.", thread_id)))
    slow.start()
    for _ in range(100):  # the slow answer is streaming on the first replica
        if httpx.get(f"{first}/api/runs", params={"status": "in_progress"}).json()["runs"]:
            break
        time.sleep(0.05)
    answers["second"] = chat(second, "Me too!", thread_id)
    slow.join(30)

    assert answers["second"].status_code == 409 and "still streaming" in answers["second"].json()["detail"]
    assert answers["first"].json()["status"] == "completed"
    runs = httpx.get(f"{second}/api/runs", params={"thread_id": thread_id}).json()["runs"]
    assert len(runs) == 2  # the first question and the slow one: "Me too!" never ran
    assert chat(second, "Now?", thread_id).json()["status"] == "completed"  # its lease is free again


def test_a_replica_killed_mid_answer_leaves_its_run_interrupted_and_the_other_serves_on(
        serve_glassbox, scripted_model, shared, tmp_path):
    from bench.scripted_openai import Script, ScriptedServer

    with ScriptedServer() as model:
        model.enqueue(Script(reply=" ".join(f"word{i}" for i in range(200)), token_interval_s=0.2))
        port = free_port()
        env = {**os.environ, "DATABASE_URL": shared, "APP_STATE_DIR": str(tmp_path / "killed"),
               "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "OPENAI_BASE_URL": model.base_url,
               "OPENAI_MODEL": "scripted", "LLM_PROVIDER": "openai", "REPLICA_TIMEOUT_S": "2"}
        doomed = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            killed_url = f"http://127.0.0.1:{port}"
            for _ in range(600):
                try:
                    if httpx.get(f"{killed_url}/api/prewarm", timeout=60).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            survivor = serve_glassbox(database_url=shared, replica_timeout_s=2.0).url
            with httpx.stream("POST", f"{killed_url}/api/chat/stream", json={"message": QUESTION},
                              timeout=60) as response:
                for line in response.iter_lines():
                    event = json.loads(line[6:]) if line.startswith("data: ") else {}
                    if event.get("type") == "token":
                        run_id, thread_id = event["run_id"], event["thread_id"]
                        time.sleep(0.5)  # a few more tokens reach the store
                        os.killpg(doomed.pid, signal.SIGKILL)  # kill -9, mid-answer
                        break
        finally:
            if doomed.poll() is None:
                os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait(10)

    served = chat(survivor, "Still there?").json()  # the survivor serves on meanwhile
    assert served["status"] == "completed"
    for _ in range(100):  # once the killed replica has been silent REPLICA_TIMEOUT_S, its run is over
        run = httpx.get(f"{survivor}/api/runs/{run_id}").json()
        if run["status"] != "in_progress":
            break
        time.sleep(0.1)
    assert run["status"] == "interrupted" and run["answer"].startswith("word0")
    assert httpx.get(f"{survivor}/api/runs/{served['run_id']}").json()["status"] == "completed"  # untouched
    again = chat(survivor, "Where were we?", thread_id).json()  # the dead replica's lease is free
    assert again["status"] == "completed" and again["thread_id"] == thread_id


def test_every_replicas_charts_show_the_whole_fleet_labelled_by_replica(serve_glassbox, scripted_model, shared):
    from app import show_the_fleet

    first, second = (serve_glassbox(database_url=shared) for _ in range(2))
    for running, message in ((first, "On the first?"), (second, "On the second?")):
        assert chat(running.url, message).json()["status"] == "completed"
    assert show_the_fleet(first.glassbox)  # what the replica's heartbeat does every few seconds
    frame = first.glassbox.table.frame()
    assert sorted(frame["question"]) == ["On the first?", "On the second?"]
    labels = dict(zip(frame["question"], frame["replica"], strict=True))
    assert first.glassbox.replicas.id[:6] in labels["On the first?"]  # both on one address here: told apart
    assert second.glassbox.replicas.id[:6] in labels["On the second?"]
    assert not show_the_fleet(first.glassbox)  # nothing new: the charts are not redrawn


def test_a_visitor_is_the_same_visitor_on_every_replica(serve_glassbox, scripted_model, shared):
    """Public mode: the key that signs visitor cookies (and encrypts the page's thread list) is shared."""
    first, second = (serve_glassbox(database_url=shared, auth_mode="public").url for _ in range(2))
    with httpx.Client() as visitor, httpx.Client() as stranger:  # cookies are per host, not per port
        thread_id = visitor.post(f"{first}/api/chat", json={"message": QUESTION}, timeout=60).json()["thread_id"]
        assert [t["id"] for t in visitor.get(f"{second}/api/threads").json()["threads"]] == [thread_id]
        assert stranger.get(f"{second}/api/threads").json()["threads"] == []
