"""Approvals: a side-effecting tool call pauses its run until a person approves or rejects it.

The graph pauses with LangGraph's interrupt() (`chat.graph.ask_approval`); `await_approval`
waits for the decision and returns the Command that resumes the graph, within the same run.
`Approvals` holds the runs now waiting, so the page and the API can decide them by run id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from langgraph.types import Command

from chat.events import ApprovalDecided, ApprovalRequired, Event

if TYPE_CHECKING:
    from chat.stream import RunTranslator

log = logging.getLogger("glassbox.approvals")
# Awaited when the graph pauses for a person: returns {"approved": bool, "by": str, "reason": str}.
Decide = Callable[[ApprovalRequired], Awaitable[dict[str, Any]]]


class Approvals:
    """The runs waiting for a person's decision, by run id."""

    def __init__(self, timeout_s: float = 300.0) -> None:
        self.timeout_s = timeout_s
        self._waiting: dict[str, tuple[ApprovalRequired, asyncio.Future[dict[str, Any]]]] = {}

    def expect(self, request: ApprovalRequired) -> None:
        """Take decisions on `request` from the moment it is announced.

        A reader sees `approval_required` while the graph is still stopping (it writes its memory
        as it stops); a decision sent then must not be lost (it once waited out APPROVAL_TIMEOUT_S).
        """
        if request.run_id not in self._waiting:
            self._waiting[request.run_id] = (request, asyncio.get_running_loop().create_future())

    def forget(self, run_id: str) -> None:
        """Drop what a run that ended was waiting for."""
        self._waiting.pop(run_id, None)

    async def wait(self, request: ApprovalRequired) -> dict[str, Any]:
        """Wait for the decision on `request`; no decision in time is a rejection."""
        self.expect(request)
        future = self._waiting[request.run_id][1]
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            return {"approved": False, "by": "timeout",
                    "reason": f"nobody decided within {self.timeout_s:g} s (APPROVAL_TIMEOUT_S)"}
        finally:
            self._waiting.pop(request.run_id, None)

    def pending(self, run_id: str) -> ApprovalRequired | None:
        """Return what the run is waiting for, or None."""
        waiting = self._waiting.get(run_id)
        return waiting[0] if waiting else None

    def pending_in_thread(self, thread_id: str) -> ApprovalRequired | None:
        """Return what a run of this thread is waiting for, or None."""
        return next((request for request, _ in self._waiting.values() if request.thread_id == thread_id), None)

    def decide(self, run_id: str, approved: bool, by: str, reason: str = "") -> bool:
        """Answer a waiting run; return whether one was waiting."""
        waiting = self._waiting.get(run_id)
        if waiting is None or waiting[1].done():
            return False
        waiting[1].set_result({"approved": approved, "by": by, "reason": reason})
        return True


async def await_approval(translator: RunTranslator, decide: Decide | None,
                         emit: Callable[[Event], None]) -> Command | None:
    """If the graph paused for an approval, wait for the decision; return the resume command."""
    request = translator.pending_approval
    if request is None:
        return None
    asked = time.monotonic()
    # Stopped while waiting, the cancel propagates; stream_run then closes the turn in memory.
    decision = await decide(request) if decide else {"approved": False, "by": "system",
                                                     "reason": "nobody can approve actions here"}
    waited = time.monotonic() - asked
    translator.pending_approval, translator.paused_s = None, translator.paused_s + waited
    emit(ApprovalDecided(**translator.ids, at=translator.clock(), call_id=request.call_id, tool=request.tool,
                         approved=bool(decision.get("approved")), by=str(decision.get("by", "user")),
                         reason=str(decision.get("reason", "")), waited_s=waited))
    return Command(resume=decision)
