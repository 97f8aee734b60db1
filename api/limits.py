"""Request bodies with a size limit, read before any handler sees them.

A body over its limit gets a 413 in our words and never reaches the app: 10 MB of JSON costs
the server at most the limit in memory. /api JSON that is not UTF-8 gets the README's 422.
File uploads (the page's, and POST /api/kb/NAME/documents) are not held in memory: their bytes
are counted as the app reads them, and the request is refused the moment they pass the limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
PAGE_BODY_BYTES = 2 * 1024 * 1024  # the page's own requests carry the chat history
UPLOAD_FILES = 10  # one upload request may carry this many files of the largest size, in all
_DOCUMENT_UPLOAD = re.compile(r"^/api/kb/[^/]+/documents/?$")


class _TooLarge(Exception):
    """An upload's body passed its limit while the app read it."""


class BodyLimit:
    """ASGI middleware: /api bodies up to `api_bytes`; an upload request up to UPLOAD_FILES files
    of `upload_bytes` (each file's own limit is checked per file, rag/uploads.py)."""

    def __init__(self, app: ASGIApp, api_bytes: int, upload_bytes: int) -> None:
        self.app, self.api_bytes, self.upload_bytes = app, api_bytes, upload_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        app = self.app
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await app(scope, receive, send)
        path = scope["path"]
        if _DOCUMENT_UPLOAD.match(path) or (not path.startswith("/api/") and "/upload" in path):
            return await self._counted(scope, receive, send, UPLOAD_FILES * self.upload_bytes)
        if path == "/api/import":  # one exported file
            return await self._counted(scope, receive, send, self.upload_bytes)
        limit, setting = (self.api_bytes, "MAX_BODY_BYTES") if path.startswith("/api/") else (PAGE_BODY_BYTES, None)
        body = await _read(receive, limit, _declared_length(scope))
        if body is None:
            named = f" ({setting})" if setting else ""
            return await _refuse(send, 413, f"The request body is over the {limit:,}-byte limit{named}.")
        if path.startswith("/api/") and not _is_utf8(body):
            return await _refuse(send, 422, "The request body is not valid JSON: it is not UTF-8 text.")
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later reads see the client's disconnect as usual

        await app(scope, replay, send)


    async def _counted(self, scope: Scope, receive: Any, send: Any, limit: int) -> None:
        """Pass the body through as the app reads it; refuse it once it is over `limit`."""
        refusal = (f"The upload is over the {limit:,}-byte limit for one request (MAX_UPLOAD_MB; ten files' worth "
                   f"for documents); send less at a time.")
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            return await _refuse(send, 413, refusal)
        size, started = 0, False

        async def counting() -> MutableMapping[str, Any]:
            nonlocal size
            message = await receive()
            size += len(message.get("body", b""))
            if size > limit:
                raise _TooLarge
            return message

        async def tracking(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting, tracking)
        except _TooLarge:
            if not started:
                await _refuse(send, 413, refusal)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read(receive: Any, limit: int, declared: int | None) -> bytes | None:
    """Return the whole body, or None as soon as it is known to be over `limit`."""
    if declared is not None and declared > limit:
        return None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def _refuse(send: Any, status: int, detail: str) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
