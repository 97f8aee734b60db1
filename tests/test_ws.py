"""The chat over a WebSocket (/api/chat/ws): events and done, stop, approvals, tokens, pings, drops."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from app import build_app, build_glassbox
from chat.components import Components
from chat.config import Settings
from chat.tools import build_tools
from tests.conftest import Reply, in_memory_checkpointer
from tests.test_approvals import TICKET_CALL

QUESTION = "How long can I return a faulty item?"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
WAIT_S = 20.0  # generous: a frame later than this is a hang, not a slow machine
_receiver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ws-receive")


@pytest.fixture
def open_app(tmp_path, scripted_model, knowledge_base, tickets):
    """Build the real app around the scripted model as `serve_glassbox` does, and return a TestClient
    that runs it, lifespan and all, on one event loop of its own; settings go to Settings."""
    with ExitStack() as stack:

        def start(**settings: Any) -> TestClient:
            def load(_settings: Settings) -> Components:
                tools = build_tools(lambda _name: knowledge_base, tickets, top_k=1)
                return Components(scripted_model, "scripted", tools, knowledge_chunks=2, timings={"model": 0.0})

            glassbox = build_glassbox(Settings(state_dir=tmp_path / "state", **settings), load,
                                      in_memory_checkpointer())
            glassbox.service.start_warm_up()
            return stack.enter_context(TestClient(build_app(glassbox)))

        yield start


def receive(ws: WebSocketTestSession) -> dict[str, Any]:
    """The next frame; fail rather than hang when none comes (TestClient's own receive waits forever)."""
    return _receiver.submit(ws.receive_json).result(WAIT_S)


def frames_until(ws: WebSocketTestSession, last: str) -> list[dict[str, Any]]:
    """Every frame up to and including the first of type `last`, the server's pings left out."""
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] != last:
        frame = receive(ws)
        if frame["type"] != "ping":
            frames.append(frame)
    return frames


def wait_for_status(client: TestClient, run_id: str, status: str, headers: dict | None = None) -> dict:
    """The stored run once it has `status` (the store follows the stream a moment later)."""
    deadline = time.monotonic() + WAIT_S
    while (run := client.get(f"/api/runs/{run_id}", headers=headers).json()).get("status") != status:
        assert time.monotonic() < deadline, f"the run stayed {run.get('status')}"
        time.sleep(0.05)
    return run


def test_a_message_streams_its_events_then_done_and_the_next_continues_the_thread(open_app, scripted_model):
    scripted_model.replies = [Reply(tokens=["Within ", "45 days."]), Reply(tokens=["Still 45."])]
    client = open_app()

    with client.websocket_connect("/api/chat/ws") as ws:
        ws.send_json({"type": "message", "message": QUESTION})
        first = frames_until(ws, "done")
        ws.send_json({"type": "message", "message": "And after that?", "thread_id": first[-1]["thread_id"],
                      "events": ["token"]})
        second = frames_until(ws, "done")

    types = [frame["type"] for frame in first]
    assert types[:2] == ["run_queued", "run_start"] and types[-2:] == ["run_end", "done"]
    done = first[-1]
    assert done["status"] == "completed" and done["answer"] == "Within 45 days." and done["output_tokens"] == 2
    assert first[:-1] == client.get(f"/api/runs/{done['run_id']}").json()["events"]  # as SSE: as stored
    assert [frame["type"] for frame in second] == ["token", "done"]  # the same filter as SSE
    assert second[-1]["thread_id"] == done["thread_id"] and second[-1]["answer"] == "Still 45."
    assert QUESTION in " ".join(m.text for m in scripted_model.prompts[-1])  # the thread remembered


def test_stop_ends_the_run_cancelled_done_still_comes_and_one_run_at_a_time(open_app, scripted_model):
    scripted_model.replies = [Reply(tokens=["Partial ", "never"], hang_after=1), Reply(tokens=["Next."])]
    client = open_app()

    with client.websocket_connect("/api/chat/ws") as ws:
        ws.send_json({"type": "message", "message": QUESTION})
        thread_id = frames_until(ws, "token")[-1]["thread_id"]
        ws.send_json({"type": "message", "message": "Another question"})
        busy = frames_until(ws, "error")[-1]
        ws.send_json({"type": "stop"})
        stopped = frames_until(ws, "done")
        ws.send_json({"type": "message", "message": "Go on", "thread_id": thread_id})  # at once: the thread is free
        after = frames_until(ws, "done")[-1]

    assert "still running" in busy["message"] and "run_id" not in busy  # about the frame, not the run
    assert [frame["type"] for frame in stopped][-3:] == ["cancelled", "run_end", "done"]
    assert stopped[-1]["status"] == "cancelled" and stopped[-1]["answer"] == "Partial"
    assert after["status"] == "completed" and after["answer"] == "Next." and after["thread_id"] == thread_id


