"""Who may call what: the one place a request becomes a `Caller`.

AUTH_MODE decides:
- `local`: one trusted user, no token needed: every caller is the admin. The default when
  the server is bound to a loopback address.
- `private`: /api/* and /ask need a bearer token (ADMIN_TOKEN or one made with POST /api/tokens).
  Page visitors chat anonymously and see only their own conversations.
- `public`: anyone may chat and sees only their own threads. An API client without a token is
  an anonymous visitor, known by a signed cookie. The default on any other address.

The FastAPI routes use `Access.api_caller` as a dependency; the page and /ask call
`Access.page_caller` and `Access.ask_caller` with what Gradio gives them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any, Literal

from fastapi import HTTPException, Request

from auth.callers import LOCAL, Caller
from traces.tokens import TokenStore

AuthMode = Literal["local", "private", "public"]
AUTH_MODES: tuple[AuthMode, ...] = ("local", "private", "public")
VISITOR_COOKIE = "glassbox_visitor"
ADMIN = Caller("admin", "admin")
_VISITOR_ID = re.compile(r"^[0-9a-f]{32}$")
ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


@dataclass
class Access:
    """Turn credentials into callers, the same way for the API, /ask and the page."""

    mode: AuthMode
    tokens: TokenStore
    secret: str  # signs visitor cookies
    admin_token: str | None = None
    space_owner: str | None = None  # a Space's author: admin when signed in with Hugging Face

    def from_bearer(self, authorization: str | None) -> Caller | None:
        """Return the caller a bearer token names; None without one; 401 for a bad one."""
        scheme, _, secret = (authorization or "").partition(" ")
        if not authorization:
            return None
        if scheme.lower() != "bearer" or not secret.strip():
            raise _unauthorized("Send the token as 'Authorization: Bearer <token>'.")
        secret = secret.strip()
        if self.admin_token and hmac.compare_digest(secret.encode(), self.admin_token.encode()):
            return ADMIN
        token_id = self.tokens.find(secret)
        if token_id is None:
            raise _unauthorized("That token is not valid: it was mistyped or has been revoked.")
        return Caller(f"token:{token_id}")

    def api_caller(self, request: Request) -> Caller:
        """FastAPI dependency: the caller of an /api request, or 401."""
        if self.mode == "local":
            return LOCAL
        caller = self.from_bearer(request.headers.get("authorization"))
        if caller is not None:
            return caller
        if self.mode == "private":
            raise _unauthorized("This Glassbox is private: send 'Authorization: Bearer <token>'. "
                                "Its admin can make you a token.")
        return Caller(f"visitor:{request.scope['state'][VISITOR_COOKIE]}")

    def ask_caller(self, authorization: str | None, session_hash: str | None) -> Caller:
        """The caller of /ask (gradio_client): a token, or in public mode its client session."""
        if self.mode == "local":
            return LOCAL
        caller = self.from_bearer(authorization)
        if caller is not None:
            return caller
        if self.mode == "private":
            raise _unauthorized("This Glassbox is private: create the client with "
                                "headers={'Authorization': 'Bearer <token>'}.")
        return Caller(f"session:{hashlib.sha256((session_hash or secrets.token_hex(16)).encode()).hexdigest()[:32]}")

    def page_caller(self, visitor_id: str, hf_username: str | None = None) -> Caller:
        """The caller behind a page: signed in with Hugging Face, else this browser's visitor id."""
        if self.mode == "local":
            return LOCAL
        if hf_username:
            admin = bool(self.space_owner) and hf_username == self.space_owner
            return Caller(f"hf:{hf_username}", "admin" if admin else "user")
        return Caller(f"visitor:{visitor_id}")

    def require_admin(self, caller: Caller) -> Caller:
        """Return the caller if it is the admin, else refuse with 403."""
        if not caller.is_admin:
            raise HTTPException(403, "Only the admin may do this (ADMIN_TOKEN, or the Space owner signed in).")
        return caller

    # --- anonymous API visitors: a signed cookie ---------------------------------------------

    def sign(self, visitor_id: str) -> str:
        """Return the cookie value for a visitor id."""
        mac = hmac.new(self.secret.encode(), visitor_id.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{visitor_id}.{mac}"

    def verify(self, cookie: str | None) -> str | None:
        """Return the visitor id a cookie carries if its signature holds, else None."""
        visitor_id, _, mac = (cookie or "").partition(".")
        if _VISITOR_ID.match(visitor_id) and hmac.compare_digest(self.sign(visitor_id), cookie or ""):
            return visitor_id
        return None


class VisitorCookies:
    """ASGI middleware: each /api request knows its anonymous visitor; a new one gets a signed cookie."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            return await self.app(scope, receive, send)
        cookies = SimpleCookie()
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                try:
                    cookies.load(value.decode("latin-1"))
                except Exception:  # a mangled cookie header is ignored, not fatal
                    pass
        morsel = cookies.get(VISITOR_COOKIE)
        visitor = self.access.verify(morsel.value if morsel else None)
        fresh = visitor is None and self.access.mode == "public"
        visitor = visitor or secrets.token_hex(16)
        scope.setdefault("state", {})[VISITOR_COOKIE] = visitor
        cookie = f"{VISITOR_COOKIE}={self.access.sign(visitor)}; Path=/api; HttpOnly; SameSite=Lax; Max-Age=31536000"

        async def send_with_cookie(message: MutableMapping[str, Any]) -> None:
            if fresh and message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
