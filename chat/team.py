"""The team graph (AGENT_GRAPH=team): a coordinator routes, specialists work in parallel, a primary agent answers.

    coordinator ──Send──▶ knowledge (subgraph: retrieve → answer) ──┐
                └─Send──▶ policy    (subgraph: work ⇄ tools)     ───┴──▶ primary ──▶ end

The coordinator asks a tool-calling model to route (its `route_question` call), and routes by plain
rules when the model cannot call tools or gives no valid route. The local model's reduced form: rules
route, the policy agent runs the calculator on the sums the question writes out, and the primary
agent joins the findings (worked-out amounts first) instead of rewriting them. Each
specialist is a LangGraph subgraph run through `Send`, so both run in the same step, side by side;
the primary agent writes the one answer from their findings, quoted like facts.

What each agent does is announced on the custom stream (`plan`, `handoff`); chat/stream.py turns
those, and the subgraphs' namespaces, into agent_start, agent_end, handoff and progress events.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.constants import TAG_NOSTREAM
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from chat.calculator import CALCULATOR_TOOL, build_calculator, expressions_in
from chat.graph import (
    THINK_BLOCK,
    Identity,
    default_identity,
    last_user_text,
    recent_turns,
    run_tool_call,
    run_tool_calls,
)
from chat.prompts import COORDINATOR_PROMPT, POLICY_PROMPT, TEAM_FINDINGS_NOTE, not_covered, system_prompt
from chat.state import GraphShape
from chat.tools import SEARCH_TOOL, TICKET_TOOL, knowledge_base_of, search_query

COORDINATOR, KNOWLEDGE, POLICY, PRIMARY = "coordinator", "knowledge", "policy", "primary"
# The team's fixed agents, and what each is for: the only values an agent_name metric label takes.
TEAM = GraphShape("team", {
    COORDINATOR: "routes the question to the specialists",
    KNOWLEDGE: "looks the answer up in the knowledge base",
    POLICY: "works out amounts and opens support tickets",
    PRIMARY: "writes the one answer from the specialists' findings",
}, answering_agent=PRIMARY, routing_agent=COORDINATOR)
SPECIALISTS = (KNOWLEDGE, POLICY)
ROUTE_TOOL = "route_question"
# Words that call for the policy agent when routing by rule: amounts, costs, tickets, people.
POLICY_WORDS = re.compile(r"\b(how much|cost|costs|fee|fees|price|total|refund amount|calculate|ticket|"
                          r"speak to|talk to|a person|human|agent)\b|\$|%", re.IGNORECASE)
PLAIN_REASON = {KNOWLEDGE: "the question asks what the documents say",
                POLICY: "the question asks for an amount or a person"}


def keep_findings(old: list[dict[str, str]] | None, new: list[dict[str, str]] | None) -> list[dict[str, str]]:
    """Add specialists' findings; None starts a new run's list."""
    return [] if new is None else [*(old or []), *new]


class TeamState(TypedDict, total=False):
    """The team's shared state, checkpointed per thread: the conversation and this run's findings."""

    messages: Annotated[list[AnyMessage], add_messages]
    route: list[dict[str, str]]  # {"agent", "reason"}: whom the coordinator sent the question to
    findings: Annotated[list[dict[str, str]], keep_findings]  # {"agent", "text", "covered"}, one per specialist


class SpecialistState(TypedDict, total=False):
    """A specialist's own state: the question it was sent, its own steps, and its finding."""

    question: str
    reason: str
    work: Annotated[list[AnyMessage], add_messages]  # its model and tool messages, kept out of the conversation
    facts: list[str]
    findings: Annotated[list[dict[str, str]], keep_findings]


class Route(BaseModel):
    agents: list[Literal["knowledge", "policy"]] = Field(min_length=1, max_length=2,
                                                         description="Who works on the question.")
    reason: str = Field(max_length=300, description="Why, in a few words.")


def route_by_rule(question: str) -> list[dict[str, str]]:
    """Route without a model: the knowledge agent always, the policy agent for amounts, costs and people."""
    route = [{"agent": KNOWLEDGE, "reason": PLAIN_REASON[KNOWLEDGE]}]
    if POLICY_WORDS.search(question) or expressions_in(question):
        route.append({"agent": POLICY, "reason": PLAIN_REASON[POLICY]})
    return route


