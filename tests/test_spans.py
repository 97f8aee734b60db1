"""Spans: every event has its place (seq, wall-clock time, span), and a run's events make one tree,
live or stored before span ids existed."""

from __future__ import annotations

import dataclasses
import time

import httpx

from chat.events import Event, event_from_dict
from chat.spans import span_tree
from tests.conftest import Reply, approving, in_memory_checkpointer


async def ticket_run(make_service, scripted_model) -> list[Event]:
    """retrieve → agent (asks for a ticket) → tools (approved) → agent (answers)."""
    scripted_model.replies = [
        Reply(tool_calls=[{"name": "create_support_ticket", "args": {"summary": "Kettle broken", "severity": "high"}}]),
        Reply(tokens=["Ticket ", "opened."], reasoning=["A person should look."]),
    ]
    return await approving(make_service(open_checkpointer=in_memory_checkpointer()), "I want a human")


async def test_every_event_has_its_place_in_the_run(make_service, scripted_model) -> None:
    before = time.time_ns()
    events = await ticket_run(make_service, scripted_model)

    assert [e.seq for e in events] == list(range(len(events)))
    assert before <= events[0].ts <= events[-1].ts <= time.time_ns()
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    root = events[0].span_id
    assert len(root) == 16 and events[0].parent_span_id == ""
    assert all(e.span_id == root for e in events if e.type in ("run_queued", "run_start", "grounding", "run_end"))

    nodes = [e for e in events if e.type in ("node_start", "node_end")]
    # The tools node runs twice: interrupted to ask for approval, then again once approved.
    assert [e.node for e in nodes if e.type == "node_start"] == ["retrieve", "agent", "tools", "tools", "agent"]
    for start in (e for e in nodes if e.type == "node_start"):  # each node's start and end share its span
        end = next(e for e in nodes if e.type == "node_end" and e.seq > start.seq and e.node == start.node)
        assert end.span_id == start.span_id and start.parent_span_id == root
    assert len({e.span_id for e in nodes}) == 5  # a node that ran twice has two spans

    ticket = [e for e in events if getattr(e, "tool", None) == "create_support_ticket"]
    assert {e.type for e in ticket} == {"approval_required", "approval_decided", "tool_start", "tool_end"}
    assert len({e.span_id for e in ticket}) == 1
    asked = next(e for e in nodes if e.node == "tools")  # the tool call's parent: the node that asked
    assert ticket[0].parent_span_id == asked.span_id

    retrieval = next(e for e in events if e.type == "retrieval")
    search = next(e for e in events if e.type == "tool_start" and e.tool == "search_knowledge_base")
    assert retrieval.span_id == search.span_id
    output = [e for e in events if e.type in ("model_start", "reasoning", "token", "model_end")]
    second_agent = [e for e in nodes if e.node == "agent"][-1]
    answering = [e for e in output if e.parent_span_id == second_agent.span_id]
    assert [e.type for e in answering] == ["model_start", "reasoning", "token", "token", "model_end"]
    assert len({e.span_id for e in answering}) == 1
    assert [e.type for e in events].index("model_end", events.index(answering[0])) < events.index(
        next(e for e in nodes if e.type == "node_end" and e.span_id == second_agent.span_id))


async def test_a_runs_events_make_one_tree(make_service, scripted_model) -> None:
    events = await ticket_run(make_service, scripted_model)
    spans = span_tree(events)

    root = spans[0]
    assert (root.kind, root.parent_span_id, root.attributes["status"]) == ("run", "", "completed")
    assert root.start_ns == events[0].ts and root.end_ns == events[-1].ts
    by_id = {s.span_id: s for s in spans}
    assert [s.name for s in spans if s.kind == "node"] == ["retrieve", "agent", "tools", "tools", "agent"]
    assert all(by_id[s.parent_span_id].kind == "run" for s in spans if s.kind == "node")
    tools = {s.name: s for s in spans if s.kind == "tool"}
    assert by_id[tools["search_knowledge_base"].parent_span_id].name == "retrieve"
    assert tools["search_knowledge_base"].attributes["hits"][0]["source"] == "returns.md"
    assert tools["create_support_ticket"].attributes["approved"] is True
    asked, answered = [s for s in spans if s.kind == "model"]  # one model call per agent step
    assert asked.attributes["finish_reason"] == "tool_calls" and "text" not in asked.attributes
    assert answered.attributes["text"] == "Ticket opened." and answered.attributes["tokens"] == 2
    assert answered.attributes["reasoning"] == "A person should look."
    assert answered.attributes["finish_reason"] == "stop" and answered.attributes["first_chunk_s"] >= 0
    assert by_id[answered.parent_span_id].name == "agent" and answered.parent_span_id != asked.parent_span_id
    sent = answered.attributes["messages"]  # exactly what the model got: the prompt, the question, the tool's result
    assert sent[0]["role"] == "system" and "45 days" in sent[0]["content"]
    assert sent[1] == {"role": "human", "content": "I want a human"}
    assert sent[2]["tool_calls"][0]["name"] == "create_support_ticket" and sent[3]["role"] == "tool"
    assert all(s.start_ns <= s.end_ns and s.to_dict()["duration_ms"] >= 0 for s in spans)


