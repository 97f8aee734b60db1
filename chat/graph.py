"""The agent graph: retrieve first, always; answer with tools bound; loop on tool calls."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt
from pydantic import BaseModel, ValidationError

from chat.prompts import (
    REJECTED_TOOL_RESULT,
    TOOL_FAILED,
    TOOL_GUIDANCE,
    UNKNOWN_TOOL,
    not_covered,
    system_prompt,
)
from chat.state import ANSWER_NODE, RETRIEVE_NODE, AgentState
from chat.tools import (
    SEARCH_TOOL,
    TICKET_TOOL,
    describe_invalid_input,
    knowledge_base_of,
    needs_approval,
    search_query,
)

THINK_BLOCK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
log = logging.getLogger("glassbox.tools")
# A knowledge base's name (None: the default) -> its resolved name, assistant name and instructions.
Identity = Callable[[str | None], tuple[str, str, str]]


def default_identity(name: str | None) -> tuple[str, str, str]:
    """The identity of a graph built without knowledge bases (tests, benchmarks)."""
    return name or "default", "a support assistant", ""


def route_after_agent(state: AgentState) -> Literal["tools", "__end__"]:
    """Go to the tools when the model asked for any, else finish."""
    last = state["messages"][-1]
    if isinstance(last, AIMessage) and last.tool_calls:
        return "tools"
    return END


def last_user_text(messages: list[AnyMessage]) -> str:
    """Return the text of the newest human message."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text
    return ""


def ask_approval(call: dict[str, Any]) -> dict[str, Any]:
    """Pause the run until a person approves or rejects this tool call; return their decision.

    LangGraph's interrupt(): the first time, the node stops here and the run waits; when it is
    resumed with Command(resume=decision), the node runs again and this returns the decision.
    """
    return interrupt({"call_id": call["id"], "tool": call["name"], "input": call.get("args", {})})


async def run_tool_call(tool: BaseTool | None, call: dict[str, Any], config: RunnableConfig,
                        rejected: str | None = None) -> ToolMessage:
    """Run one tool call, announcing it on the custom stream; failures and rejections become error results.

    An error result is a sentence in our words, shown to the user and told to the model (which may
    retry); a library's own error text can echo the input or carry URLs, so it goes to the log.
    """
    write = get_stream_writer()
    name, call_id, args = call["name"], call["id"], call.get("args", {})
    write({"kind": "tool_start", "call_id": call_id, "tool": name, "input": args, "at": time.monotonic()})
    started = time.perf_counter()
    content, artifact, error = await _outcome(tool, call, config, rejected)
    duration = time.perf_counter() - started
    if name == SEARCH_TOOL and artifact is not None:
        query = search_query(str(args.get("query", "")))  # what was searched
        write({"kind": "retrieval", "call_id": call_id, "query": query, "hits": artifact, "at": time.monotonic()})
    write({"kind": "tool_end", "call_id": call_id, "tool": name, "output": content, "duration_s": duration, "error": error, "at": time.monotonic()})
    return ToolMessage(content=content, tool_call_id=call_id, name=name, status="error" if error else "success", artifact=artifact)


async def _outcome(tool: BaseTool | None, call: dict[str, Any], config: RunnableConfig,
                   rejected: str | None) -> tuple[str, Any, str | None]:
    """Run the call; return its content, artifact and error (None when it succeeded)."""
    name = call["name"]
    if rejected is not None:  # rejected by a person: the model is told so, in plain words
        error = REJECTED_TOOL_RESULT.format(reason=rejected)
        return error, None, error
    if tool is None:
        error = UNKNOWN_TOOL.format(tool=name)
    else:
        try:
            result = await tool.ainvoke({**call, "type": "tool_call"}, config)
            return result.text, result.artifact, None
        except ValidationError as exc:  # a model can send anything; this says what to fix
            error = describe_invalid_input(name, exc)
        except Exception as exc:  # a tool's failure is shown to the user and the model, not raised
            log.warning("tool failed", exc_info=True, extra={"tool": name, "call_id": call["id"]})
            # Our own errors (e.g. rag's "There is no knowledge base named …") are sentences in our words.
            ours = type(exc).__module__.partition(".")[0] in ("chat", "rag")
            error = str(exc) if ours else TOOL_FAILED.format(tool=name)
    return f"Tool error: {error}", None, error


