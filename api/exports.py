"""Runs as files that travel: OTLP JSON lines (traces/otlp.py), a run's or a thread's, for their owner."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import Response

from api import openapi as doc
from auth.access import Access
from auth.callers import Caller
from traces.otlp import otlp_lines
from traces.store import TraceStore

ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
MEDIA_TYPE = "application/x-ndjson"
MAX_THREAD_RUNS = 1000


def build_export_api(traces: TraceStore, access: Access) -> APIRouter:
    """Return GET /api/runs/{id}/export and GET /api/threads/{id}/export."""
    api = APIRouter(prefix="/api", tags=["export"])
    caller_of = Depends(access.api_caller)

    def attachment(body: str, name: str) -> Response:
        return Response(body, media_type=MEDIA_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="{name}.jsonl"'})

    @api.get("/runs/{run_id}/export", summary="A run as an OTLP JSON line (OpenTelemetry's file format)",
             response_class=Response, responses=doc.answers(doc.OTLP_FILE, 401, 404))
    def export_run(run_id: str = Path(pattern=ID_PATTERN), caller: Caller = caller_of) -> Response:
        if traces.get_run(caller, run_id) is None:
            raise HTTPException(404, "No run with that id is yours to see.")
        return attachment(otlp_lines(traces, caller, [run_id]), f"glassbox-run-{run_id}")

    @api.get("/threads/{thread_id}/export", summary="A thread's runs as OTLP JSON lines, oldest first",
             response_class=Response, responses=doc.answers(doc.OTLP_FILE, 401, 404))
    def export_thread(thread_id: str = Path(pattern=ID_PATTERN), caller: Caller = caller_of) -> Response:
        if traces.get_thread(caller, thread_id) is None:
            raise HTTPException(404, "No thread with that id is yours to see.")
        runs: list[dict[str, Any]] = traces.list_runs(caller, thread_id, limit=MAX_THREAD_RUNS)
        return attachment(otlp_lines(traces, caller, [run["id"] for run in reversed(runs)]),
                          f"glassbox-thread-{thread_id}")

    return api
