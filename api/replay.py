"""POST /api/runs/{id}/replay: a stored run's events again, as SSE, with their original timing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import StreamingResponse

from api import openapi as doc
from api.sse import done_payload, sse
from auth.access import Access
from auth.callers import Caller
from chat.config import ID_PATTERN
from chat.events import Event, RunEnded
from traces.replay import SPEEDS, paced
from traces.store import TraceStore


def build_replay_api(traces: TraceStore, access: Access) -> APIRouter:
    """Return the replay route: the caller's own runs only; the original is never touched."""
    api = APIRouter(prefix="/api", tags=["runs"])
    caller_of = Depends(access.api_caller)

    @api.post("/runs/{run_id}/replay", summary="Replay a stored run as SSE, with its original timing",
              response_class=StreamingResponse, responses=doc.answers(doc.EVENT_STREAM, 401, 404))
    async def replay(run_id: str = Path(pattern=ID_PATTERN),
                     speed: Literal["1", "5", "instant"] = Query("1", description="1x, 5x, or all at once."),
                     caller: Caller = caller_of) -> StreamingResponse:
        events = traces.run_events(caller, run_id)
        if not events:
            raise HTTPException(404, "No run with that id is yours to see.")
        return StreamingResponse(_stream(events, SPEEDS[speed]), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return api


async def _stream(events: list[Event], speed: float) -> AsyncIterator[str]:
    async for event in paced(events, speed):
        yield sse({**event.to_dict(), "replay": True})
        if isinstance(event, RunEnded):
            yield sse({**done_payload(event), "replay": True})
