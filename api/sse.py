"""Server-Sent Events: a run's events as `data:` lines, with heartbeats and a type filter."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Collection
from contextlib import suppress
from typing import Any

from chat.events import ApprovalDecided, ApprovalRequired, ErrorOccurred, Event, RunEnded
from chat.service import NotYours, ThreadBusy, WrongKnowledgeBase

_END = object()
# Sent whatever the filter: a client that misses a pause would wait for nothing.
ALWAYS_SENT = (ErrorOccurred, ApprovalRequired, ApprovalDecided)
OUR_REFUSALS = (ThreadBusy, NotYours, WrongKnowledgeBase)  # a run refused before it began, in our words


def sse(data: dict[str, Any]) -> str:
    """Format one JSON object as an SSE `data:` message."""
    return f"data: {json.dumps(data, default=str, ensure_ascii=False)}\n\n"


def done_payload(end: RunEnded, error: ErrorOccurred | None = None) -> dict[str, Any]:
    """Return the `done` event that closes every stream: the run's end as a result, without its
    place in the trace (at, seq, ts, span ids), and for a failed run its error's message and kind."""
    return {
        "type": "done", "run_id": end.run_id, "thread_id": end.thread_id, "status": end.status,
        "answer": end.answer, "ttft_s": end.ttft_s, "latency_s": end.latency_s,
        "input_tokens": end.input_tokens, "output_tokens": end.output_tokens, "tool_calls": end.tool_calls,
        "approval_wait_s": end.approval_wait_s,
        "citations": [dataclasses.asdict(hit) for hit in end.citations], "grounding": end.grounding,
        "ttft_breakdown": end.ttft_breakdown, "first_token_agent": end.first_token_agent or None,
        "error": error.message if error else None, "error_kind": error.kind if error else None,
    }


async def event_stream(
    events: AsyncIterator[Event], wanted: Collection[str] | None, heartbeat_s: float
) -> AsyncIterator[str]:
    """Yield SSE messages for a run: the wanted events in their stored shapes, heartbeats when
    idle, then `done`, always last.

    `error` and the approval events are always sent, whatever the filter; `run_end` is sent like
    any event, then `done`. A stream that could not start at all ends with an `error` alone.
    Closing this generator (a client that went away) closes `events`, which stops the run.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in events:
                queue.put_nowait(event)
        except Exception as error:  # e.g. the thread became busy between the check and the start
            queue.put_nowait(error)
        finally:
            queue.put_nowait(_END)

    task = asyncio.create_task(pump())
    failure: ErrorOccurred | None = None
    try:
        while True:
            try:
                async with asyncio.timeout(heartbeat_s):  # unlike wait_for, no task per event
                    item = await queue.get()
            except TimeoutError:
                yield sse({"type": "heartbeat"})
                continue
            if item is _END:
                return
            if isinstance(item, Exception):
                yield sse({"type": "error", "kind": "internal", "message": why_not_started(item)})
                return
            failure = item if isinstance(item, ErrorOccurred) else failure
            if is_sent(item, wanted):
                yield sse(item.to_dict())
            if isinstance(item, RunEnded):
                yield sse(done_payload(item, failure))
                return
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await asyncio.shield(task)  # see AgentService.stream: never pass a cancel on twice


def is_sent(event: Event, wanted: Collection[str] | None) -> bool:
    """Whether a client that asked for `wanted` event types gets `event` (None: all of them)."""
    return wanted is None or event.type in wanted or isinstance(event, ALWAYS_SENT)


def why_not_started(error: Exception) -> str:
    """Our own refusals say why in our words; anything else is not shown (the log has it)."""
    if isinstance(error, OUR_REFUSALS):
        return str(error)
    return "The run could not start; send the message again. The server log has the details."
