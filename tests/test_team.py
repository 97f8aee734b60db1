"""The team graph (AGENT_GRAPH=team): routing, agents side by side, handoffs, progress, one answer."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage
from prometheus_client import CollectorRegistry

from chat.calculator import CalculationRefused, calculate, expressions_in
from chat.config import Settings, SettingsError
from chat.events import AgentEnded, AgentStarted, Handoff, Progress, Token
from chat.spans import span_tree
from chat.team import KNOWLEDGE, POLICY, PRIMARY, TEAM, route_by_rule, route_from_model
from metrics.recorder import RunRecorder
from metrics.registry import AgentMetrics
from metrics.table import RunTable
from tests.conftest import Reply, approving, run_message
from ui.activity import activity_html
from ui.panel import panel_html
from ui.render import TurnView
from ui.waterfall import waterfall_svg

BOTH = "How much is a refund of $120 - 15% for a faulty item?"
KNOWLEDGE_ONLY = "How long can I return a faulty item?"
# The agents' system prompts (chat/prompts.py) tell their calls apart.
COORDINATOR_CALL, POLICY_CALL, PRIMARY_CALL = "coordinator of a support team", "policy agent", "specialist agents"


def types(events, agent=None) -> list[str]:
    return [e.type for e in events if agent is None or e.agent == agent]


def test_rules_route_to_knowledge_always_and_to_policy_for_amounts_and_people():
    assert [r["agent"] for r in route_by_rule(KNOWLEDGE_ONLY)] == [KNOWLEDGE]
    assert [r["agent"] for r in route_by_rule(BOTH)] == [KNOWLEDGE, POLICY]
    assert [r["agent"] for r in route_by_rule("Can I talk to a person about my order?")] == [KNOWLEDGE, POLICY]
    assert all(r["reason"] for r in route_by_rule(BOTH))


def test_a_model_route_is_used_only_when_it_is_valid():
    chosen = AIMessage("", tool_calls=[{"name": "route_question", "id": "1",
                                        "args": {"agents": ["policy", "policy"], "reason": "an  amount"}}])
    assert route_from_model(chosen) == [{"agent": POLICY, "reason": "an amount"}]
    for args in ({"agents": ["billing"], "reason": "x"}, {"agents": [], "reason": "x"}, {"reason": "x"}):
        wrong = AIMessage("", tool_calls=[{"name": "route_question", "id": "1", "args": args}])
        assert route_from_model(wrong) is None
    assert route_from_model(AIMessage("knowledge, please")) is None


def test_the_calculator_does_arithmetic_and_nothing_else():
    assert calculate("120 - 15%") == "120 - 15% = 102"
    assert calculate("3 x 4.99") == "3 x 4.99 = 14.97"
    assert calculate("(2 + 3) * 4") == "(2 + 3) * 4 = 20"
    for hostile in ("__import__('os').system('id')", "2 ** 100000", "1/0", "9" * 400, "a + 1"):
        with pytest.raises(CalculationRefused):
            calculate(hostile)
    assert expressions_in("a refund of $120 - 15% and 2 x 4.99 shipping") == ["$120 - 15%", "2 x 4.99"]


def test_agent_graph_is_a_setting_with_a_clear_refusal():
    assert Settings.from_env({"AGENT_GRAPH": "team"}).agent_graph == "team"
    assert Settings.from_env({}).agent_graph == "support"
    with pytest.raises(SettingsError, match="AGENT_GRAPH must be one of support, team"):
        Settings.from_env({"AGENT_GRAPH": "swarm"})


async def test_two_agents_work_side_by_side_and_the_primary_agent_answers(make_service, scripted_model):
    scripted_model.replies_for = {
        COORDINATOR_CALL: [Reply(tokens=["routing"])],  # no route call: the rules route
        POLICY_CALL: [Reply(tokens=["It ", "comes ", "to ", "102."], delay_s=0.01)],
        PRIMARY_CALL: [Reply(tokens=["You ", "get ", "102 ", "back."])],
    }
    scripted_model.replies = [Reply(tokens=["Within ", "45 ", "days."], delay_s=0.01)]  # the knowledge agent
    events = await run_message(make_service(), BOTH, agent_graph="team")

    started = [e.agent for e in events if isinstance(e, AgentStarted)]
    assert started == ["coordinator", KNOWLEDGE, POLICY, PRIMARY] or started == ["coordinator", POLICY, KNOWLEDGE, PRIMARY]
    position = {(e.type, e.agent): i for i, e in enumerate(events)}
    # Side by side: each specialist starts before the other ends.
    assert position[("agent_start", KNOWLEDGE)] < position[("agent_end", POLICY)]
    assert position[("agent_start", POLICY)] < position[("agent_end", KNOWLEDGE)]
    assert position[("agent_end", KNOWLEDGE)] < position[("agent_start", PRIMARY)]
    handoffs = [(e.agent, e.to_agent) for e in events if isinstance(e, Handoff)]
    assert handoffs == [("coordinator", KNOWLEDGE), ("coordinator", POLICY), (KNOWLEDGE, PRIMARY), (POLICY, PRIMARY)]
    assert all(e.reason for e in events if isinstance(e, Handoff))
    progress = [(e.done, e.planned) for e in events if isinstance(e, Progress)]
    assert progress[0] == (0, 4) and progress[-1] == (4, 4)
    assert [p[0] for p in progress] == sorted(p[0] for p in progress)
    # Tokens say whose they are; only the primary agent's make the answer.
    assert {e.agent for e in events if isinstance(e, Token)} == {KNOWLEDGE, POLICY, PRIMARY}
    end = events[-1]
    assert end.status == "completed" and end.answer == "You get 102 back."
    assert end.first_token_agent in (KNOWLEDGE, POLICY)
    assert list(end.ttft_breakdown) == ["queue", "routing", "retrieval", "prompt", "model", "delivery"]
    assert events[1].agent_graph == "team" and events[1].config["agent_graph"] == "team"
    assert events[1].answering_agent == PRIMARY and set(events[1].agents) == set(TEAM.agents)
    # The primary agent was given both findings as facts.
    primary_prompt = next(p for p in scripted_model.prompts if PRIMARY_CALL in p[0].text)[0].text
    assert "Within 45 days." in primary_prompt and "It comes to 102." in primary_prompt


async def test_each_agent_is_a_span_holding_its_own_steps(make_service, scripted_model):
    calculation = {"name": "calculate", "args": {"expression": "120 - 15%"}}
    scripted_model.replies_for = {POLICY_CALL: [Reply(tool_calls=[calculation]), Reply(tokens=["102."])]}
    events = await run_message(make_service(), BOTH, agent_graph="team")
    spans = span_tree(events)
    by_id = {s.span_id: s for s in spans}
    root = spans[0]
    agents = {s.name: s for s in spans if s.kind == "agent"}
    assert set(agents) == set(TEAM.agents)
    assert all(s.parent_span_id == root.span_id for s in agents.values())
    assert agents[KNOWLEDGE].attributes["role"] == TEAM.agents[KNOWLEDGE]

    def agent_of(span):
        while span.kind != "agent":
            span = by_id[span.parent_span_id]
        return span.name

    search = next(s for s in spans if s.kind == "tool" and s.name == "search_knowledge_base")
    calculator = next(s for s in spans if s.kind == "tool" and s.name == "calculate")
    assert agent_of(search) == KNOWLEDGE and agent_of(calculator) == POLICY
    models = [s for s in spans if s.kind == "model"]
    assert {agent_of(s) for s in models} == {"coordinator", KNOWLEDGE, POLICY, PRIMARY}
    assert [h["to"] for h in root.attributes["handoffs"]] == [KNOWLEDGE, POLICY, PRIMARY, PRIMARY]
    svg = waterfall_svg(spans)
    assert svg.count('data-parallel="1"') == 2 and "∥ agent: knowledge" in svg and "∥ agent: policy" in svg


async def test_the_model_routes_when_it_can_call_tools(make_service, scripted_model):
    route = {"name": "route_question", "args": {"agents": ["knowledge"], "reason": "it asks what the policy says"}}
    scripted_model.replies_for = {COORDINATOR_CALL: [Reply(tool_calls=[route])]}
    events = await run_message(make_service(), BOTH, agent_graph="team")
    assert [e.agent for e in events if isinstance(e, AgentStarted)] == ["coordinator", KNOWLEDGE, PRIMARY]
    assert [e.reason for e in events if isinstance(e, Handoff)][0] == "it asks what the policy says"
    assert [(e.done, e.planned) for e in events if isinstance(e, Progress)][-1] == (3, 3)
    # The routing call's words are nobody's answer.
    assert not [e for e in events if isinstance(e, Token) and e.agent == "coordinator"]


async def test_the_local_models_reduced_form_routes_calculates_and_joins_by_rule(make_service, scripted_model):
    scripted_model.supports_tools = False
    events = await run_message(make_service(), BOTH, agent_graph="team")
    assert events[-1].status == "completed"
    calculated = [e for e in events if e.type == "tool_end" and e.tool == "calculate"]
    assert [e.output for e in calculated] == ["$120 - 15% = 102"] and calculated[0].agent == POLICY
    # The model answered once, as the knowledge agent; the primary agent joined the findings, amounts first.
    assert len(scripted_model.prompts) == 1
    assert events[-1].answer == "$120 - 15% = 102. OK."
    # The amount's source is the sum worked out: a citation, so the grounding check can back it.
    assert any(hit.source == "calculator" and hit.text == "$120 - 15% = 102" for hit in events[-1].citations)


async def test_a_paused_tool_in_a_parallel_branch_is_approved_and_the_other_branch_is_not_rerun(
        service_with_memory, scripted_model, tickets, knowledge_base):
    ticket = {"name": "create_support_ticket", "args": {"summary": "The customer wants a person", "severity": "low"}}
    scripted_model.replies_for = {POLICY_CALL: [Reply(tool_calls=[ticket]), Reply(tokens=["Ticket opened."])]}
    events = await approving(service_with_memory(), "Can I talk to a person about my faulty item?",
                             agent_graph="team")
    asked = [e for e in events if e.type == "approval_required"]
    assert len(asked) == 1 and asked[0].agent == POLICY and asked[0].tool == "create_support_ticket"
    assert [e.type for e in events if e.type.startswith("approval")] == ["approval_required", "approval_decided"]
    assert tickets.get("T-000001") is not None
    assert len(knowledge_base.queries) == 1  # the knowledge branch finished before the pause: not run again
    assert types(events).count("agent_start") == 4 and types(events).count("agent_end") == 4
    assert events[-1].status == "completed"


async def test_both_graphs_share_a_conversations_memory(service_with_memory, scripted_model):
    service = service_with_memory()
    scripted_model.replies = [Reply(tokens=["First answer."])]
    await run_message(service, KNOWLEDGE_ONLY, "t1")
    await run_message(service, "And by post?", "t1", agent_graph="team")
    third = await run_message(service, "Thanks", "t1")
    assert third[-1].status == "completed"
    seen = " ".join(m.text for m in scripted_model.prompts[-1])
    assert "First answer." in seen and "And by post?" in seen


async def test_a_stopped_team_run_ends_its_working_agents_cancelled(make_service, scripted_model):
    scripted_model.default = Reply(tokens=["slow"] * 50, delay_s=0.05)
    service = make_service()
    events: list = []

    async def collect():
        async for event in service.stream(BOTH, "t1", agent_graph="team"):
            events.append(event)

    task = asyncio.create_task(collect())
    for _ in range(500):
        if any(isinstance(e, Token) for e in events):
            break
        await asyncio.sleep(0.01)
    service.cancel("t1")
    await task
    cut = [e for e in events if isinstance(e, AgentEnded) and e.status == "cancelled"]
    assert cut and events[-1].status == "cancelled"
    started = {e.agent for e in events if isinstance(e, AgentStarted)}
    assert started == {e.agent for e in events if isinstance(e, AgentEnded)}  # every span closes


async def test_a_failing_agent_fails_the_run_in_our_words(make_service, scripted_model):
    scripted_model.replies_for = {POLICY_CALL: [Reply(tokens=["a", "b"], fail_after=1)]}
    events = await run_message(make_service(), BOTH, agent_graph="team")
    assert events[-1].status == "failed"
    error = next(e for e in events if e.type == "error")
    assert "upstream closed" not in error.message  # the library's words stay in the log


async def test_agent_durations_are_metrics_labelled_only_by_the_graphs_agents(make_service):
    registry = CollectorRegistry()
    recorder = RunRecorder(AgentMetrics(registry, agents=TEAM.agents), RunTable(100))
    events = await run_message(make_service(listeners=[recorder.record]), BOTH, agent_graph="team")
    for agent in TEAM.agents:
        assert registry.get_sample_value("agent_team_agent_seconds_count", {"agent_name": agent}) == 1
    forged = AgentEnded(run_id="r", thread_id="t", at=0, agent="x" * 500, role="", duration_s=1.0)
    recorder.record(forged)
    assert registry.get_sample_value("agent_team_agent_seconds_count", {"agent_name": "other"}) == 1
    assert events[-1].status == "completed"


async def test_the_chat_shows_each_agent_as_a_group_with_a_live_indicator(make_service, scripted_model):
    scripted_model.replies_for = {PRIMARY_CALL: [Reply(tokens=["One ", "answer."])]}
    events = await run_message(make_service(), BOTH, agent_graph="team")
    view, lines = TurnView(), []
    for event in events:
        view.add(event)
        lines.append(activity_html(view))
    assert any("Now working: knowledge agent, policy agent" in line or "Now working: policy agent, knowledge agent"
               in line for line in lines)
    assert any('value="1" max="4"' in line for line in lines)
    assert "The team is done" in lines[-1] and 'value="4" max="4"' in lines[-1]
    messages = view.messages()
    groups = {m.metadata["id"]: m for m in messages if m.metadata and m.metadata.get("id", "").startswith("agent-")}
    assert set(groups) == {f"agent-{name}" for name in TEAM.agents}
    assert all(g.metadata["status"] == "done" and g.metadata["duration"] >= 0 for g in groups.values())
    assert "handed to the **knowledge** agent" in groups["agent-coordinator"].content
    search = next(m for m in messages if m.metadata and "search_knowledge_base" in m.metadata.get("title", ""))
    assert search.metadata["parent_id"] == "agent-knowledge"
    answers = [m.content for m in messages if not m.metadata]
    assert "One answer." in answers  # the primary agent's words stand at the top, not in a group
    assert view.answer == "One answer."


async def test_the_panel_filters_by_agent(make_service):
    events = await run_message(make_service(), BOTH, agent_graph="team")
    policy = panel_html(events, "full trace", POLICY)
    assert "calculate" in policy and "searching the knowledge base" not in policy
    assert "policy handed over to primary" in policy and "question received" in policy
    everything = panel_html(events, "full trace")
    assert "calculate" in everything and "searching the knowledge base" in everything


async def test_a_single_agent_run_shows_no_activity_line(make_service):
    events = await run_message(make_service(), KNOWLEDGE_ONLY)
    view = TurnView()
    for event in events:
        view.add(event)
    assert activity_html(view) == "" and not [e for e in events if e.agent]


async def test_a_team_run_stopped_while_it_waits_for_approval_leaves_the_conversation_usable(
        service_with_memory, scripted_model, tickets):
    ticket = {"name": "create_support_ticket", "args": {"summary": "The customer wants a person", "severity": "low"}}
    scripted_model.replies_for = {POLICY_CALL: [Reply(tool_calls=[ticket])],
                                  PRIMARY_CALL: [Reply(tokens=["Partial."]), Reply(tokens=["Second answer."])]}
    service = service_with_memory()
    events: list = []

    async def collect():
        async for event in service.stream("Can I talk to a person?", "t1", agent_graph="team"):
            events.append(event)

    task = asyncio.create_task(collect())
    for _ in range(300):
        if any(e.type == "approval_required" for e in events):
            break
        await asyncio.sleep(0.01)
    service.cancel("t1")
    await task
    assert events[-1].status == "cancelled" and tickets.get("T-000001") is None

    second = await run_message(service, "How long can I return a faulty item?", "t1", agent_graph="team")
    assert second[-1].status == "completed" and not [e for e in second if e.type == "approval_required"]
    assert tickets.get("T-000001") is None  # the stopped action never ran
    seen = " ".join(m.text for m in scripted_model.prompts[-1])
    assert "Can I talk to a person?" in seen and "[no answer: the user stopped it]" in seen


async def test_reasoning_stays_out_of_the_findings_and_the_memory(service_with_memory, scripted_model):
    scripted_model.replies_for = {COORDINATOR_CALL: [Reply(tokens=["route"])],
                                  PRIMARY_CALL: [Reply(tokens=["<think>weigh them</think>", "One answer."])]}
    scripted_model.replies = [Reply(tokens=["<think>look it up</think>", "Within 45 days."])]  # the knowledge agent
    service = service_with_memory()
    events = await run_message(service, KNOWLEDGE_ONLY, "t1", agent_graph="team")
    assert events[-1].answer == "One answer."
    assert {e.text for e in events if e.type == "reasoning"} >= {"look it up", "weigh them"}
    primary_prompt = next(p for p in scripted_model.prompts if PRIMARY_CALL in p[0].text)[0].text
    assert "Within 45 days." in primary_prompt and "look it up" not in primary_prompt
    await run_message(service, "Thanks", "t1", agent_graph="team")
    assert "weigh them" not in " ".join(m.text for m in scripted_model.prompts[-1])