def test_a_paused_tool_call_is_approved_over_the_socket_and_runs(open_app, scripted_model, tickets):
    scripted_model.replies = [Reply(tool_calls=[TICKET_CALL]), Reply(tokens=["Ticket made."])]
    client = open_app()

    with client.websocket_connect("/api/chat/ws") as ws:
        ws.send_json({"type": "approve"})
        nothing_waits = receive(ws)
        ws.send_json({"type": "message", "message": "Please escalate", "events": ["tool_end", "token"]})
        asked = frames_until(ws, "approval_required")  # sent whatever the filter
        assert tickets.get("T-000001") is None  # nothing happens before the decision
        ws.send_json({"type": "approve", "reason": "looks right"})
        rest = frames_until(ws, "done")

    assert nothing_waits["type"] == "error" and "waiting for your approval" in nothing_waits["message"]
    assert asked[-1]["tool"] == "create_support_ticket"
    assert all(frame.get("tool") != "create_support_ticket" for frame in asked[:-1])  # it waits, not ran
    assert [frame["type"] for frame in rest] == ["approval_decided", "tool_end", "token", "done"]
    decided = rest[0]
    assert decided["approved"] is True and decided["by"] == "local" and decided["reason"] == "looks right"
    assert rest[1]["tool"] == "create_support_ticket" and not rest[1]["error"]
    assert tickets.get("T-000001")["summary"] == "PWNED by injected doc"
    assert rest[-1]["status"] == "completed" and rest[-1]["answer"] == "Ticket made."


def test_a_paused_tool_call_is_rejected_over_the_socket_and_nothing_is_written(open_app, scripted_model, tickets):
    scripted_model.replies = [Reply(tool_calls=[TICKET_CALL]), Reply(tokens=["Understood."])]
    client = open_app()

    with client.websocket_connect("/api/chat/ws") as ws:
        ws.send_json({"type": "message", "message": "Please escalate", "events": ["token"]})
        frames_until(ws, "approval_required")
        ws.send_json({"type": "reject", "reason": "not today"})
        rest = frames_until(ws, "done")
        ws.send_json({"type": "reject"})
        too_late = receive(ws)

    assert [frame["type"] for frame in rest] == ["approval_decided", "token", "done"]
    assert rest[0]["approved"] is False and rest[0]["reason"] == "not today"
    assert tickets.get("T-000001") is None
    assert rest[-1]["status"] == "completed" and rest[-1]["answer"] == "Understood."
    assert too_late["type"] == "error" and "waiting for your approval" in too_late["message"]


def test_token_mode_refuses_a_socket_without_a_token_and_keeps_owners_apart(open_app):
    client = open_app(auth_mode="private", admin_token=ADMIN_TOKEN)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    alice = client.post("/api/tokens", json={"name": "alice"}, headers=admin).json()["token"]
    bob = client.post("/api/tokens", json={"name": "bob"}, headers=admin).json()["token"]

    for path, headers in [("/api/chat/ws", {}), ("/api/chat/ws?token=gbx_not-a-token", {}),
                          ("/api/chat/ws", {"Authorization": "Bearer gbx_not-a-token"})]:
        with client.websocket_connect(path, headers=headers) as ws:
            said = receive(ws)
            with pytest.raises(WebSocketDisconnect) as closed:
                receive(ws)
        assert said["type"] == "error" and said["kind"] == "auth" and "token" in said["message"]
        assert (closed.value.code, closed.value.reason) == (4401, "unauthorized")

    with client.websocket_connect("/api/chat/ws", headers={"Authorization": f"Bearer {alice}"}) as ws:
        ws.send_json({"type": "message", "message": "My order is 4242."})
        mine = frames_until(ws, "done")[-1]
    with client.websocket_connect(f"/api/chat/ws?token={bob}") as ws:  # a browser's way to send it
        ws.send_json({"type": "message", "message": "What is my order?", "thread_id": mine["thread_id"]})
        refused = receive(ws)
        ws.send_json({"type": "message", "message": "Hello"})
        own = frames_until(ws, "done")[-1]

    assert mine["status"] == "completed"
    assert refused["type"] == "error" and "No thread with that id is yours to see" in refused["message"]
    assert "4242" not in json.dumps(refused)
    assert own["status"] == "completed" and own["thread_id"] != mine["thread_id"]
    threads = client.get("/api/threads", headers={"Authorization": f"Bearer {bob}"}).json()["threads"]
    assert [thread["id"] for thread in threads] == [own["thread_id"]]


