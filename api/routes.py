"""The HTTP API beside the page: chat (SSE or JSON), threads, runs, health and prewarm."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from api.sse import done_payload, event_stream
from chat.events import ErrorOccurred, RunEnded
from chat.service import AgentService, MessageRefused
from traces.store import TraceStore

# The event types a client may ask for; `error` and `done` always come.
StreamedType = Literal[
    "run_queued", "run_start", "node_start", "node_end", "tool_start", "tool_end",
    "retrieval", "reasoning", "token", "cancelled",
]


class ChatRequest(BaseModel):
    message: str = Field(description="The user's message.", examples=["How long can I return a faulty item?"])
    thread_id: str | None = Field(None, description="Continue this thread; omit to start a new one.")
    events: list[StreamedType] | None = Field(
        None, description='Event types to stream (default: all). ["token"] is the token-only level.'
    )


class Rename(BaseModel):
    title: str = Field(min_length=1, max_length=200)


def build_api(service: AgentService, traces: TraceStore, heartbeat_s: float = 15.0) -> APIRouter:
    """Return the /api routes over this service and trace store."""
    api = APIRouter(prefix="/api")

    def start(request: ChatRequest) -> str:
        """Check a chat request; return its thread id or raise the HTTP error that explains it."""
        try:
            service.check(request.message)
        except MessageRefused as refused:
            raise HTTPException(413 if refused.reason == "too_long" else 422, str(refused)) from None
        if request.thread_id is None:
            return uuid.uuid4().hex
        if traces.get_thread(request.thread_id) is None:
            raise HTTPException(404, f"No thread {request.thread_id!r}; omit thread_id to start a new one.")
        if service.is_busy(request.thread_id):
            raise HTTPException(409, "An answer is still streaming in this thread; wait for it to finish.")
        return request.thread_id

    @api.post("/chat/stream", summary="Run a message, streaming its events as Server-Sent Events")
    async def chat_stream(request: ChatRequest) -> StreamingResponse:
        thread_id = start(request)
        stream = event_stream(service.stream(request.message, thread_id), request.events, heartbeat_s)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    @api.post("/chat", summary="Run a message and answer with the whole result")
    async def chat(request: ChatRequest) -> JSONResponse:
        thread_id = start(request)
        error = None
        async for event in service.stream(request.message, thread_id):
            if isinstance(event, ErrorOccurred):
                error = event.message
            if isinstance(event, RunEnded):
                body = {**done_payload(event), "error": error}
                del body["type"]
                return JSONResponse(body, status_code=502 if event.status == "failed" else 200)
        raise HTTPException(500, "The run ended without a result.")  # unreachable: runs always end

    @api.get("/threads", summary="List threads, most recently active first")
    def list_threads() -> dict[str, Any]:
        return {"threads": traces.list_threads()}

    @api.get("/threads/{thread_id}", summary="A thread and its messages")
    def get_thread(thread_id: str) -> dict[str, Any]:
        thread = _found(traces.get_thread(thread_id), "thread", thread_id)
        return {**thread, "messages": traces.thread_messages(thread_id)}

    @api.patch("/threads/{thread_id}", summary="Rename a thread")
    def rename_thread(thread_id: str, rename: Rename) -> dict[str, Any]:
        _found(traces.rename_thread(thread_id, rename.title) or None, "thread", thread_id)
        return traces.get_thread(thread_id)

    @api.delete("/threads/{thread_id}", summary="Delete a thread (soft; ?hard=true removes its rows)")
    async def delete_thread(thread_id: str, hard: bool = False) -> dict[str, Any]:
        if service.is_busy(thread_id):
            raise HTTPException(409, "An answer is still streaming in this thread; stop it first.")
        deleted = await asyncio.to_thread(traces.delete_thread, thread_id, hard)
        _found(deleted or None, "thread", thread_id)
        if hard and service.checkpointer is not None:
            await service.checkpointer.adelete_thread(thread_id)  # its conversation memory too
        return {"id": thread_id, "deleted": True, "hard": hard}

    @api.get("/runs", summary="List runs, newest first")
    def list_runs(thread_id: str | None = None, limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
        if thread_id is not None:
            _found(traces.get_thread(thread_id), "thread", thread_id)
        return {"runs": traces.list_runs(thread_id, limit)}

    @api.get("/runs/{run_id}", summary="A run and its ordered events")
    def get_run(run_id: str) -> dict[str, Any]:
        return _found(traces.get_run(run_id), "run", run_id)

    @api.get("/health", summary="Status, model, knowledge-base size, uptime")
    def health() -> dict[str, Any]:
        components = service.components
        return {
            "status": service.status,
            "model": components.model_name if components else None,
            "chunks": components.knowledge_chunks if components else None,
            "uptime_s": round(time.monotonic() - service.started_at, 3),
        }

    @api.get("/prewarm", summary="Wait for warm-up; report readiness and load timings")
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


def _found(value: Any, kind: str, key: str) -> Any:
    if value is None:
        raise HTTPException(404, f"No {kind} {key!r}.")
    return value
