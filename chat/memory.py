"""Keep a conversation's memory consistent when a turn is cut off by a failure or a stop.

The next turn must still alternate user and assistant, with every tool call answered (an
OpenAI-compatible endpoint refuses anything else), and the model should know what it had
already said. `close_turn` writes what the cut-off turn leaves open, as the agent node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from contextlib import suppress
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.graph.state import CompiledStateGraph

from chat.prompts import CUT_OFF_MARK, NO_ANSWER_MARK, NOT_RUN_TOOL_RESULT, REFUSED_MESSAGE
from chat.state import ANSWER_NODE

log = logging.getLogger("glassbox.memory")


async def close_turn(graph: CompiledStateGraph, config: dict[str, Any], answer: str, why: str,
                     *, refused: bool = False, as_node: str = ANSWER_NODE) -> None:
    """Write what a cut-off turn leaves open into the conversation's memory, as the node that answers
    (the support graph's agent, the team graph's primary agent)."""
    if not graph.checkpointer:  # no memory to keep consistent
        return
    try:
        state = await graph.aget_state(config)
        closing = closing_messages(state.values.get("messages", []), answer, why, refused=refused)
        if closing:
            await graph.aupdate_state(config, {"messages": closing}, as_node=as_node)
    except Exception:  # memory repair is best effort; the run's end must still be told
        log.exception("could not close the turn in memory", extra=config["configurable"])


def closing_messages(
    messages: list[AnyMessage], answer: str, why: str, *, refused: bool = False
) -> list[AnyMessage]:
    """Return what closes a cut-off turn: results for its open tool calls, then its partial answer, marked.

    `answer` is all the text the run streamed; what the turn's memory already holds is left out.
    With `refused`, the turn's user message is replaced by a short note: sent again, it would be refused again.
    """
    last = messages[-1] if messages else None
    if last is None or (isinstance(last, AIMessage) and not last.tool_calls):
        return []  # the turn never reached memory, or it ended with an answer
    start = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1) + 1
    turn = messages[start:]
    answered = {m.tool_call_id for m in turn if isinstance(m, ToolMessage)}
    closing: list[AnyMessage] = [
        ToolMessage(NOT_RUN_TOOL_RESULT, tool_call_id=call["id"], name=call["name"], status="error")
        for m in turn if isinstance(m, AIMessage) for call in m.tool_calls if call["id"] not in answered
    ]
    saved = "".join(m.text for m in turn if isinstance(m, AIMessage)).strip()
    partial = answer[len(saved):].strip() if saved and answer.startswith(saved) else answer.strip()
    mark = f"{partial}\n\n{CUT_OFF_MARK.format(why=why)}" if partial else NO_ANSWER_MARK.format(why=why)
    if refused and start > 0:
        closing.insert(0, HumanMessage(REFUSED_MESSAGE, id=messages[start - 1].id))  # same id: replaces it
    return [*closing, AIMessage(mark)]


async def despite_cancels(work: Awaitable[None]) -> None:
    """Run `work` to its end even if this task is cancelled meanwhile.

    A web server (anyio) cancels again and again; a bare shield would give up at the first cancel.
    """
    task = asyncio.ensure_future(work)
    while not task.done():
        with suppress(asyncio.CancelledError):
            await asyncio.shield(task)
