"""The HTTP API beside the page: chat (SSE or JSON), threads, runs, health and prewarm."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from api import openapi as doc
from api.sse import done_payload, event_stream
from auth.access import Access
from auth.callers import Caller
from chat.config import ID_PATTERN, ISO_TIME, KB_NAME_MAX, KB_NAME_PATTERN
from chat.events import ErrorOccurred, Event, RunEnded
from chat.service import AgentService, MessageRefused, ThreadBusy, WrongKnowledgeBase
from chat.spans import span_tree
from traces.compare import compare_runs
from traces.store import RunQuery, TraceStore, stored_time

# Each route documents its 200 body and the errors its code answers with `doc.answers(...)`;
# api/openapi.py adds the 400, 413 and 422 that every route of its shape can answer.

# Ids are ours (hex) or a client's own name for a conversation: letters, digits, - and _ only.
RunState = Literal["queued", "in_progress", "awaiting_approval", "completed", "failed", "cancelled", "interrupted"]
StatusFilter = Query(None, description="Only runs in this state.")
RUN_FILTERS = frozenset({"thread_id", "status", "grounding", "note", "q", "model", "knowledge_base", "min_ttft_s",
                         "min_latency_s", "since", "until", "order", "limit", "offset"})
ThreadId = Path(pattern=ID_PATTERN, description="A thread id: letters, digits, - and _, at most 128.")
RunId = Path(pattern=ID_PATTERN, description="A run id.")

# The event types a client may ask for; `error`, `done` and the approval events always come.
StreamedType = Literal[
    "run_queued", "run_start", "node_start", "node_end", "tool_start", "tool_end",
    "retrieval", "approval_required", "approval_decided", "model_start", "model_end", "reasoning", "token",
    "cancelled", "grounding", "run_end", "agent_start", "agent_end", "handoff", "progress",
]


class ChatRequest(BaseModel):
    # The service refuses a blank message (422) and one over MAX_MESSAGE_CHARS (413) in its own words.
    message: str = Field(description="The user's message: not blank, at most MAX_MESSAGE_CHARS characters (4,000 by default).",
                         examples=["How long can I return a faulty item?"], json_schema_extra={"pattern": r"\S"})
    thread_id: str | None = Field(None, pattern=ID_PATTERN,
                                  description="Continue this thread; omit to start a new one.")
    events: list[StreamedType] | None = Field(
        None, description='Event types to stream (default: all). ["token"] is the token-only level.'
    )
    knowledge_base: str | None = Field(None, pattern=KB_NAME_PATTERN, max_length=KB_NAME_MAX, description=(
        "The knowledge base a new thread answers from (default: KNOWLEDGE_BASE); GET /api/kb lists them. "
        "A thread keeps its own: naming another for an existing thread is a 409."))
    agent_graph: Literal["support", "team"] | None = Field(None, description=(
        "The graph that answers this message (default: AGENT_GRAPH): support, one agent; team, a coordinator, "
        "knowledge and policy agents side by side, and a primary agent that answers. A thread may use either "
        "from message to message: both keep the conversation in the same memory."))


class Rename(BaseModel):
    title: str = Field(min_length=1, max_length=200)


class Decision(BaseModel):
    reason: str = Field("", max_length=500, description="Why; a rejection's reason is shown to the model.")


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="Who or what the token is for.")


async def opened(events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """The run's events with the first already taken, so a refusal found only as the run starts (its
    thread busy on another replica: traces/replicas.py) is a 409 before any response begins."""
    try:
        first = await anext(events)
    except ThreadBusy as busy:
        raise HTTPException(409, str(busy)) from None

    async def chained() -> AsyncIterator[Event]:
        yield first
        async for event in events:
            yield event

    return chained()


def chat_thread(service: AgentService, traces: TraceStore, request: ChatRequest, caller: Caller) -> str:
    """Check a chat request; return its thread id or raise the HTTP error that explains it.

    With `run_events`, the one place a ChatRequest becomes a run, for SSE, JSON and the WebSocket
    (api/ws.py) alike: a field added to ChatRequest is checked here and passed on there.
    """
    try:
        service.check(request.message)
    except MessageRefused as refused:
        raise HTTPException(413 if refused.reason == "too_long" else 422, str(refused)) from None
    try:
        service.check_knowledge_base(request.knowledge_base)
    except WrongKnowledgeBase as wrong:
        raise HTTPException(404, str(wrong)) from None
    if request.thread_id is None:
        return uuid.uuid4().hex
    thread = traces.get_thread(caller, request.thread_id)
    if thread is None:
        raise HTTPException(404, "No thread with that id is yours to see; omit thread_id to start a new one.")
    if request.knowledge_base and thread.get("knowledge_base") not in (None, request.knowledge_base):
        raise HTTPException(409, f"This thread answers from the knowledge base “{thread['knowledge_base']}”; "
                                 "start a new thread to use another one.")
    if service.is_busy(request.thread_id):
        raise HTTPException(409, "An answer is still streaming in this thread; wait for it to finish.")
    return request.thread_id


def run_events(service: AgentService, request: ChatRequest, thread_id: str, caller: Caller) -> AsyncIterator[Event]:
    """Return the events of the request's run in `thread_id` (from `chat_thread`), every field passed on.

    Nothing runs until the first event is read; closing the iterator stops the run.
    """
    return service.stream(request.message, thread_id, caller, request.knowledge_base, request.agent_graph)


def build_api(service: AgentService, traces: TraceStore, access: Access, heartbeat_s: float = 15.0) -> APIRouter:
    """Return the /api routes over this service and trace store; `access` decides who calls."""
    api = APIRouter(prefix="/api")
    caller_of = Depends(access.api_caller)

    def admin_of(caller: Caller = caller_of) -> Caller:
        return access.require_admin(caller)

    admin = Depends(admin_of)

    @api.post("/chat/stream", summary="Run a message, streaming its events as Server-Sent Events",
              response_class=StreamingResponse, responses=doc.answers(doc.EVENT_STREAM, 401, 404, 409))
    async def chat_stream(request: ChatRequest, caller: Caller = caller_of) -> StreamingResponse:
        thread_id = chat_thread(service, traces, request, caller)
        events = await opened(run_events(service, request, thread_id, caller))
        stream = event_stream(events, request.events, heartbeat_s)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    @api.post("/chat", summary="Run a message and answer with the whole result",
              responses=doc.answers(doc.ChatResult, 401, 404, 409) | doc.MODEL_FAILED)
    async def chat(request: ChatRequest, caller: Caller = caller_of) -> JSONResponse:
        thread_id = chat_thread(service, traces, request, caller)
        error = None
        async for event in await opened(run_events(service, request, thread_id, caller)):
            if isinstance(event, ErrorOccurred):
                error = event
            if isinstance(event, RunEnded):
                body = done_payload(event, error)
                del body["type"]
                return JSONResponse(body, status_code=502 if event.status == "failed" else 200)
        raise HTTPException(500, "The run ended without a result.")  # unreachable: runs always end

    @api.get("/threads", summary="List your threads, most recently active first, a page at a time",
             response_model=None, responses=doc.answers(doc.ThreadPage, 401))
    def list_threads(limit: int = Query(50, ge=1, le=200), offset: int = Query(0, ge=0, le=1_000_000),
                     caller: Caller = caller_of) -> dict[str, Any]:
        threads = traces.list_threads(caller, limit + 1, offset)
        more = len(threads) > limit
        return {"threads": threads[:limit], "next_offset": offset + limit if more else None}

    @api.get("/threads/{thread_id}", summary="A thread and its messages",
             response_model=None, responses=doc.answers(doc.ThreadWithMessages, 401, 404))
    def get_thread(thread_id: str = ThreadId, caller: Caller = caller_of) -> dict[str, Any]:
        thread = _found(traces.get_thread(caller, thread_id), "thread")
        return {**thread, "messages": traces.thread_messages(caller, thread_id)}

    @api.patch("/threads/{thread_id}", summary="Rename a thread",
               response_model=None, responses=doc.answers(doc.Thread, 401, 404))
    def rename_thread(rename: Rename, thread_id: str = ThreadId, caller: Caller = caller_of) -> dict[str, Any]:
        _found(traces.rename_thread(caller, thread_id, rename.title) or None, "thread")
        return traces.get_thread(caller, thread_id)

    @api.delete("/threads/{thread_id}", summary="Delete a thread (soft; ?hard=true removes its rows)",
                response_model=None, responses=doc.answers(doc.ThreadDeleted, 401, 404, 409))
    async def delete_thread(thread_id: str = ThreadId, hard: bool = False, caller: Caller = caller_of) -> dict[str, Any]:
        _found(traces.get_thread(caller, thread_id), "thread")
        if service.is_busy(thread_id):
            raise HTTPException(409, "An answer is still streaming in this thread; stop it first.")
        deleted = await asyncio.to_thread(traces.delete_thread, caller, thread_id, hard)
        _found(deleted or None, "thread")
        if hard and service.checkpointer is not None:
            await service.checkpointer.adelete_thread(thread_id)  # its conversation memory too
        return {"id": thread_id, "deleted": True, "hard": hard}

    @api.get("/runs", summary="List your runs: filtered, sorted, a page at a time",
             response_model=None, responses=doc.answers(doc.RunList, 401, 404),
             dependencies=[Depends(only_parameters(RUN_FILTERS))])
    def list_runs(thread_id: str | None = Query(None, pattern=ID_PATTERN),
                  status: RunState | None = StatusFilter,
                  grounding: Literal["grounded", "unsupported", "no_sources"] | None = Query(
                      None, description="Only runs whose answer got this grounding verdict."),
                  note: Literal["any", "pass", "fail", "flag"] | None = Query(
                      None, description="Only runs with a reviewer note of this label (any: with a note)."),
                  q: str | None = Query(None, max_length=200, description="Text in the message or the answer."),
                  model: str | None = Query(None, max_length=200),
                  knowledge_base: str | None = Query(None, pattern=KB_NAME_PATTERN, max_length=KB_NAME_MAX),
                  min_ttft_s: float | None = Query(None, ge=0, le=1e6), min_latency_s: float | None = Query(None, ge=0, le=1e6),
                  since: str | None = Query(None, pattern=ISO_TIME, description="ISO 8601; runs created then or later."),
                  until: str | None = Query(None, pattern=ISO_TIME, description="ISO 8601; runs created then or earlier."),
                  order: Literal["newest", "oldest", "slowest_ttft", "slowest"] = "newest",
                  limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10_000_000),
                  caller: Caller = caller_of) -> dict[str, Any]:
        if thread_id is not None:
            _found(traces.get_thread(caller, thread_id), "thread")
        query = RunQuery(thread_id=thread_id, status=status, grounding=grounding, note=note, q=q or None, model=model,
                         knowledge_base=knowledge_base, min_ttft_s=min_ttft_s, min_latency_s=min_latency_s,
                         since=_stored_time(since), until=_stored_time(until), order=order, limit=limit + 1,
                         offset=offset)
        runs = traces.find_runs(caller, query)
        return {"runs": runs[:limit], "next_offset": offset + limit if len(runs) > limit else None}

    @api.get("/runs/compare", summary="Two runs side by side: config, answer, timings, retrieval, tokens",
             response_model=None, responses=doc.answers(doc.RunComparison, 401, 404),
             dependencies=[Depends(only_parameters(frozenset({"a", "b"})))])
    def compare(a: str = Query(pattern=ID_PATTERN, description="A run id."),
                b: str = Query(pattern=ID_PATTERN, description="Another run id."),
                caller: Caller = caller_of) -> dict[str, Any]:
        _found(traces.get_run(caller, a), "run")
        _found(traces.get_run(caller, b), "run")
        return {"a": a, "b": b, **compare_runs(traces.run_events(caller, a), traces.run_events(caller, b))}

    @api.get("/runs/{run_id}", summary="A run and its ordered events",
             response_model=None, responses=doc.answers(doc.RunWithEvents, 401, 404))
    def get_run(run_id: str = RunId, caller: Caller = caller_of) -> dict[str, Any]:
        return _found(traces.get_run(caller, run_id), "run")

    @api.get("/runs/{run_id}/spans", summary="A run's spans: the run, its nodes, tool calls and model calls",
             response_model=None, responses=doc.answers(doc.RunSpans, 401, 404))
    def get_spans(run_id: str = RunId, caller: Caller = caller_of) -> dict[str, Any]:
        _found(traces.get_run(caller, run_id), "run")
        return {"run_id": run_id, "spans": [span.to_dict() for span in span_tree(traces.run_events(caller, run_id))]}

    def decide(run_id: str, approved: bool, decision: Decision | None, caller: Caller) -> dict[str, Any]:
        waiting = service.approvals.pending(run_id)
        if waiting is None or traces.get_thread(caller, waiting.thread_id) is None:
            raise HTTPException(404, "No run with that id is waiting for your approval.")
        reason = decision.reason if decision else ""
        if not service.approvals.decide(run_id, approved, by=caller.owner, reason=reason):
            raise HTTPException(409, "That approval was decided a moment ago.")
        return {"run_id": run_id, "call_id": waiting.call_id, "tool": waiting.tool, "approved": approved}

    @api.post("/runs/{run_id}/approve", summary="Approve the action a paused run is waiting on",
              response_model=None, responses=doc.answers(doc.Decided, 401, 404, 409))
    def approve(run_id: str = RunId, decision: Decision | None = None, caller: Caller = caller_of) -> dict[str, Any]:
        return decide(run_id, True, decision, caller)

    @api.post("/runs/{run_id}/reject", summary="Reject the action a paused run is waiting on; the model is told",
              response_model=None, responses=doc.answers(doc.Decided, 401, 404, 409))
    def reject(run_id: str = RunId, decision: Decision | None = None, caller: Caller = caller_of) -> dict[str, Any]:
        return decide(run_id, False, decision, caller)

    @api.post("/tokens", summary="Make a named API token (admin only); its secret is shown once",
              response_model=None, responses=doc.answers(doc.NewTokenMade, 401, 403))
    def create_token(new: NewToken, _: Caller = admin) -> dict[str, Any]:
        return access.tokens.create(new.name)

    @api.get("/tokens", summary="List API tokens (admin only), never their secrets",
             response_model=None, responses=doc.answers(doc.TokenList, 401, 403))
    def list_tokens(_: Caller = admin) -> dict[str, Any]:
        return {"tokens": access.tokens.list()}

    @api.delete("/tokens/{token_id}", summary="Revoke an API token (admin only)",
                response_model=None, responses=doc.answers(doc.TokenRevoked, 401, 403, 404))
    def revoke_token(token_id: str = Path(pattern=ID_PATTERN), _: Caller = admin) -> dict[str, Any]:
        _found(access.tokens.revoke(token_id) or None, "active token")
        return {"id": token_id, "revoked": True}

    @api.get("/health", summary="Status, model, knowledge-base size, uptime",
             response_model=None, responses=doc.answers(doc.Health))
    def health() -> dict[str, Any]:
        components = service.components
        return {
            "status": service.status,
            "model": components.model_name if components else None,
            "chunks": components.knowledge_chunks if components else None,
            "uptime_s": round(time.monotonic() - service.started_at, 3),
        }

    @api.get("/prewarm", summary="Wait for warm-up; report readiness and load timings",
             responses=doc.answers(doc.Readiness) | doc.WARM_UP_FAILED)
    async def prewarm() -> JSONResponse:
        try:
            components = await service.wait_ready()
        except Exception:
            return JSONResponse({"status": service.status, "ready": False}, status_code=503)
        return JSONResponse({
            "status": service.status, "ready": True, "model": components.model_name,
            "ready_after_s": service.ready_after_s, "load_timings_s": components.timings,
        })

    return api


def only_parameters(names: frozenset[str]):
    """A dependency that refuses query parameters the route doesn't take (FastAPI would ignore them)."""

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - names)
        if unknown:
            raise HTTPException(422, f"Unknown query parameter {unknown[0][:40]!r}; this takes: {', '.join(sorted(names))}.")

    return check


def _stored_time(text: str | None) -> str | None:
    """A time as the store writes created_at (stored_time), so they compare as text. A date the
    calendar lacks (2026-02-31) still compares as text, as the pattern allows it."""
    if text is None:
        return None
    try:
        return stored_time(text)
    except ValueError:
        return text


def _found(value: Any, kind: str) -> Any:
    """Return `value`, or 404. The id is never echoed, and another owner's thread reads as missing."""
    if value is None:
        raise HTTPException(404, f"No {kind} with that id is yours to see.")
    return value
