"""Errors as readable JSON: 422 says which field is wrong, a bug is a 500 without a stack trace.

Every error body is an `ErrorBody`; api/openapi.py documents it for each status a route answers.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from chat.invalid_input import problem, where

log = logging.getLogger("glassbox.api")


class ErrorBody(BaseModel):
    """Every error the API answers, whoever answers it: one readable sentence, never a stack trace."""

    detail: str = Field(description="What went wrong and, where it helps, what to do about it.")


def install_error_handlers(app: FastAPI) -> None:
    """Make validation errors one readable sentence and keep internals out of responses."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": describe_validation(error.errors())}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.exception("request failed", extra={"incident": incident, "path": request.url.path})
        return JSONResponse({"detail": f"Internal error; the server logged it as incident {incident}."},
                            status_code=500)


def describe_validation(errors: list[dict]) -> str:
    """Turn pydantic's error list into one sentence in our words, e.g. "message is missing"."""
    parts = []
    for error in errors:
        if error.get("type") == "json_invalid":
            parts.append("The request body is not valid JSON.")
        else:
            parts.append(f"{where(error, 'the request body')} {problem(error)}")
    return "; ".join(parts) or "The request is not valid."
