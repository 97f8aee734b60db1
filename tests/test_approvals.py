"""Side-effecting tools ask first: the run pauses (LangGraph interrupt()) until Approve or Reject."""

from __future__ import annotations

import asyncio

from langchain_core.messages import HumanMessage, ToolMessage

from chat.approvals import Approvals
from tests.conftest import Reply

TICKET_CALL = {"name": "create_support_ticket", "args": {"summary": "PWNED by injected doc", "severity": "urgent"}}


async def run_until_paused(service, message: str, thread: str):
    """Start a run; return (the events so far, the task collecting the rest) once it pauses."""
    events: list = []

    async def collect():
        async for event in service.stream(message, thread):
            events.append(event)

    task = asyncio.create_task(collect())
    for _ in range(200):
        if any(e.type == "approval_required" for e in events):
            return events, task
        await asyncio.sleep(0.01)
    raise AssertionError(f"the run never paused: {[e.type for e in events]}")


async def test_a_ticket_waits_for_approval_and_runs_once_approved(service_with_memory, scripted_model, tickets):
    """Finding 5: a model tool call to create_support_ticket once ran with no confirmation."""
    scripted_model.replies = [Reply(tool_calls=[TICKET_CALL]), Reply(tokens=["Ticket made."])]
    service = service_with_memory()

    events, task = await run_until_paused(service, "Please escalate", "t1")
    await asyncio.sleep(0.2)  # the person takes a moment
    asked = events[-1]
    assert asked.tool == "create_support_ticket" and asked.input["severity"] == "urgent"
    assert tickets.get("T-000001") is None  # nothing happened yet
    assert service.approvals.pending(asked.run_id) == asked
    assert service.approvals.pending_in_thread("t1") == asked

    assert service.approvals.decide(asked.run_id, True, by="user")
    await task

    types = [e.type for e in events]
    assert types.index("approval_required") < types.index("approval_decided") < types.index("run_end")
    decided = next(e for e in events if e.type == "approval_decided")
    assert decided.approved and decided.by == "user" and decided.waited_s >= 0
    assert tickets.get("T-000001")["summary"] == "PWNED by injected doc"
    assert [e.tool for e in events if e.type == "tool_start"].count("create_support_ticket") == 1
    assert events[-1].status == "completed" and events[-1].answer == "Ticket made."
    end = events[-1]  # the person's wait is reported, not counted as the system's time
    # The wait is timed from when the run paused: with a saver that writes over the network (Postgres)
    # that is a little after the request was seen, so less than the test's own 0.2 s.
    assert end.approval_wait_s == decided.waited_s > 0 and end.ttft_s < end.approval_wait_s
    assert end.latency_s + end.approval_wait_s <= end.at - events[0].at + 0.001


async def test_a_rejection_is_shown_to_the_model_and_nothing_is_written(service_with_memory, scripted_model, tickets):
    scripted_model.replies = [Reply(tool_calls=[TICKET_CALL]), Reply(tokens=["Understood."])]
    service = service_with_memory()

    events, task = await run_until_paused(service, "Please escalate", "t1")
    service.approvals.decide(events[-1].run_id, False, by="user", reason="not needed")
    await task

    assert tickets.get("T-000001") is None
    tool_end = next(e for e in events if e.type == "tool_end" and e.tool == "create_support_ticket")
    assert "rejected" in tool_end.error and "not needed" in tool_end.error
    told = [m for m in scripted_model.prompts[-1] if isinstance(m, ToolMessage)]
    assert told and "rejected this action (not needed)" in told[-1].text
    assert events[-1].status == "completed"


async def test_no_decision_in_time_is_a_rejection(service_with_memory, scripted_model, tickets):
    scripted_model.replies = [Reply(tool_calls=[TICKET_CALL]), Reply(tokens=["OK."])]
    service = service_with_memory(approval_timeout_s=0.2)

    events = [e async for e in service.stream("Please escalate", "t1")]

    decided = next(e for e in events if e.type == "approval_decided")
    assert not decided.approved and decided.by == "timeout" and "APPROVAL_TIMEOUT_S" in decided.reason
    assert tickets.get("T-000001") is None and events[-1].status == "completed"