def test_a_public_visitor_is_known_by_their_cookie_on_the_socket_too(open_app):
    client = open_app(auth_mode="public")
    thread = client.post("/api/chat", json={"message": "My order is 4242."}).json()["thread_id"]

    with client.websocket_connect("/api/chat/ws") as ws:  # the browser sends the visitor cookie along
        ws.send_json({"type": "message", "message": "What is my order?", "thread_id": thread})
        mine = frames_until(ws, "done")[-1]
    client.cookies.clear()  # another browser
    with client.websocket_connect("/api/chat/ws") as ws:
        ws.send_json({"type": "message", "message": "What is my order?", "thread_id": thread})
        refused = receive(ws)

    assert mine["status"] == "completed" and mine["thread_id"] == thread
    assert refused["type"] == "error" and "No thread with that id is yours to see" in refused["message"]


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        ("{not json", "not valid JSON"),
        ('["message", "hi"]', "type is one of: message, stop"),
        ('{"type": "shout"}', "type is one of: message, stop"),
        ('{"type": "message"}', "message is missing"),
        ('{"type": "message", "message": "   "}', "the message is empty"),
        ('{"type": "message", "message": "' + "x" * 4001 + '"}', "4,001 characters; the limit here is 4,000"),
        ('{"type": "message", "message": "hi", "events": ["tokens"]}', "events.0 must be one of"),
        ('{"type": "message", "message": "hi", "thread_id": "no-such-thread"}', "No thread with that id"),
        ('{"type": "stop"}', "Nothing is running"),
        ('{"type": "reject", "reason": "' + "x" * 501 + '"}', "reason is too long (at most 500 characters)"),
    ],
)
def test_a_bad_frame_gets_an_error_frame_and_the_socket_stays_usable(open_app, frame, says):
    client = open_app()

    with client.websocket_connect("/api/chat/ws") as ws:
        ws.send_text(frame)
        refused = receive(ws)
        ws.send_bytes(b'{"type": "ping"}')
        binary = receive(ws)
        ws.send_json({"type": "ping"})
        pong = receive(ws)
        ws.send_json({"type": "message", "message": QUESTION})
        done = frames_until(ws, "done")[-1]

    assert refused["type"] == "error" and refused["kind"] == "input" and says in refused["message"], refused
    assert "Traceback" not in refused["message"]
    assert binary["type"] == "error" and "JSON text" in binary["message"]
    assert pong == {"type": "pong"} and done["status"] == "completed"


def test_the_server_pings_and_closes_a_client_that_falls_silent(open_app):
    client = open_app(heartbeat_s=0.5)

    with client.websocket_connect("/api/chat/ws") as ws:
        for _ in range(3):  # answered, the pings go on past the 1.5 s a silent client is given
            assert receive(ws) == {"type": "ping"}
            ws.send_json({"type": "pong"})
        ws.send_json({"type": "ping"})
        assert frames_until(ws, "pong")[-1] == {"type": "pong"}
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:  # now silent: pings come until the server gives up
                assert receive(ws) == {"type": "ping"}

    assert (closed.value.code, closed.value.reason) == (4408, "idle")


def test_dropping_the_connection_mid_run_cancels_the_run(open_app, scripted_model):
    scripted_model.replies = [Reply(tokens=["Partial ", "never"], hang_after=1)]
    client = open_app()

    with client.websocket_connect("/api/chat/ws") as ws:
        ws.send_json({"type": "message", "message": QUESTION})
        token = frames_until(ws, "token")[-1]
    # Gone without a stop: the run must not hang on, holding its thread.

    run = wait_for_status(client, token["run_id"], "cancelled")
    assert run["answer"] == "Partial"
    threads = client.get("/api/threads").json()["threads"]
    assert client.delete(f"/api/threads/{threads[0]['id']}").status_code == 200  # 409 while a run streams


def test_the_socket_works_through_a_real_server(serve_glassbox, scripted_model):
    """Through uvicorn as deployed: a browser sees the close code, and a token in the query is taken."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    scripted_model.replies = [Reply(tokens=["Within ", "45 days."])]
    running = serve_glassbox(auth_mode="private", admin_token=ADMIN_TOKEN)
    url = running.url.replace("http://", "ws://") + "/api/chat/ws"

    with connect(url, open_timeout=WAIT_S) as ws:
        assert json.loads(ws.recv(WAIT_S))["kind"] == "auth"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(WAIT_S)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "unauthorized")

    with connect(f"{url}?token={ADMIN_TOKEN}", open_timeout=WAIT_S) as ws:
        ws.send(json.dumps({"type": "message", "message": QUESTION, "events": ["token"]}))
        frames = [json.loads(ws.recv(WAIT_S)) for _ in range(3)]
    assert [frame["type"] for frame in frames] == ["token", "token", "done"]
    assert frames[-1]["answer"] == "Within 45 days."


def test_a_team_run_streams_its_agents_over_the_socket(open_app, scripted_model):
    scripted_model.replies_for = {"specialist agents": [Reply(tokens=["One ", "answer."])]}
    client = open_app()
    with client.websocket_connect("/api/chat/ws") as ws:
        ws.send_json({"type": "message", "message": "How much is a refund of $120 - 15%?", "agent_graph": "team",
                      "events": ["agent_start", "handoff", "progress"]})
        frames = frames_until(ws, "done")
        ws.send_json({"type": "message", "message": "hi", "agent_graph": "swarm"})
        refused = receive(ws)
    started = [f["agent"] for f in frames if f["type"] == "agent_start"]
    assert started[0] == "coordinator" and started[-1] == "primary" and len(started) == 4
    assert {f["type"] for f in frames} == {"agent_start", "handoff", "progress", "done"}
    assert frames[-1]["answer"] == "One answer." and frames[-1]["first_token_agent"] in ("knowledge", "policy")
    assert refused["type"] == "error" and "agent_graph" in refused["message"]
