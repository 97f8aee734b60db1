"""The agent graph and its event stream, driven by the scripted model."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from chat.events import RunEnded
from chat.graph import route_after_agent
from chat.service import ThreadBusy
from tests.conftest import Reply, approving, cancel_like_a_web_server, in_memory_checkpointer


async def collect(service, message: str, thread_id: str = "t1") -> list:
    return [event async for event in service.stream(message, thread_id)]


def types(events: list) -> list[str]:
    return [event.type for event in events]


def test_router_goes_to_tools_only_when_the_model_asked():
    asked = AIMessage("", tool_calls=[{"name": "search_knowledge_base", "args": {"query": "x"}, "id": "1"}])
    assert route_after_agent({"messages": [HumanMessage("hi"), asked]}) == "tools"
    assert route_after_agent({"messages": [HumanMessage("hi"), AIMessage("done")]}) == "__end__"


async def test_a_run_retrieves_first_then_streams_the_answer(make_service, scripted_model, knowledge_base):
    scripted_model.replies = [Reply(tokens=["Within ", "45 days."])]
    events = await collect(make_service(), "How long can I return a faulty item?")

    assert types(events)[:2] == ["run_queued", "run_start"] and types(events)[-1] == "run_end"
    assert types(events).index("retrieval") < types(events).index("token")
    start = next(e for e in events if e.type == "tool_start")
    assert start.tool == "search_knowledge_base" and start.input == {"query": "How long can I return a faulty item?"}
    hits = next(e for e in events if e.type == "retrieval").hits
    assert hits[0].source == "returns.md" and hits[0].chunk_id == "c1" and hits[0].score == 0.9
    assert [e.text for e in events if e.type == "token"] == ["Within ", "45 days."]
    assert [e.node for e in events if e.type == "node_end"] == ["retrieve", "agent"]
    end = events[-1]
    assert end.status == "completed" and end.answer == "Within 45 days."
    assert end.ttft_s is not None and 0 <= end.ttft_s <= end.latency_s
    assert end.output_tokens == 2 and end.tool_calls == 1
    # The model was grounded in the hit: the fact is in its system prompt.
    assert "45 days" in scripted_model.prompts[0][0].content
    assert all(e.run_id == end.run_id and e.thread_id == "t1" for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)


async def test_tool_calls_loop_back_to_the_model_and_write_a_ticket(make_service, scripted_model, tickets):
    scripted_model.replies = [
        Reply(tool_calls=[{"name": "create_support_ticket", "args": {"summary": "Kettle arrived broken", "severity": "high"}}]),
        Reply(tokens=["Ticket opened."]),
    ]
    events = await approving(make_service(open_checkpointer=in_memory_checkpointer()), "I want a human")

    assert types(events).index("approval_required") < types(events).index("approval_decided")
    ticket_end = next(e for e in events if e.type == "tool_end" and e.tool == "create_support_ticket")
    assert ticket_end.error is None and "T-000001" in ticket_end.output
    assert tickets.get("T-000001")["severity"] == "high"
    assert tickets.get("T-000001")["thread_id"] == "t1"
    assert scripted_model.bound_tools == ["search_knowledge_base", "create_support_ticket"]
    assert events[-1].answer == "Ticket opened." and events[-1].tool_calls == 2


async def test_invalid_tool_input_is_a_visible_tool_error_not_a_crash(make_service, scripted_model, tickets):
    scripted_model.replies = [
        Reply(tool_calls=[{"name": "create_support_ticket", "args": {"summary": "x", "severity": "apocalyptic"}}]),
        Reply(tool_calls=[{"name": "delete_database", "args": {}}]),
        Reply(tokens=["Sorry."]),
    ]
    events = await collect(make_service(open_checkpointer=in_memory_checkpointer()), "open a ticket")

    assert "approval_required" not in types(events)  # nobody is asked to approve a call that cannot run
    errors = [e for e in events if e.type == "tool_end" and e.error]
    assert [e.tool for e in errors] == ["create_support_ticket", "delete_database"]
    assert "severity" in errors[0].error and "no tool named" in errors[1].error
    assert tickets.get("T-000001") is None
    assert events[-1].status == "completed"
    # The model saw the error and could recover from it.
    assert "Tool error" in scripted_model.prompts[1][-1].content


async def test_recursion_limit_ends_the_run_with_a_clear_message(make_service, scripted_model):
    looping = Reply(tool_calls=[{"name": "search_knowledge_base", "args": {"query": "again"}}])
    scripted_model.replies = [looping] * 20
    events = await collect(make_service(recursion_limit=5), "loop forever")

    error = next(e for e in events if e.type == "error")
    assert error.kind == "recursion_limit" and "5 steps" in error.message
    assert events[-1].status == "failed"


async def test_model_failure_mid_stream_keeps_the_partial_answer(make_service, scripted_model):
    scripted_model.replies = [Reply(tokens=["Faulty ", "items ", "can"], fail_after=2), Reply(tokens=["Fine."])]
    service = make_service()
    events = await collect(service, "returns?")

    assert types(events)[-2:] == ["error", "run_end"]
    assert events[-2].kind == "model" and "partial answer is kept" in events[-2].message
    assert "upstream closed the stream" not in events[-2].message  # the library's words go to the log
    assert events[-1].status == "failed" and events[-1].answer == "Faulty items"
    # The service keeps serving the next request.
    assert (await collect(service, "again"))[-1].answer == "Fine."


async def test_a_model_that_stalls_times_out(make_service, scripted_model):
    scripted_model.replies = [Reply(tokens=["Half ", "an answer"], hang_after=1)]
    events = await collect(make_service(timeout_s=0.3), "returns?")

    assert events[-2].kind == "timeout" and "0.3 s" in events[-2].message
    assert events[-1].status == "failed" and events[-1].answer == "Half"


async def test_cancel_stops_the_model_and_ends_the_run_as_cancelled(make_service, scripted_model):
    scripted_model.replies = [Reply(tokens=[f"w{i} " for i in range(200)], delay_s=0.01)]
    service = make_service()
    events = []
    async for event in service.stream("tell me everything", "t1"):
        events.append(event)
        if event.type == "token" and len([e for e in events if e.type == "token"]) == 3:
            assert service.cancel("t1")
    sent = scripted_model.chunks_sent
    await asyncio.sleep(0.1)

    assert types(events)[-2:] == ["cancelled", "run_end"] and events[-1].status == "cancelled"
    assert events[-1].answer.startswith("w0 w1 w2")
    assert scripted_model.chunks_sent == sent < 20  # the model stopped generating
    assert not service.cancel("t1")


async def test_a_reader_that_goes_away_cancels_the_run(make_service, scripted_model):
    scripted_model.replies = [Reply(tokens=[f"w{i} " for i in range(200)], delay_s=0.01)]
    seen = []
    service = make_service(listeners=[seen.append])
    stream = service.stream("tell me everything", "t1")
    async for event in stream:
        if event.type == "token":
            break
    await stream.aclose()

    assert seen[-1].type == "run_end" and seen[-1].status == "cancelled"


async def test_one_run_at_a_time_per_thread(make_service, scripted_model):
    scripted_model.replies = [Reply(tokens=["slow "] * 20, delay_s=0.02)]
    service = make_service()
    first = service.stream("one", "t1")
    await anext(first)
    with pytest.raises(ThreadBusy):
        await anext(service.stream("two", "t1"))
    other = await collect(service, "elsewhere", "t2")  # other threads are not blocked
    assert other[-1].status == "completed"
    await first.aclose()


async def test_reasoning_is_shown_as_reasoning_not_answer(make_service, scripted_model):
    scripted_model.replies = [
        Reply(reasoning=["Check the ", "policy."], tokens=["<thi", "nk>45 or 30?</think>", "45 days."])
    ]
    events = await collect(make_service(), "returns?")

    assert "".join(e.text for e in events if e.type == "reasoning") == "Check the policy.45 or 30?"
    assert events[-1].answer == "45 days."


async def test_memory_is_per_thread_and_survives_a_new_service(make_service, scripted_model):
    opener = in_memory_checkpointer()
    await collect(make_service(open_checkpointer=opener), "My name is Ada.", "ada")
    await collect(make_service(open_checkpointer=opener), "Who am I?", "ada")
    await collect(make_service(open_checkpointer=opener), "Who am I?", "bob")

    ada_prompt, bob_prompt = scripted_model.prompts[1], scripted_model.prompts[2]
    assert [m.text for m in ada_prompt[1:]] == ["My name is Ada.", "OK.", "Who am I?"]
    assert [m.text for m in bob_prompt[1:]] == ["Who am I?"]


async def test_a_model_without_tools_still_answers_from_retrieval(make_service, scripted_model):
    scripted_model.supports_tools = False
    scripted_model.replies = [Reply(tokens=["45 days."])]
    events = await collect(make_service(), "returns?")

    assert events[-1].answer == "45 days." and scripted_model.bound_tools == []
    assert isinstance(events[-1], RunEnded)


async def test_a_web_server_cancelling_its_handler_stops_the_model(make_service, scripted_model):
    """Starlette and Gradio cancel a handler through an anyio scope, which re-cancels every await."""

    scripted_model.replies = [Reply(tokens=[f"w{i} " for i in range(300)], delay_s=0.01)]
    service = make_service()
    await cancel_like_a_web_server(service, "tell me everything", "t1")
    sent = scripted_model.chunks_sent
    await asyncio.sleep(0.2)

    assert scripted_model.chunks_sent == sent < 10


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_conversation_memory_survives_a_restart_in_sqlite_and_postgres(make_service, scripted_model, tmp_path,
                                                                             request, backend):
    """The checkpointer DATABASE_URL chooses: LangGraph's Postgres saver on a psycopg pool; else SQLite."""
    from chat.components import checkpointer_for
    from chat.config import Settings
    from tests.conftest import fresh_database

    url = fresh_database(request.getfixturevalue("postgres_server")) if backend == "postgres" else None
    settings = Settings(state_dir=tmp_path / "state", database_url=url)
    for message in ("My name is Ada.", "Who am I?"):  # each a new service: a restart
        service = make_service(open_checkpointer=checkpointer_for(settings))
        await collect(service, message, "ada")
        await service.aclose()
    assert [m.text for m in scripted_model.prompts[1][1:]] == ["My name is Ada.", "OK.", "Who am I?"]
