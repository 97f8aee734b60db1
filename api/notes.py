"""Reviewer notes: on a run, or one of its spans or events, by a named reviewer, with a label."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field, field_validator

from api import openapi as doc
from auth.access import Access
from auth.callers import Caller
from chat.config import ID_PATTERN
from traces.store import TraceStore

NOT_YOURS = "No run with that id is yours to see."


class NewNote(BaseModel):
    reviewer: str = Field(min_length=1, max_length=80, description="Who is writing it.")
    label: Literal["pass", "fail", "flag"]
    text: str = Field("", max_length=4000)
    span_id: str | None = Field(None, pattern=r"^[0-9a-f]{16}$", description="A span of the run (GET .../spans).")
    event_seq: int | None = Field(None, ge=0, le=10_000_000, description="An event of the run, by its seq.")

    @field_validator("event_seq", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        if isinstance(value, bool):  # JSON true is no event number, though Python counts it as 1
            raise ValueError("is an event's number, not true or false")  # after the field's name
        return value


def build_notes_api(traces: TraceStore, access: Access) -> APIRouter:
    """Return POST and GET /api/runs/{id}/notes: anyone who may see a run may note it."""
    api = APIRouter(prefix="/api", tags=["runs"])
    caller_of = Depends(access.api_caller)
    run_id_path = Path(pattern=ID_PATTERN)

    @api.post("/runs/{run_id}/notes", summary="Add a reviewer's note to a run, a span or an event",
              response_model=None, responses=doc.answers(doc.Note, 401, 404))
    async def add_note(note: NewNote, run_id: str = run_id_path, caller: Caller = caller_of) -> dict[str, Any]:
        added = await asyncio.to_thread(traces.add_note, caller, run_id, note.reviewer, note.label, note.text,
                                        note.span_id, note.event_seq)
        if added is None:
            raise HTTPException(404, NOT_YOURS)
        return added

    @api.get("/runs/{run_id}/notes", summary="A run's notes, oldest first", response_model=None,
             responses=doc.answers(doc.NoteList, 401, 404))
    def list_notes(run_id: str = run_id_path, caller: Caller = caller_of) -> dict[str, Any]:
        notes = traces.notes(caller, run_id)
        if notes is None:
            raise HTTPException(404, NOT_YOURS)
        return {"notes": notes}

    return api
