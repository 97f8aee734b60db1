"""The OpenAI-compatible path: the real ChatOpenAI client against the project's scripted server."""

from __future__ import annotations

import asyncio

import pytest

from bench.scripted_openai import Script
from chat.config import Settings
from tests.conftest import approving, run_message


def test_openai_is_chosen_when_a_base_url_or_key_is_set():
    assert Settings.from_env({}).llm_provider == "local"
    assert Settings.from_env({"OPENAI_API_KEY": "k"}).llm_provider == "openai"
    assert Settings.from_env({"OPENAI_BASE_URL": "http://x/v1", "LLM_PROVIDER": "local"}).llm_provider == "local"
    assert Settings.from_env({"OPENAI_API_KEY": "k"}).rag_top_k == 4


def test_forcing_openai_without_an_endpoint_says_how_to_fix_it():
    from chat.config import SettingsError

    with pytest.raises(SettingsError, match="OPENAI_API_KEY .* or OPENAI_BASE_URL"):
        Settings.from_env({"LLM_PROVIDER": "openai"})


async def test_streams_tokens_with_usage_and_binds_the_tools(server, openai_service):
    events = await run_message(openai_service(server.base_url), "How long can I return a faulty item?")

    end = events[-1]
    assert end.status == "completed" and end.answer == "Faulty items can be returned within 45 days."
    assert end.input_tokens > 0 and end.output_tokens > 0
    request = server.requests[0].body
    assert {t["function"]["name"] for t in request["tools"]} == {"search_knowledge_base", "create_support_ticket"}
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}


async def test_real_tool_calls_run_and_loop_back(server, openai_service, tickets):
    server.enqueue(
        Script(tool_calls=[("create_support_ticket", {"summary": "Blender stopped working", "severity": "high"})]),
        Script(reply="I opened ticket T-000001."),
    )
    events = await approving(openai_service(server.base_url), "My blender broke, I want a person", "t")

    ticket = next(e for e in events if e.type == "tool_end" and e.tool == "create_support_ticket")
    assert ticket.error is None and tickets.get("T-000001")["summary"] == "Blender stopped working"
    assert events[-1].answer == "I opened ticket T-000001."


async def test_reasoning_content_is_shown_as_reasoning(server, openai_service):
    server.enqueue(Script(reasoning="The policy says 45 days.", reply="45 days."))
    events = await run_message(openai_service(server.base_url), "returns?")

    assert "".join(e.text for e in events if e.type == "reasoning") == "The policy says 45 days."
    assert events[-1].answer == "45 days."


async def test_a_broken_stream_fails_the_run_and_the_next_one_works(server, openai_service):
    server.enqueue(Script(reply="Faulty items can be returned", fail_after_tokens=2))
    service = openai_service(server.base_url)
    events = await run_message(service, "returns?")

    assert events[-2].type == "error" and events[-2].kind == "unavailable"  # openai: a connection error
    assert "after it had started answering; the partial answer is kept" in events[-2].message
    assert events[-1].status == "failed" and events[-1].answer
    assert (await run_message(service, "returns?"))[-1].status == "completed"


async def test_a_hanging_model_times_out(server, openai_service):
    server.enqueue(Script(reply="Faulty items can be returned", hang_after_tokens=2))
    events = await run_message(openai_service(server.base_url, MODEL_TIMEOUT_S="0.5"), "returns?")

    assert events[-2].kind == "timeout" and events[-1].status == "failed"


async def test_stop_closes_the_upstream_stream(server, openai_service):
    server.enqueue(Script(reply=" ".join(["word"] * 400), token_interval_s=0.01))
    service = openai_service(server.base_url)
    stream = service.stream("tell me a lot", "t")
    async for event in stream:
        if event.type == "token":
            service.cancel("t")
        if event.type == "run_end":
            assert event.status == "cancelled"
    for _ in range(100):
        if server.cancelled_requests:
            break
        await asyncio.sleep(0.02)
    assert server.cancelled_requests == 1


async def test_the_team_graph_routes_and_calculates_through_a_real_openai_client(server, openai_service):
    server.enqueue(
        Script(tool_calls=[("route_question", {"agents": ["policy"], "reason": "it asks for an amount"})]),
        Script(tool_calls=[("calculate", {"expression": "120 - 15%"})]),  # the policy agent
        Script(reply="It comes to 102."),
        Script(reply="You get 102 back."),  # the primary agent
    )
    events = [e async for e in openai_service(server.base_url).stream("What do I get back for $120 - 15%?", "t",
                                                                      agent_graph="team")]

    assert [e.agent for e in events if e.type == "agent_start"] == ["coordinator", "policy", "primary"]
    assert next(e for e in events if e.type == "handoff").reason == "it asks for an amount"
    calculated = next(e for e in events if e.type == "tool_end" and e.tool == "calculate")
    assert calculated.output == "120 - 15% = 102" and calculated.agent == "policy"
    end = events[-1]
    assert end.status == "completed" and end.answer == "You get 102 back." and end.grounding == "grounded"
    tools = [{t["function"]["name"] for t in request.body.get("tools", [])} for request in server.requests]
    assert tools[0] == {"route_question"} and tools[1] == {"calculate", "create_support_ticket"}
