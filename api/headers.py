"""Security headers on every response: nothing on the page may load from another host.

Untrusted text (the model's answer, knowledge-base documents, the user's message) is escaped
where it is drawn; this Content-Security-Policy is the second wall, so an image or script that
slips through still cannot reach another host or leak the page's address in a Referer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

# Hugging Face Spaces show the app in an iframe on huggingface.co, served from *.hf.space.
FRAME_ANCESTORS = "'self' https://huggingface.co https://*.hf.space"
# One policy for the page, the API and the docs (their Swagger UI and ReDoc files are served here).
# Gradio's page boots with inline scripts and styles, and gr.HTML (the event panel) compiles its
# templates with Function(): without 'unsafe-eval' the panel never draws. Everything else, images
# included, comes from this server or from the page itself, never from another host.
POLICY = (
    "default-src 'self'; "
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; "
    "font-src 'self' data:; "
    "media-src 'self' data: blob:; "
    "connect-src 'self'; "
    "worker-src 'self' blob:; "
    "object-src 'none'; "
    "base-uri 'self'; "
    "form-action 'self'; "
    f"frame-ancestors {FRAME_ANCESTORS}"
)
HEADERS = [
    (b"content-security-policy", POLICY.encode()),
    (b"referrer-policy", b"no-referrer"),  # a link someone clicks does not tell where it was
    (b"x-content-type-options", b"nosniff"),
]
NAMES = {name for name, _ in HEADERS}


class SecurityHeaders:
    """ASGI middleware: a Content-Security-Policy, no Referer, no MIME sniffing, on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                # Ours replace any the app set, so a response carries exactly one policy.
                kept = [(n, v) for n, v in message.get("headers", []) if n.lower() not in NAMES]
                message = {**message, "headers": [*kept, *HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