def route_from_model(message: AIMessage) -> list[dict[str, str]] | None:
    """Return the route the model's route_question call chose, or None if it made no valid one."""
    for call in message.tool_calls:
        if call["name"] != ROUTE_TOOL:
            continue
        try:
            route = Route.model_validate(call.get("args", {}))
        except ValueError:
            return None
        reason = " ".join(route.reason.split())[:300] or "the model chose it"
        return [{"agent": agent, "reason": reason} for agent in dict.fromkeys(route.agents)]
    return None


def fan_out(state: TeamState) -> list[Send]:
    """Send the question to each specialist the coordinator chose, all in one step (in parallel)."""
    question = last_user_text(state["messages"])
    return [Send(item["agent"], {"question": question, "reason": item["reason"]}) for item in state["route"]]


def build_team_graph(
    model: BaseChatModel,
    tools: list[BaseTool],
    *,
    checkpointer: BaseCheckpointSaver | None = None,
    history_messages: int = 6,
    identity: Identity = default_identity,
) -> CompiledStateGraph:
    """Compile the team graph for `model`, with the same tools as the support graph plus a calculator."""
    by_name = {tool.name: tool for tool in [*tools, build_calculator()]}
    policy_tools = [by_name[name] for name in (CALCULATOR_TOOL, TICKET_TOOL) if name in by_name]
    route_tool = StructuredTool.from_function(lambda agents, reason: "", name=ROUTE_TOOL, args_schema=Route,
                                              description="Choose which specialists work on the question.")
    try:
        router: Any = model.bind_tools([route_tool])
        policy_model: Any = model.bind_tools(policy_tools)
    except NotImplementedError:  # the local model: route by rule, work amounts out without it
        router = policy_model = None

    async def coordinator(state: TeamState, config: RunnableConfig) -> dict[str, Any]:
        question = last_user_text(state["messages"])
        route = None
        if router is not None:
            # Not streamed: the routing call's words are not part of anyone's answer.
            quiet = {**config, "tags": [*config.get("tags", []), TAG_NOSTREAM]}
            reply = await router.ainvoke([SystemMessage(COORDINATOR_PROMPT), HumanMessage(question)], quiet)
            route = route_from_model(reply)
        route = route or route_by_rule(question)
        write = get_stream_writer()
        write({"kind": "plan", "agents": [item["agent"] for item in route], "at": time.monotonic()})
        for item in route:
            write({"kind": "handoff", "from": COORDINATOR, "to": item["agent"], "reason": item["reason"],
                   "at": time.monotonic()})
        return {"route": route, "findings": None}

    async def retrieve(state: SpecialistState, config: RunnableConfig) -> dict[str, Any]:
        call = {"name": SEARCH_TOOL, "id": f"retrieve-{_short_id()}", "args": {"query": search_query(state["question"])}}
        result = await run_tool_call(by_name.get(SEARCH_TOOL), call, config)
        return {"facts": [hit.text for hit in result.artifact or []]}

    async def answer(state: SpecialistState, config: RunnableConfig) -> dict[str, Any]:
        name, assistant, instructions = identity(knowledge_base_of(config))
        facts = state.get("facts") or []
        if not facts:
            return _finding(KNOWLEDGE, not_covered(name, can_open_tickets=False), covered=False)
        system = SystemMessage(system_prompt(facts, "", assistant, instructions))
        response = await model.ainvoke([system, HumanMessage(state["question"])], config)
        return _finding(KNOWLEDGE, response.text)

    async def work(state: SpecialistState, config: RunnableConfig) -> dict[str, Any]:
        if policy_model is None:  # reduced form: the arithmetic the question writes out, worked out
            return await _calculate_by_rule(state["question"], by_name[CALCULATOR_TOOL], config)
        work_so_far = state.get("work") or []
        response = await policy_model.ainvoke(
            [SystemMessage(POLICY_PROMPT), HumanMessage(state["question"]), *work_so_far], config)
        if response.tool_calls:
            return {"work": [response]}
        return {"work": [response], **_finding(POLICY, response.text)}

    async def policy_tools_node(state: SpecialistState, config: RunnableConfig) -> dict[str, Any]:
        return {"work": await run_tool_calls({t.name: t for t in policy_tools}, state["work"][-1], config)}

    async def primary(state: TeamState, config: RunnableConfig) -> dict[str, Any]:
        name, assistant, instructions = identity(knowledge_base_of(config))
        # Worked-out amounts first: they are exact, and a small model quotes the first fact it is given.
        findings = sorted((f for f in state.get("findings") or [] if f.get("covered", "yes") == "yes"),
                          key=lambda f: f["agent"] != POLICY)
        write = get_stream_writer()
        for finding in state.get("findings") or []:
            write({"kind": "handoff", "from": finding["agent"], "to": PRIMARY,
                   "reason": "its finding, to be combined into one answer", "at": time.monotonic()})
        if not findings:  # nobody found anything to go on: said, not generated
            return {"messages": [AIMessage(not_covered(name, can_open_tickets=policy_model is not None))]}
        if router is None:  # reduced form: a small model parrots one finding, so the findings are joined, not rewritten
            return {"messages": [AIMessage(" ".join(f["text"].strip() for f in findings))]}
        system = SystemMessage(system_prompt([f["text"] for f in findings], "", assistant,
                                             f"{instructions} {TEAM_FINDINGS_NOTE}".strip()))
        response = await model.ainvoke([system, *recent_turns(state["messages"], history_messages)], config)
        if isinstance(response.content, str) and "<think>" in response.content:
            # As in the support graph: the next turn's memory keeps answers, not reasoning.
            response = response.model_copy(update={"content": THINK_BLOCK.sub("", response.content).strip()})
        return {"messages": [response]}

    knowledge = StateGraph(SpecialistState)
    knowledge.add_node("retrieve", retrieve)
    knowledge.add_node("answer", answer)
    knowledge.add_edge(START, "retrieve")
    knowledge.add_edge("retrieve", "answer")
    knowledge.add_edge("answer", END)

    policy = StateGraph(SpecialistState)
    policy.add_node("work", work)
    policy.add_node("tools", policy_tools_node)
    policy.add_edge(START, "work")
    policy.add_conditional_edges("work", _after_work, ["tools", END])
    policy.add_edge("tools", "work")

    team = StateGraph(TeamState)
    team.add_node(COORDINATOR, coordinator)
    team.add_node(KNOWLEDGE, knowledge.compile())
    team.add_node(POLICY, policy.compile())
    team.add_node(PRIMARY, primary)
    team.add_edge(START, COORDINATOR)
    team.add_conditional_edges(COORDINATOR, fan_out, list(SPECIALISTS))
    team.add_edge(KNOWLEDGE, PRIMARY)
    team.add_edge(POLICY, PRIMARY)
    team.add_edge(PRIMARY, END)
    return team.compile(checkpointer=checkpointer)


def _after_work(state: SpecialistState) -> Literal["tools", "__end__"]:
    last = (state.get("work") or [None])[-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else END


async def _calculate_by_rule(question: str, calculator: BaseTool, config: RunnableConfig) -> dict[str, Any]:
    """The policy agent without a tool-calling model: run the calculator on each sum the question writes."""
    results = []
    for expression in expressions_in(question):
        call = {"name": CALCULATOR_TOOL, "id": f"calc-{_short_id()}", "args": {"expression": expression}}
        message = await run_tool_call(calculator, call, config)
        if message.status == "success":
            results.append(message.text)
    if not results:
        return _finding(POLICY, "There is no amount written out in the question to work out.", covered=False)
    return _finding(POLICY, "; ".join(results) + ".")


def _finding(agent: str, text: str, covered: bool = True) -> dict[str, Any]:
    """A specialist's finding, its reasoning (<think>…</think>) left out: the primary agent gets answers."""
    text = THINK_BLOCK.sub("", text).strip()
    return {"findings": [{"agent": agent, "text": text, "covered": "yes" if covered and text else "no"}]}


def _short_id() -> str:
    import uuid

    return uuid.uuid4().hex[:12]
