"""/ask: the chat as a Gradio API for gradio_client, streaming the answer so far."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import gradio as gr
from fastapi import HTTPException

from chat.config import ID_PATTERN
from chat.service import MessageRefused, WrongKnowledgeBase
from ui.chat_page import UI_FRAME_S, run_turn
from ui.render import TurnView

if TYPE_CHECKING:
    from app import Glassbox


def add_ask_api(glassbox: Glassbox) -> None:
    """Add /ask to the Blocks being built: streams partial answers, ends in an error status on failure."""
    service, access = glassbox.service, glassbox.access

    async def ask(message: str, thread_id: str, request: gr.Request, knowledge_base: str = "") -> AsyncIterator[str]:
        """Answer `message` in conversation `thread_id`, yielding the answer so far.

        `knowledge_base` (optional) picks the knowledge base of a new conversation. The graph is
        AGENT_GRAPH's: a raw call sends every parameter, so a new one would break existing callers;
        the page and /api/chat* choose the graph per message.
        """
        try:
            caller = access.ask_caller(request.headers.get("authorization"), request.session_hash)
            service.check(message or "")
            service.check_knowledge_base(knowledge_base or None)
        except (MessageRefused, WrongKnowledgeBase) as refused:
            raise gr.Error(str(refused)) from None
        except HTTPException as refused:
            raise gr.Error(refused.detail) from None
        if thread_id and not re.fullmatch(ID_PATTERN.strip("^$"), thread_id):
            raise gr.Error("thread_id must be 1 to 128 letters, digits, - or _; leave it empty to start a new one.")
        view, sent_at = TurnView(), -UI_FRAME_S
        async for view in run_turn(service, message, thread_id or uuid.uuid4().hex, caller, knowledge_base or None):
            latest = view.events[-1] if view.events else None
            # The first token goes out at once; later ones at most once a frame, like the page:
            # each yield is a whole Gradio step, and under load those steps were the cost.
            if latest is not None and latest.type == "token" and time.monotonic() - sent_at >= UI_FRAME_S:
                sent_at = time.monotonic()
                yield view.answer
            elif latest is not None and latest.type == "approval_required":
                yield (view.answer + f"\n\n⏸ Waiting for approval to run {latest.tool}: "
                       f"POST /api/runs/{latest.run_id}/approve or /reject.").strip()
        # A failed or stopped run is not an answer: its partial answer goes out, then an error status.
        failure = next((e.message for e in view.events if e.type == "error"), None)
        if failure is None and any(e.type == "cancelled" for e in view.events):
            failure = "The run was stopped before its answer was finished."
        notes = [s.text for s in view.segments if s.kind == "note"]
        if failure or (notes and not view.answer):
            if view.answer.strip():
                yield view.answer.strip()
            raise gr.Error(failure or " ".join(notes))
        yield view.answer.strip() + ("\n\n" + "\n".join(notes) if notes else "")

    gr.api(ask, api_name="ask", concurrency_limit=None)