async def test_stopping_a_paused_run_leaves_a_valid_memory(service_with_memory, scripted_model, tickets):
    scripted_model.replies = [Reply(tool_calls=[TICKET_CALL]), Reply(tokens=["Next answer."])]
    service = service_with_memory()

    events, task = await run_until_paused(service, "Please escalate", "t1")
    assert service.cancel("t1")
    await task
    assert events[-1].status == "cancelled" and tickets.get("T-000001") is None
    assert not service.approvals.pending(events[-1].run_id)

    after = [e async for e in service.stream("Anything else?", "t1")]
    assert after[-1].status == "completed"
    prompt = scripted_model.prompts[-1]
    calls = {c["id"] for m in prompt for c in getattr(m, "tool_calls", [])}
    answered = {m.tool_call_id for m in prompt if isinstance(m, ToolMessage)}
    assert calls <= answered  # every tool call in the history has its answer
    assert isinstance(prompt[-1], HumanMessage)


def test_approvals_answer_only_waiting_runs():
    approvals = Approvals()
    assert not approvals.decide("nope", True, by="user")
    assert approvals.pending("nope") is None and approvals.pending_in_thread("t") is None


def test_the_api_streams_the_pause_and_only_the_owner_may_decide(serve_glassbox, scripted_model, tickets):
    import json
    import threading
    import time

    import httpx

    scripted_model.replies = [Reply(tool_calls=[TICKET_CALL]), Reply(tokens=["Done."])]
    url = serve_glassbox(auth_mode="public").url
    owner, stranger = httpx.Client(), httpx.Client()
    events: list[dict] = []
    paused = threading.Event()

    def listen() -> None:  # a token-only client still gets the pause
        body = {"message": "Please escalate", "events": ["token"]}
        with owner.stream("POST", f"{url}/api/chat/stream", json=body, timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if events[-1]["type"] == "approval_required":
                        paused.set()

    listener = threading.Thread(target=listen)
    listener.start()
    assert paused.wait(15)
    run_id = events[-1]["run_id"]
    deadline = time.monotonic() + 5  # the store follows the stream a moment later (only `done` waits for it)
    while owner.get(f"{url}/api/runs/{run_id}").json().get("status") != "awaiting_approval":
        assert time.monotonic() < deadline, "the run was never stored as awaiting approval"
        time.sleep(0.02)

    assert stranger.post(f"{url}/api/runs/{run_id}/approve").status_code == 404
    assert owner.post(f"{url}/api/runs/{run_id}/reject", json={"reason": "not today"}).status_code == 200
    listener.join(15)

    assert [e["type"] for e in events] == ["approval_required", "approval_decided", "token", "done"]
    assert events[1]["approved"] is False and events[1]["reason"] == "not today"
    assert tickets.get("T-000001") is None
    assert owner.post(f"{url}/api/runs/{run_id}/approve").status_code == 404  # nothing waits now
    stored = [e["type"] for e in owner.get(f"{url}/api/runs/{run_id}").json()["events"]]
    assert stored.index("approval_required") < stored.index("approval_decided")  # the pause, in the trace


async def test_a_decision_sent_as_soon_as_the_request_is_seen_is_not_lost():
    """A reader sees approval_required while the graph is still stopping; deciding then once waited
    out APPROVAL_TIMEOUT_S (seen in CI)."""
    from chat.approvals import Approvals
    from chat.events import ApprovalRequired

    approvals = Approvals(timeout_s=5)
    request = ApprovalRequired(run_id="r1", thread_id="t1", at=0.0, call_id="c1", tool="create_support_ticket", input={})
    approvals.expect(request)  # announced: the service does this as it emits the event
    assert approvals.decide("r1", False, by="user", reason="not needed")  # before anyone waits
    decision = await asyncio.wait_for(approvals.wait(request), 1)
    assert decision == {"approved": False, "by": "user", "reason": "not needed"}
    assert approvals.pending("r1") is None
