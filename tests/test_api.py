"""The HTTP API over a real server: SSE chat, threads, runs, health, restarts and bad input."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.conftest import Reply

BOTH_BACKENDS = True  # every test that starts the app runs on SQLite and on Postgres (tests/conftest.py)

QUESTION = "How long can I return a faulty item?"


def sse_events(url: str, body: dict, timeout: float = 30) -> list[dict]:
    """POST to /api/chat/stream and return every `data:` object, in order."""
    events = []
    with httpx.stream("POST", f"{url}/api/chat/stream", json=body, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    return events


def test_stream_sends_every_event_then_done(serve_glassbox, scripted_model):
    scripted_model.replies = [Reply(tokens=["Within ", "45 days."])]
    url = serve_glassbox().url

    events = sse_events(url, {"message": QUESTION})

    types = [e["type"] for e in events]
    assert types[:2] == ["run_queued", "run_start"] and types[-1] == "done"
    assert types.index("retrieval") < types.index("token") and types[-2] == "run_end"
    done = events[-1]
    # One vocabulary: every streamed event is as stored (seq, ts, span ids and all); done closes the stream.
    stored = httpx.get(f"{url}/api/runs/{done['run_id']}").json()["events"]
    assert events[:-1] == stored
    assert done["answer"] == "Within 45 days." and done["status"] == "completed"
    assert done["ttft_s"] > 0 and done["latency_s"] >= done["ttft_s"] and done["output_tokens"] == 2
    assert all(e["run_id"] == done["run_id"] and e["thread_id"] == done["thread_id"] for e in events)


def test_token_only_level_streams_tokens_and_done(serve_glassbox, scripted_model):
    scripted_model.replies = [Reply(tokens=["Within ", "45 days."], reasoning=["hm"])]
    url = serve_glassbox().url

    events = sse_events(url, {"message": QUESTION, "events": ["token"]})

    assert [e["type"] for e in events] == ["token", "token", "done"]


def test_a_thread_continues_and_its_messages_and_runs_read_back(serve_glassbox, scripted_model):
    url = serve_glassbox().url
    first = sse_events(url, {"message": "My order is 77."})[-1]
    second = sse_events(url, {"message": "What is my order?", "thread_id": first["thread_id"]})[-1]

    assert "My order is 77." in " ".join(m.text for m in scripted_model.prompts[-1])
    thread = httpx.get(f"{url}/api/threads/{first['thread_id']}").json()
    assert thread["title"] == "My order is 77."
    assert [m["content"] for m in thread["messages"]] == ["My order is 77.", "OK.", "What is my order?", "OK."]
    runs = httpx.get(f"{url}/api/runs", params={"thread_id": first["thread_id"]}).json()["runs"]
    assert [r["id"] for r in runs] == [second["run_id"], first["run_id"]]
    run = httpx.get(f"{url}/api/runs/{second['run_id']}").json()
    assert run["status"] == "completed" and run["model"] == "scripted" and run["output_tokens"] == 1
    assert [e["type"] for e in run["events"]][0] == "run_queued" and run["events"][-1]["type"] == "run_end"


def test_heartbeats_flow_while_the_model_is_slow(serve_glassbox, scripted_model):
    scripted_model.replies = [Reply(tokens=["Slow ", "answer."], delay_s=0.6)]
    url = serve_glassbox(heartbeat_s=0.2).url

    types = [e["type"] for e in sse_events(url, {"message": QUESTION, "events": ["token"]})]

    assert types.count("heartbeat") >= 2 and types[-1] == "done"
    assert types.index("heartbeat") < types.index("token")


def test_a_client_that_disconnects_cancels_the_run_and_it_is_stored_cancelled(serve_glassbox, scripted_model):
    scripted_model.replies = [Reply(tokens=[f"w{i} " for i in range(300)], delay_s=0.02)]
    running = serve_glassbox()
    url = running.url
    with httpx.stream("POST", f"{url}/api/chat/stream", json={"message": QUESTION, "events": ["token"]}) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and json.loads(line[6:])["type"] == "token":
                run_id = json.loads(line[6:])["run_id"]
                break
    closed = time.monotonic()
    while httpx.get(f"{url}/api/runs/{run_id}").json()["status"] != "cancelled":
        assert time.monotonic() - closed < 1.0, "the run was not cancelled within a second"
        time.sleep(0.02)
    chunks_then = scripted_model.chunks_sent
    run = httpx.get(f"{url}/api/runs/{run_id}").json()

    assert run["answer"].startswith("w0") and run["events"][-1]["type"] == "run_end"
    time.sleep(0.2)
    assert scripted_model.chunks_sent == chunks_then < 300  # the model stopped
    assert httpx.get(f"{url}/metrics").text.count("agent_active_streams 0.0") == 1


def test_restart_keeps_threads_runs_and_events(serve_glassbox):
    first = serve_glassbox()
    done = sse_events(first.url, {"message": QUESTION})[-1]
    first.server.stop()

    second = serve_glassbox()
    threads = httpx.get(f"{second.url}/api/threads").json()["threads"]
    assert [t["id"] for t in threads] == [done["thread_id"]]
    run = httpx.get(f"{second.url}/api/runs/{done['run_id']}").json()
    assert run["status"] == "completed" and run["answer"] == "OK." and len(run["events"]) >= 8
    again = sse_events(second.url, {"message": "And after a restart?", "thread_id": done["thread_id"]})
    assert again[-1]["type"] == "done"


def test_a_run_cut_off_by_a_crash_is_interrupted_after_restart(serve_glassbox, scripted_model, trace_database):
    scripted_model.replies = [Reply(tokens=["Partial ", "answer ", "never ", "finished"], hang_after=2)]
    first = serve_glassbox(replica_timeout_s=3.0)
    with httpx.stream("POST", f"{first.url}/api/chat/stream", json={"message": QUESTION}) as response:
        for line in response.iter_lines():
            if '"type": "token"' in line and "answer" in line:
                run_id = json.loads(line[6:])["run_id"]
                first.glassbox.traces.flush()
                # A crash here: the process dies mid-run, so nothing more of it reaches the disk.
                first.glassbox.service.listeners.remove(first.glassbox.traces.record)
                break
    second = serve_glassbox(replica_timeout_s=3.0)
    run = httpx.get(f"{second.url}/api/runs/{run_id}").json()
    if trace_database:  # Postgres: replicas share it, and the first is still alive: its run is its own
        assert run["status"] == "in_progress"
        first.server.stop()  # now it is gone: once it has been silent REPLICA_TIMEOUT_S, the other takes over
        for _ in range(100):
            run = httpx.get(f"{second.url}/api/runs/{run_id}").json()
            if run["status"] != "in_progress":
                break
            time.sleep(0.1)
    assert run["status"] == "interrupted" and run["answer"] == "Partial answer"
    assert [e["type"] for e in run["events"]][-2:] == ["token", "token"]  # what was written stays


def test_concurrent_streams_store_every_event_in_order(serve_glassbox, scripted_model):
    scripted_model.default = Reply(tokens=[f"t{i} " for i in range(20)], delay_s=0.005)
    url = serve_glassbox().url
    results: dict[int, list[dict]] = {}

    def client(index: int) -> None:
        results[index] = sse_events(url, {"message": f"question {index}"})

    threads = [threading.Thread(target=client, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for events in results.values():
        done = events[-1]
        stored = httpx.get(f"{url}/api/runs/{done['run_id']}").json()["events"]
        assert [e["text"] for e in stored if e["type"] == "token"] == [f"t{i} " for i in range(20)]
        assert {e["run_id"] for e in stored} == {done["run_id"]}
        streamed = [e["type"] for e in events]
        assert [e["type"] for e in stored] == streamed[:-1]


def test_chat_answers_as_one_json_object(serve_glassbox, scripted_model):
    scripted_model.replies = [Reply(tokens=["45 days."]), Reply(tokens=["Half ", "never"], fail_after=1)]
    url = serve_glassbox().url

    ok = httpx.post(f"{url}/api/chat", json={"message": QUESTION})
    failed = httpx.post(f"{url}/api/chat", json={"message": QUESTION})

    assert ok.status_code == 200 and ok.json()["answer"] == "45 days." and ok.json()["run_id"]
    assert ok.json()["ttft_s"] is not None and ok.json()["thread_id"]
    assert failed.status_code == 502 and "The model failed mid-answer" in failed.json()["error"]
    assert failed.json()["answer"] == "Half" and failed.json()["status"] == "failed"


@pytest.mark.parametrize(
    ("request_kwargs", "status", "says"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "not valid JSON"),
        ({"json": {}}, 422, "message is missing"),
        ({"json": {"message": "   "}}, 422, "empty"),
        ({"json": {"message": "x" * 4001}}, 413, "4,001 characters; the limit here is 4,000"),
        ({"json": {"message": "hi", "thread_id": "no-such-thread"}}, 404, "No thread with that id is yours to see"),
        ({"json": {"message": "hi", "events": ["tokens"]}}, 422, "events.0 must be one of"),
    ],
)
def test_bad_chat_requests_get_readable_4xx(serve_glassbox, request_kwargs, status, says):
    url = serve_glassbox().url
    for path in ("/api/chat", "/api/chat/stream"):
        response = httpx.post(f"{url}{path}", **request_kwargs)
        assert response.status_code == status, response.text
        assert says in response.json()["detail"] and "Traceback" not in response.text


PYDANTIC_WORDS = ("should", "Field required", "Value error", "pattern", "Extra inputs", "valid integer", "^")


@pytest.mark.parametrize(("path", "says"), [
    ("/api/runs/%00", "run_id must be an id: letters, digits, - and _, at most 128"),
    ("/api/runs/compare?a=x&b=%27", "b must be an id"),
    ("/api/runs?min_ttft_s=nan", "min_ttft_s must be a finite number"),
    ("/api/runs?min_latency_s=-1", "min_latency_s must be at least 0"),
    ("/api/runs?since=yesterday", "since must be an ISO 8601 date or time"),
    ("/api/runs?limit=1e9", "limit must be a whole number"),
    ("/api/runs?order=%3Cscript%3E", "order must be one of 'newest'"),
    ("/api/runs?colour=red", "Unknown query parameter 'colour'"),
    ("/api/kb/%2e%2e/documents", "name must be a knowledge base's name"),
])
def test_a_bad_parameter_gets_a_422_in_our_words(serve_glassbox, path, says):
    response = httpx.get(f"{serve_glassbox().url}{path}")

    assert response.status_code == 422 and says in response.json()["detail"], response.text
    assert not any(word in response.text for word in PYDANTIC_WORDS), response.text


def test_unknown_threads_and_runs_are_404(serve_glassbox):
    url = serve_glassbox().url
    for response in (
        httpx.get(f"{url}/api/threads/nope"),
        httpx.delete(f"{url}/api/threads/nope"),
        httpx.get(f"{url}/api/runs/nope"),
        httpx.get(f"{url}/api/runs", params={"thread_id": "nope"}),
    ):
        assert response.status_code == 404 and "No " in response.json()["detail"]
    assert httpx.get(f"{url}/api/runs", params={"limit": 0}).status_code == 422


def test_delete_is_soft_unless_hard(serve_glassbox):
    running = serve_glassbox()
    url = running.url
    one = sse_events(url, {"message": "first"})[-1]
    two = sse_events(url, {"message": "second"})[-1]

    assert httpx.patch(f"{url}/api/threads/{one['thread_id']}", json={"title": "Renamed"}).json()["title"] == "Renamed"
    assert httpx.delete(f"{url}/api/threads/{one['thread_id']}").json() == {
        "id": one["thread_id"], "deleted": True, "hard": False}
    assert [t["id"] for t in httpx.get(f"{url}/api/threads").json()["threads"]] == [two["thread_id"]]
    assert httpx.get(f"{url}/api/runs/{one['run_id']}").status_code == 200  # soft: rows kept
    assert httpx.delete(f"{url}/api/threads/{two['thread_id']}", params={"hard": "true"}).status_code == 200
    assert httpx.get(f"{url}/api/runs/{two['run_id']}").status_code == 404


def test_health_prewarm_and_docs(serve_glassbox):
    url = serve_glassbox(load_delay_s=0.5).url

    warm = httpx.get(f"{url}/api/prewarm", timeout=10).json()
    health = httpx.get(f"{url}/api/health").json()

    assert warm["ready"] is True and warm["model"] == "scripted" and "model" in warm["load_timings_s"]
    assert warm["ready_after_s"] >= 0.5
    assert health["status"] == "ready" and health["chunks"] == 2 and health["uptime_s"] > 0
    assert httpx.get(f"{url}/docs").status_code == 200
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    assert {"/api/chat/stream", "/api/chat", "/api/threads", "/api/runs/{run_id}", "/api/health"} <= set(paths)


def test_a_failed_run_streams_its_error_and_run_end_then_done(serve_glassbox, scripted_model):
    scripted_model.replies = [Reply(tokens=["Within ", "45"], fail_after=1), Reply(tokens=["No"], fail_after=0)]
    url = serve_glassbox().url

    events = sse_events(url, {"message": QUESTION, "events": ["token"]})

    assert [e["type"] for e in events] == ["token", "error", "done"]  # error whatever the filter; done last
    done = events[-1]
    assert done["status"] == "failed" and done["answer"] == "Within"
    assert done["error"] == events[1]["message"] and done["error_kind"] == events[1]["kind"]
    everything = sse_events(url, {"message": QUESTION})
    assert [e["type"] for e in everything][-3:] == ["error", "run_end", "done"]
