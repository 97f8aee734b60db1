"""Request bodies with a size limit, read before any handler sees them.

A body over its limit gets a 413 in our words and never reaches the app: 10 MB of JSON costs
the server at most the limit in memory. /api JSON that is not UTF-8 gets the README's 422.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
PAGE_BODY_BYTES = 2 * 1024 * 1024  # the page's own requests carry the chat history


class BodyLimit:
    """ASGI middleware: /api bodies up to `api_bytes`, page uploads up to `upload_bytes`."""

    def __init__(self, app: ASGIApp, api_bytes: int, upload_bytes: int) -> None:
        self.app, self.api_bytes, self.upload_bytes = app, api_bytes, upload_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        app = self.app
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await app(scope, receive, send)
        path = scope["path"]
        limit, setting = ((self.api_bytes, "MAX_BODY_BYTES") if path.startswith("/api/")
                          else (self.upload_bytes, "MAX_UPLOAD_BYTES") if "/upload" in path
                          else (PAGE_BODY_BYTES, None))
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
