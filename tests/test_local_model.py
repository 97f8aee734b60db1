"""The real embedded stack: SmolLM2 via llama.cpp, real embeddings, a real Chroma store on disk."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from chat.components import load_components, sqlite_checkpointer
from chat.config import Settings
from chat.given_numbers import given_numbers
from chat.grounding import check_grounding, yes_is_denied
from chat.openings import fact_opening
from chat.prompts import facts_in, system_prompt
from chat.service import AgentService
from chat.tickets import TicketStore
from chat.tools import build_tools
from ui.panel import describe


@pytest.fixture(scope="module")
def local_components(tmp_path_factory):
    settings = Settings(state_dir=tmp_path_factory.mktemp("state"), llm_provider="local")
    return settings, load_components(settings)


async def test_the_local_model_answers_a_real_question_from_the_knowledge_base(local_components):
    settings, components = local_components
    service = AgentService(lambda: components, sqlite_checkpointer(settings))
    service.warm_up()

    events = [e async for e in service.stream("How long can I return a faulty item?", "real")]

    await service.aclose()
    hits = next(e for e in events if e.type == "retrieval").hits
    assert hits and hits[0].source == "returns.md" and "45 days" in hits[0].text  # the fact was found
    end = events[-1]
    # What the 135M model says depends on the CPU (greedy llama.cpp decoding takes other SIMD paths),
    # so the test asserts that it answered, never what: answer quality is measured in bench/.
    assert end.status == "completed" and end.answer.strip()
    assert end.output_tokens > 0 and end.input_tokens > 0
    assert components.knowledge_chunks >= 20
    # Citations are attached, and the verdict is what the check says of this answer, whatever it is.
    assert end.citations and end.citations[0].source == "returns.md"
    assert end.grounding == check_grounding(end.answer, [c.text for c in end.citations],
                                            known_names=["Voltline's support assistant"],
                                            asked="How long can I return a faulty item?").verdict
    # Whatever it said, each number in it is one its prompt holds (chat/given_numbers.py).
    assert given_numbers([end.answer]) <= given_numbers([hits[0].text, "How long can I return a faulty item?"])


async def test_the_local_model_writes_only_numbers_its_prompt_gives(local_components):
    _, components = local_components
    prompt = [SystemMessage("The shop opens at 9 am and closes at 5:30 pm, and returns take 14 days."),
              HumanMessage("Count from 1 to 20, then tell me the year and a phone number.")]

    answer = "".join([chunk.text async for chunk in components.model.astream(prompt)])

    # The constraint is in the decoding, not in what this CPU's arithmetic happens to favour: it holds everywhere.
    assert answer.strip() and given_numbers([answer]) <= {"9", "5:30", "14", "1", "20"}


async def test_the_local_model_opens_with_no_where_its_fact_denies_a_yes(local_components):
    _, components = local_components
    prompt = [SystemMessage(system_prompt(["Change of mind: Opened headphones and earbuds cannot be returned for "
                                           "a change of mind, for hygiene reasons."])),
              HumanMessage("Can I return opened headphones?")]

    answer = "".join([chunk.text async for chunk in components.model.astream(prompt)])

    # In the decoding (chat/openings.py), so on every CPU; what follows the "No" is the model's.
    assert answer.startswith("No")


async def test_the_local_model_opens_with_its_facts_first_words(local_components):
    _, components = local_components
    fact = "Whitening: An in-chair whitening session takes 90 minutes and costs $350."
    prompt = [SystemMessage(system_prompt([fact])), HumanMessage("How much does whitening in the chair cost?")]

    answer = "".join([chunk.text async for chunk in components.model.astream(prompt)])

    # Forced in the decoding, so on every CPU; what follows is the model's, whatever this CPU makes of it.
    assert answer.startswith("An in-chair whitening session")


async def test_a_run_opened_with_no_says_so_in_its_trace(local_components):
    _, components = local_components
    service = AgentService(lambda: components)
    service.warm_up()
    question = "Can I return opened headphones?"

    events = [e async for e in service.stream(question, "opened")]

    hits = next(e for e in events if e.type == "retrieval").hits
    assert hits[0].source == "returns.md" and yes_is_denied(question, [hits[0].text])  # the fact denies a yes
    end = next(e for e in events if e.type == "model_end")
    assert end.opened_with == "No" and events[-1].answer.startswith("No")
    assert "its first word, “No”, set because its facts deny a yes" in describe(end)  # in the panel


async def test_the_team_graph_runs_on_the_local_model_in_its_reduced_form(local_components):
    settings, components = local_components
    service = AgentService(lambda: components, sqlite_checkpointer(settings))
    service.warm_up()

    events = [e async for e in service.stream("What do I get back for $120 - 15%, for a faulty item?", "team",
                                              agent_graph="team")]

    await service.aclose()
    started = [e.agent for e in events if e.type == "agent_start"]
    assert started[0] == "coordinator" and set(started[1:3]) == {"knowledge", "policy"} and started[-1] == "primary"
    assert [e.output for e in events if e.type == "tool_end" and e.tool == "calculate"] == ["$120 - 15% = 102"]
    end = events[-1]
    # Whatever the model said as the knowledge agent, the worked-out amount leads the joined answer.
    assert end.status == "completed" and end.answer.startswith("$120 - 15% = 102.")
    assert end.first_token_agent == "knowledge"


async def test_cancelling_the_local_model_stops_generation(local_components):
    _, components = local_components
    model = components.model
    stream = model.astream([HumanMessage("Write a long story about a dragon who collects teapots.")])
    await anext(stream)
    await stream.aclose()  # what Stop and a closed tab do to the run

    deadline = time.monotonic() + 2
    while model._lock.locked() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not model._lock.locked(), "llama.cpp kept generating after the stream was cancelled"


async def test_a_message_too_long_for_the_local_context_fails_with_a_clear_message(local_components, tmp_path):
    _, components = local_components
    # No relevance floor here: gibberish would be answered "not covered" without reaching the model.
    tools = build_tools(lambda name: components.knowledge.get(name or "sample"), TicketStore(tmp_path / "t.sqlite3"),
                        top_k=1, min_score=0.0)
    service = AgentService(lambda: replace(components, tools=tools))
    service.warm_up()
    words = " ".join(f"zq{i}x" for i in range(1400))[:3990]  # accepted (< 4,000 chars), yet over the context

    events = [e async for e in service.stream(words, "long")]

    assert events[-2].type == "error" and events[-2].kind == "input"
    assert "Shorten it to about" in events[-2].message and events[-1].status == "failed"
    assert "LOCAL_N_CTX" not in events[-2].message  # the operator's remedy goes to the log, not to a visitor
    after = [e async for e in service.stream("How long can I return a faulty item?", "long")]
    assert after[-1].status == "completed"  # the too-long message did not break the thread


async def test_the_local_models_call_is_traced_with_its_messages_and_why_it_ended(local_components):
    """The model-call span on the real stack: what was sent, the parameters, and a cut-off answer as `length`."""
    _, components = local_components
    short = components.model.model_copy(update={"max_tokens": 3})  # an answer cut off at MAX_ANSWER_TOKENS
    service = AgentService(lambda: replace(components, model=short))
    service.warm_up()

    events = [e async for e in service.stream("How long can I return a faulty item?", "traced")]

    start = next(e for e in events if e.type == "model_start")
    assert start.provider == "local" and start.parameters["max_tokens"] == 3 and start.parameters["temperature"] == 0.0
    assert start.messages[0]["role"] == "system" and "45 days" in start.messages[0]["content"]
    assert start.messages[-1] == {"role": "human", "content": "How long can I return a faulty item?"}
    end = next(e for e in events if e.type == "model_end")
    # Cut off at 3 tokens unless the model ended sooner on its own: which, depends on what this CPU's
    # greedy decoding produced, so the test checks that the reason agrees with the count, not the words.
    assert end.output_tokens <= 3 and end.first_chunk_s is not None
    assert end.finish_reason == ("length" if end.output_tokens == 3 else "stop")
    # No yes/no question, so it opened with its fact's first words: forced, as far as 3 tokens go, on every CPU.
    assert end.opened_with == fact_opening(facts_in(start.messages[0]["content"])[0])
    assert f"it opened with its fact's first words, “{end.opened_with}”" in describe(end)  # in the panel
    run_start, run_end = events[1], events[-1]
    assert run_start.config["provider"] == "local" and run_start.config["prompt_template"] == "one_fact"
    assert len(run_start.config["prompt_hash"]) == 12 and run_start.config["glassbox_version"]
    assert set(run_end.ttft_breakdown) == {"queue", "retrieval", "prompt", "model", "delivery"}
    assert run_end.ttft_breakdown["model"] > 0 and run_end.ttft_breakdown["retrieval"] > 0


async def test_in_a_conversation_the_local_model_reads_only_the_new_message(local_components):
    """HISTORY_MESSAGES=1 for the local model: with its earlier answers in view it copies them (README)."""
    settings, components = local_components
    assert settings.history_messages == 1 and components.history_messages == 1
    service = AgentService(lambda: components, sqlite_checkpointer(settings))
    service.warm_up()

    first = [e async for e in service.stream("How long can I return a faulty item?", "conversation")]
    second = [e async for e in service.stream("How much does standard shipping cost?", "conversation")]

    sent = next(e for e in second if e.type == "model_start").messages
    assert [m["role"] for m in sent] == ["system", "human"] and sent[-1]["content"] == "How much does standard shipping cost?"
    assert "4.99" in sent[0]["content"]  # the new question's own fact
    remembered = await service.checkpointer.aget_tuple({"configurable": {"thread_id": "conversation"}})
    await service.aclose()
    assert first[-1].status == second[-1].status == "completed"
    # The memory still keeps the whole conversation, for the page and for a model that reads more of it.
    said = [m.content for m in remembered.checkpoint["channel_values"]["messages"] if m.type == "human"]
    assert said == ["How long can I return a faulty item?", "How much does standard shipping cost?"]
