"""Owners and roles: nobody reaches another's thread through the API or /ask; tokens; limits."""

from __future__ import annotations

import json

import httpx
import pytest
from gradio_client import Client

from tests.test_api import sse_events

BOTH_BACKENDS = True  # every test that starts the app runs on SQLite and on Postgres (tests/conftest.py)

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
QUESTION = "How long can I return a faulty item?"


def chat(client: httpx.Client, url: str, body: dict) -> httpx.Response:
    return client.post(f"{url}/api/chat", json=body, timeout=30)


def test_a_public_visitor_sees_and_changes_only_their_own_threads(serve_glassbox):
    """Finding 3: any client could list, read, post into, rename and delete every thread."""
    url = serve_glassbox(auth_mode="public", admin_token=ADMIN_TOKEN).url
    alice, mallory = httpx.Client(), httpx.Client()
    mine = chat(alice, url, {"message": "My order is 4242."}).json()
    thread, run = mine["thread_id"], mine["run_id"]

    assert [t["id"] for t in alice.get(f"{url}/api/threads").json()["threads"]] == [thread]
    assert mallory.get(f"{url}/api/threads").json()["threads"] == []
    for response in (
        mallory.get(f"{url}/api/threads/{thread}"),
        mallory.get(f"{url}/api/runs/{run}"),
        mallory.get(f"{url}/api/runs", params={"thread_id": thread}),
        mallory.patch(f"{url}/api/threads/{thread}", json={"title": "pwned"}),
        mallory.delete(f"{url}/api/threads/{thread}", params={"hard": "true"}),
        chat(mallory, url, {"message": "What is my order?", "thread_id": thread}),
    ):
        assert response.status_code == 404, response.text
        assert "4242" not in response.text
    assert mallory.get(f"{url}/api/runs").json()["runs"] == []
    assert alice.get(f"{url}/api/threads/{thread}").json()["title"] == "My order is 4242."
    admin = httpx.get(f"{url}/api/threads", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    assert [t["id"] for t in admin["threads"]] == [thread]  # QA reviewers see everything


def test_the_visitor_cookie_cannot_be_forged(serve_glassbox):
    url = serve_glassbox(auth_mode="public").url
    alice = httpx.Client()
    chat(alice, url, {"message": "hello"})
    visitor, _, _ = alice.cookies["glassbox_visitor"].partition(".")
    forged = httpx.Client(cookies={"glassbox_visitor": f"{visitor}.{'0' * 32}"})
    assert forged.get(f"{url}/api/threads").json()["threads"] == []


def test_ask_cannot_reach_another_callers_thread(serve_glassbox, scripted_model):
    url = serve_glassbox(auth_mode="public").url
    thread = chat(httpx.Client(), url, {"message": "My order is 4242."}).json()["thread_id"]

    with pytest.raises(Exception, match="no conversation with that id"):
        Client(url, verbose=False).predict("What is my order?", thread, api_name="/ask")
    assert all("What is my order?" not in m.text for prompt in scripted_model.prompts for m in prompt)
    client = Client(url, verbose=False)  # one gradio_client session keeps its own threads
    client.predict("first", "my-thread", api_name="/ask")
    assert client.predict("second", "my-thread", api_name="/ask") == "OK."


def test_ask_refuses_thread_ids_that_are_not_ids(serve_glassbox):
    url = serve_glassbox().url
    client = Client(url, verbose=False)
    for bad in ("../../etc/passwd", "x" * 129):
        with pytest.raises(Exception, match="thread_id must be 1 to 128"):
            client.predict("hi", bad, api_name="/ask")


def test_private_mode_needs_a_token_and_only_the_admin_manages_tokens(serve_glassbox):
    url = serve_glassbox(auth_mode="private", admin_token=ADMIN_TOKEN).url
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    nobody = httpx.get(f"{url}/api/threads")
    assert nobody.status_code == 401 and "private" in nobody.json()["detail"]
    assert nobody.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{url}/api/threads", headers={"Authorization": "Bearer gbx_wrong"}).status_code == 401
    made = httpx.post(f"{url}/api/tokens", json={"name": "ci"}, headers=admin).json()
    program = {"Authorization": f"Bearer {made['token']}"}
    assert httpx.get(f"{url}/api/threads", headers=program).status_code == 200
    assert httpx.post(f"{url}/api/tokens", json={"name": "x"}, headers=program).status_code == 403
    assert made["token"] not in json.dumps(httpx.get(f"{url}/api/tokens", headers=admin).json())
    assert httpx.delete(f"{url}/api/tokens/{made['id']}", headers=admin).status_code == 200
    assert httpx.get(f"{url}/api/threads", headers=program).status_code == 401
    with pytest.raises(Exception, match="private"):
        Client(url, verbose=False).predict("hi", "", api_name="/ask")
    assert httpx.get(f"{url}/api/health").status_code == 200 and httpx.get(f"{url}/metrics").status_code == 200


def test_tokens_are_stored_only_as_hashes(serve_glassbox):
    running = serve_glassbox(auth_mode="private", admin_token=ADMIN_TOKEN)
    made = httpx.post(f"{running.url}/api/tokens", json={"name": "ci"},
                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    traces = running.glassbox.traces
    db = traces.connect()
    stored = repr([tuple(row) for row in db.execute("SELECT * FROM api_tokens").fetchall()])
    db.close()
    assert made["token"] not in stored and made["token"][4:] not in stored and len(stored) > 20
    if traces.path is not None:  # SQLite: nowhere in the file either
        assert made["token"].encode() not in traces.path.read_bytes()


def test_threads_come_a_page_at_a_time(serve_glassbox):
    url = serve_glassbox().url
    made = [sse_events(url, {"message": f"question {i}"})[-1]["thread_id"] for i in range(3)]

    first = httpx.get(f"{url}/api/threads", params={"limit": 2}).json()
    second = httpx.get(f"{url}/api/threads", params={"limit": 2, "offset": first["next_offset"]}).json()

    assert [t["id"] for t in first["threads"] + second["threads"]] == made[::-1]
    assert first["next_offset"] == 2 and second["next_offset"] is None


def test_oversized_and_malformed_bodies_and_ids_are_refused_without_echo(serve_glassbox):
    """Finding 8: a 10 MB body was accepted; a 1 MB id was echoed in a 1 MB 404."""
    url = serve_glassbox(max_upload_bytes=1_000_000).url  # one upload request: 10 files of that, in all
    huge = httpx.post(f"{url}/api/chat", content=b'{"message": "' + b"x" * 10_000_000 + b'"}',
                      headers={"content-type": "application/json"})
    assert huge.status_code == 413 and "MAX_BODY_BYTES" in huge.json()["detail"]
    latin1 = httpx.post(f"{url}/api/chat", content='{"message": "caf\xe9"}'.encode("latin-1"),
                        headers={"content-type": "application/json"})
    assert latin1.status_code == 422 and "UTF-8" in latin1.json()["detail"]
    long_id = httpx.get(f"{url}/api/threads/{'a' * 60_000}")
    assert long_id.status_code in (414, 422) and len(long_id.content) < 2_000
    bad_id = httpx.post(f"{url}/api/chat", json={"message": "hi", "thread_id": "../../etc/passwd"})
    assert bad_id.status_code == 422 and "etc/passwd" not in bad_id.text
    upload = httpx.post(f"{url}/gradio_api/upload", files={"files": ("big.txt", b"x" * 11_000_000)})
    assert upload.status_code == 413 and "MAX_UPLOAD_MB" in upload.text


@pytest.mark.parametrize("path", ["/api/chat", "/api/chat/stream"])
def test_a_lone_surrogate_in_a_message_is_stored_and_storing_goes_on(serve_glassbox, path):
    """Finding 1 through the API: the JSON escape \\ud800 once killed the trace writer."""
    running = serve_glassbox()
    url = running.url
    body = b'{"message": "hi \\ud800 there"}'
    response = httpx.post(f"{url}{path}", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 200
    runs = httpx.get(f"{url}/api/runs").json()["runs"]
    assert runs[0]["message"] == "hi \ufffd there" and runs[0]["status"] == "completed"
    after = httpx.post(f"{url}/api/chat", json={"message": "and then?"}, timeout=30).json()
    assert httpx.get(f"{url}/api/runs/{after['run_id']}").status_code == 200
    running.server.stop()
    restarted = serve_glassbox()
    assert len(httpx.get(f"{restarted.url}/api/runs").json()["runs"]) == 2


def test_a_lone_surrogate_through_ask_is_stored_too(serve_glassbox):
    url = serve_glassbox().url
    body = b'{"data": ["hi \\ud800 there", "t1", ""]}'  # gradio_client can't even encode one: raw HTTP
    call = httpx.post(f"{url}/gradio_api/call/ask", content=body, headers={"content-type": "application/json"})
    with httpx.stream("GET", f"{url}/gradio_api/call/ask/{call.json()['event_id']}", timeout=30) as stream:
        lines = list(stream.iter_lines())
    assert "event: complete" in lines and '["OK."]' in lines[-2]
    assert httpx.get(f"{url}/api/runs").json()["runs"][0]["message"] == "hi \ufffd there"
