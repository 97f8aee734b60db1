"""Drive one run of a graph: stream it, wait for approvals, and always end with `RunEnded`.

`chat/stream.py` turns each streamed item into events; this module asks LangGraph for those items
(`graph.astream` with the three stream modes, and `subgraphs=True` for a team's agents), resumes a
paused run with the person's decision, and closes a stopped or failed turn in the conversation's memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.graph.state import CompiledStateGraph

from chat.approvals import Decide, await_approval
from chat.events import Event
from chat.failures import describe_failure
from chat.memory import close_turn, despite_cancels
from chat.model_calls import ModelCalls
from chat.state import ANSWER_NODE
from chat.stream import STREAM_MODES, RunTranslator

log = logging.getLogger("glassbox.stream")


async def stream_run(
    graph: CompiledStateGraph,
    message: str,
    *,
    translator: RunTranslator,
    model_name: str,
    recursion_limit: int,
    timeout_s: float,
    emit: Callable[[Event], None],
    decide: Decide | None = None,
    knowledge: tuple[str, str] = ("", ""),
    assistant: str = "",
    run_config: dict[str, Any] | None = None,
) -> None:
    """Run the graph on one message, emitting every event; always ends with `RunEnded`.

    A side-effecting tool call pauses the graph (LangGraph's interrupt()); `decide` is awaited for
    the person's decision, and the graph resumes with it, all within this one run.
    """
    ids = translator.ids
    configurable = {"thread_id": ids["thread_id"]} | ({"knowledge_base": knowledge[0]} if knowledge[0] else {})
    config = {"configurable": configurable, "recursion_limit": recursion_limit,
              "callbacks": [ModelCalls(translator, emit)]}
    translator.known_names = (assistant,) if assistant else ()
    emit(translator.start(message, model_name, *knowledge, config=run_config))
    graph_input: Any = {"messages": [HumanMessage(message)]}
    answering = translator.shape.answering_agent or ANSWER_NODE  # the node whose words the memory keeps
    try:
        while graph_input is not None:
            await _stream_once(graph, graph_input, config, translator, timeout_s, emit)
            graph_input = await await_approval(translator, decide, emit)
    except asyncio.CancelledError:
        closing = translator.finish("cancelled", stopped="stopped")
        # Memory is repaired before the run's end is told: a reader may send the next turn at once.
        await despite_cancels(close_turn(graph, config, closing[-1].answer, "the user stopped it", as_node=answering))
        emit_all(emit, closing)
        raise
    except Exception as error:
        node, started = translator.current_node, bool("".join(translator.answer).strip())
        kind, text = describe_failure(error, node, recursion_limit, timeout_s, started=started)
        # The library's own words and the stack go to the log, never to the user.
        log.warning("run failed", exc_info=error, extra={**ids, "kind": kind, "node": node})
        closing = translator.finish("failed", error=(kind, text))
        await despite_cancels(close_turn(graph, config, closing[-1].answer, f"the run failed ({kind})",
                                          refused=kind == "input", as_node=answering))
        emit_all(emit, closing)
    else:
        emit_all(emit, translator.finish("completed"))


async def _stream_once(graph: CompiledStateGraph, graph_input: Any, config: dict[str, Any],
                       translator: RunTranslator, timeout_s: float, emit: Callable[[Event], None]) -> None:
    """Stream the graph until it ends or pauses, emitting events."""
    # Memory is written when the graph stops (ends, fails, is stopped or pauses for approval), not
    # after every step: with one SQLite connection, 25 concurrent runs' per-step writes queued
    # behind each other and held the runs' first steps up to ~0.9 s (bench/load.py). A process
    # killed mid-run loses that turn from memory; the trace store still has all of it.
    durability = {"durability": "exit"} if graph.checkpointer else {}
    # A team's agents are subgraphs: with subgraphs=True each item says which one it came from.
    subgraphs = bool(translator.shape.agents)
    stream = graph.astream(graph_input, config, stream_mode=STREAM_MODES, subgraphs=subgraphs, **durability)
    try:
        async for item in _with_stall_timeout(stream, timeout_s):
            namespace, mode, chunk = item if subgraphs else ((), *item)
            for event in translator.translate(mode, chunk, namespace):
                emit(event)
    finally:
        await stream.aclose()


def emit_all(emit: Callable[[Event], None], events: list[Event]) -> None:
    """Emit events in order."""
    for event in events:
        emit(event)


async def _with_stall_timeout(stream: AsyncIterator[Any], timeout_s: float) -> AsyncIterator[Any]:
    """Yield from `stream`, raising TimeoutError if nothing arrives for `timeout_s`."""
    while True:
        try:
            async with asyncio.timeout(timeout_s):
                item = await anext(stream)
        except StopAsyncIteration:
            return
        yield item