async def test_a_model_call_opened_by_a_rule_says_so_and_ones_stored_before_read_back(make_service,
                                                                                       scripted_model) -> None:
    events = await ticket_run(make_service, scripted_model)
    last_end = max(e.seq for e in events if e.type == "model_end")
    opened = [dataclasses.replace(e, opened_with="No") if e.seq == last_end else e for e in events]
    asked, answered = [s for s in span_tree(opened) if s.kind == "model"]
    assert answered.attributes["opened_with"] == "No" and "opened_with" not in asked.attributes
    stored = {k: v for k, v in events[last_end].to_dict().items() if k != "opened_with"}
    assert event_from_dict(stored).opened_with == ""  # stored before the field
    assert event_from_dict({**stored, "opened_with_no": True}).opened_with == "No"  # stored when it was a flag
    assert event_from_dict({**stored, "opened_with_no": False}).opened_with == ""


async def test_a_run_stored_before_spans_draws_the_same_tree(make_service, scripted_model) -> None:
    events = await ticket_run(make_service, scripted_model)
    legacy = [dataclasses.replace(e, seq=0, ts=0, span_id="", parent_span_id="") for e in events]

    new, old = span_tree(events), span_tree(legacy)
    assert [(s.span_id, s.parent_span_id, s.kind, s.name) for s in old] == \
        [(s.span_id, s.parent_span_id, s.kind, s.name) for s in new]
    durations = [round(s.end_ns - s.start_ns, -3) for s in old]  # timed from `at` alone
    assert durations == [round(s.end_ns - s.start_ns, -3) for s in new]
    assert span_tree([]) == []
    # Stored before model calls were traced, too: its tokens were the model's, and drawn in a model span.
    older = [e for e in legacy if e.type not in ("model_start", "model_end")]
    assert [s.attributes.get("text") for s in span_tree(older) if s.kind == "model"] == ["Ticket opened."]


def test_spans_over_http(serve_glassbox, scripted_model) -> None:
    url = serve_glassbox().url
    run_id = httpx.post(f"{url}/api/chat", json={"message": "How long can I return a faulty item?"}, timeout=30).json()["run_id"]

    spans = httpx.get(f"{url}/api/runs/{run_id}/spans").json()["spans"]
    assert spans[0]["kind"] == "run" and spans[0]["parent_span_id"] is None
    assert {s["kind"] for s in spans} == {"run", "node", "tool", "model"}
    stored = httpx.get(f"{url}/api/runs/{run_id}").json()["events"]
    assert [e["seq"] for e in stored] == list(range(len(stored))) and all(e["span_id"] for e in stored)
    assert httpx.get(f"{url}/api/runs/{'0' * 32}/spans").status_code == 404


async def test_the_time_to_first_token_is_broken_into_phases(make_service, scripted_model) -> None:
    scripted_model.replies = [Reply(tokens=["Within ", "45 days."], delay_s=0.05)]
    events = [e async for e in make_service().stream("How long can I return a faulty item?", "t")]

    end = events[-1]
    phases = end.ttft_breakdown
    assert list(phases) == ["queue", "retrieval", "prompt", "model", "delivery"]
    assert all(seconds >= 0 for seconds in phases.values())
    # The phases add up to the queue and the TTFT (which leaves the queue out).
    assert abs(sum(phases.values()) - (phases["queue"] + end.ttft_s)) < 1e-3
    assert phases["model"] >= 0.05  # the scripted model waits 50 ms before its first chunk
    model_end = next(e for e in events if e.type == "model_end")
    assert model_end.first_chunk_s >= 0.05 and model_end.finish_reason == "stop"


def test_a_wait_for_warm_up_is_the_queue_not_the_models_ttft(serve_glassbox) -> None:
    import threading

    loaded = threading.Event()
    running = serve_glassbox(gate=loaded)  # warm-up waits until the question has been sent
    answers: list[dict] = []
    asking = threading.Thread(target=lambda: answers.append(httpx.post(
        f"{running.url}/api/chat", json={"message": "How long can I return a faulty item?"}, timeout=30).json()))
    asking.start()
    for _ in range(200):  # the question is accepted, and waits for the model
        if httpx.get(f"{running.url}/api/runs").json()["runs"]:
            break
        time.sleep(0.01)
    time.sleep(0.2)
    loaded.set()
    asking.join()
    answer = answers[0]
    run = httpx.get(f"{running.url}/api/runs/{answer['run_id']}").json()
    assert run["ttft_breakdown"]["queue"] > run["ttft_s"]  # the load's second is the queue's
    metrics = httpx.get(f"{running.url}/metrics").text
    assert 'agent_ttft_phase_seconds_count{phase="queue"} 1.0' in metrics
    assert 'agent_ttft_phase_seconds_count{phase="model"} 1.0' in metrics


def test_two_runs_compared_over_http(serve_glassbox, scripted_model) -> None:
    scripted_model.replies = [Reply(tokens=["Within 45 days."]), Reply(tokens=["Within 30 days, or 45 if faulty."])]
    url = serve_glassbox().url
    a, b = (httpx.post(f"{url}/api/chat", json={"message": m}, timeout=30).json()["run_id"]
            for m in ("How long can I return a faulty item?", "Do you ship to Canada?"))

    compared = httpx.get(f"{url}/api/runs/compare", params={"a": a, "b": b}).json()
    assert compared["a"] == a and compared["config"] == []  # the same app answered both
    assert compared["answer"] == [{"same": "Within"}, {"b": "30 days, or"}, {"same": "45"}, {"a": "days."},
                                  {"b": "if faulty."}]
    assert compared["timings"][0]["span"] == "ttft" and compared["timings"][0]["a_ms"] > 0
    assert {row["source"] for row in compared["retrieval"]} == {"returns.md", "shipping.md"}
    assert compared["tokens"]["b"]["output"] == 1
    assert httpx.get(f"{url}/api/runs/compare", params={"a": a, "b": "0" * 32}).status_code == 404
    assert httpx.get(f"{url}/api/runs/compare", params={"a": a}).status_code == 422