async def run_tool_calls(tools: dict[str, BaseTool], message: AIMessage, config: RunnableConfig) -> list[ToolMessage]:
    """Run a model message's tool calls with `tools` (by name), asking a person first where a tool must.

    Every approval first: on resume the node runs again from the top, and no tool must have run
    twice by then. A call to a tool not in `tools` is an unknown tool's error result.
    """
    decisions = {c["id"]: ask_approval(c) for c in message.tool_calls
                 if needs_approval(tools.get(c["name"])) and _valid_input(tools[c["name"]], c)}
    results = []
    for call in message.tool_calls:
        decision = decisions.get(call["id"], {"approved": True})
        rejected = None if decision.get("approved") else (decision.get("reason") or "no reason given")
        results.append(await run_tool_call(tools.get(call["name"]), call, config, rejected))
    return results


def build_graph(
    model: BaseChatModel,
    tools: list[BaseTool],
    *,
    checkpointer: BaseCheckpointSaver | None = None,
    history_messages: int = 6,
    identity: Identity = default_identity,
) -> CompiledStateGraph:
    """Compile the agent graph for `model`; tools are bound when the model can call them.

    The run's knowledge base (config["configurable"]["knowledge_base"]) gives the assistant its
    name and instructions; when none of its sentences is relevant enough, the answer says so
    instead of asking the model.
    """
    by_name = {tool.name: tool for tool in tools}
    try:
        answering = model.bind_tools(tools)
        guidance = TOOL_GUIDANCE
    except NotImplementedError:  # e.g. the small local model: it answers from retrieval alone
        answering, guidance = model, ""

    async def retrieve(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        # The search reads a long message by its beginning (chat.tools.search_query); cut here too, so
        # the traced input is what was searched.
        query = search_query(last_user_text(state["messages"]))
        call = {"name": SEARCH_TOOL, "id": f"retrieve-{uuid.uuid4().hex[:12]}", "args": {"query": query}}
        result = await run_tool_call(by_name.get(SEARCH_TOOL), call, config)
        return {"facts": [hit.text for hit in result.artifact or []]}

    async def agent(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        name, assistant, instructions = identity(knowledge_base_of(config))
        if SEARCH_TOOL in by_name and not state.get("facts"):  # nothing passed RAG_MIN_SCORE
            # Returned, not generated: LangGraph's "messages" stream carries it to the reader like tokens.
            return {"messages": [AIMessage(not_covered(name, can_open_tickets=bool(guidance) and TICKET_TOOL in by_name))]}
        system = SystemMessage(system_prompt(state.get("facts", []), guidance, assistant, instructions))
        conversation = recent_turns(state["messages"], history_messages)
        response = await answering.ainvoke([system, *conversation], config)
        if isinstance(response.content, str) and "<think>" in response.content:
            # Keep reasoning out of the stored conversation: the next turn should see answers only.
            response = response.model_copy(update={"content": THINK_BLOCK.sub("", response.content).strip()})
        return {"messages": [response]}

    async def run_tools(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        return {"messages": await run_tool_calls(by_name, state["messages"][-1], config)}

    builder = StateGraph(AgentState)
    builder.add_node(RETRIEVE_NODE, retrieve)
    builder.add_node(ANSWER_NODE, agent)
    builder.add_node("tools", run_tools)
    builder.add_edge(START, RETRIEVE_NODE)
    builder.add_edge(RETRIEVE_NODE, ANSWER_NODE)
    builder.add_conditional_edges(ANSWER_NODE, route_after_agent, ["tools", END])
    builder.add_edge("tools", ANSWER_NODE)
    return builder.compile(checkpointer=checkpointer)


def _valid_input(tool: BaseTool, call: dict[str, Any]) -> bool:
    """Return whether a call's input fits the tool: nobody is asked to approve a call that cannot run."""
    schema = tool.args_schema
    if not isinstance(schema, type) or not issubclass(schema, BaseModel):
        return True
    try:
        schema.model_validate(call.get("args", {}))
    except ValidationError:
        return False
    return True


def recent_turns(messages: list[AnyMessage], limit: int) -> list[AnyMessage]:
    """Return the last `limit` messages, never starting on an orphaned tool result."""
    recent = messages[-limit:]
    while recent and isinstance(recent[0], ToolMessage):
        recent = recent[1:]
    return recent
