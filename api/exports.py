"""Runs as files that travel: OTLP JSON lines (traces/otlp.py), a run's or a thread's for their owner,
and back in: the admin imports another Glassbox's file, all of it or nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import Response

from api import openapi as doc
from auth.access import Access
from auth.callers import Caller
from chat.config import ID_PATTERN
from traces.otlp import ImportRefused, import_origin, otlp_lines, runs_from_otlp
from traces.store import TraceStore

MEDIA_TYPE = "application/x-ndjson"
MAX_THREAD_RUNS = 1000


def build_export_api(traces: TraceStore, access: Access) -> APIRouter:
    """Return GET /api/runs/{id}/export, GET /api/threads/{id}/export and POST /api/import."""
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

    @api.post("/import", summary="Import runs another Glassbox exported (admin only)", response_model=None,
              responses=doc.answers(doc.Imported, 401, 403, 413, 422),
              openapi_extra={"requestBody": {"required": True, "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
                                             "description": "An exported file: OTLP JSON lines."}})
    async def import_runs(request: Request, caller: Caller = caller_of) -> dict[str, Any]:
        access.require_admin(caller)
        body = await request.body()
        try:
            runs = runs_from_otlp(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise HTTPException(422, "The file is not UTF-8 text; a Glassbox export is.") from None
        except ImportRefused as refused:
            raise HTTPException(422, f"{refused} Nothing was imported.") from None
        imported, already = await asyncio.to_thread(traces.import_runs, caller, runs, import_origin())
        return {"imported": imported, "already_there": already}

    return api
