"""The chat over a WebSocket: /api/chat/ws runs messages one after another on one connection.

It streams what POST /api/chat/stream streams, and takes Stop, Approve and Reject on the same
connection. Every frame is a JSON object in a text frame, with a `type`.

From the client:
- `{"type": "message", "message": "...", "thread_id"?, "knowledge_base"?, "agent_graph"?, "events"?}`: a ChatRequest,
  as the HTTP routes take it. One run at a time per connection; after its `done`, send the next.
- `{"type": "stop"}`: stop the running run, like Stop on the page; it ends `cancelled` and `done` still comes.
- `{"type": "approve", "reason"?}` / `{"type": "reject", "reason"?}`: decide the tool call the running
  run paused on (as POST /api/runs/{id}/approve and /reject do).
- `{"type": "ping"}`, answered with `{"type": "pong"}`; `{"type": "pong"}`, the answer to the server's ping.

From the server:
- the run's events as the SSE stream sends them (the same shapes and the same `events` filter; `error`
  and the approval events always), then `done` (api/sse.py `done_payload`);
- `{"type": "error", "kind": "input" | "internal" | "auth", "message": "..."}` for a frame it will not act
  on, or a run that could not start. It has no `run_id`, unlike a run's own `error` event, and the
  connection stays open: a run under way goes on;
- `{"type": "ping"}` every HEARTBEAT_S, and `{"type": "pong"}` to a client's ping.

Who connects is decided as for any /api request (auth/access.py), with the same tokens and owners:
an `Authorization: Bearer <token>` header, or `?token=<token>`, since a browser cannot set headers
on a WebSocket. A query string can end up in proxy and server access logs: send the header where
the client can, and revoke a token that leaked. In AUTH_MODE=public a client without a token is
the visitor its signed cookie names (browsers send it), else a new visitor for this connection.

Close codes:

| code | reason         | when                                                                        |
|------|----------------|-----------------------------------------------------------------------------|
| 1000 |                | the client closed; the server answers its close, and stops its run           |
| 1001 | going away     | the server stopped the connection while shutting down                       |
| 1011 | internal error | a fault in the server; its log names the incident                           |
| 4401 | unauthorized   | AUTH_MODE=private without a token, or a token that is not valid (any mode)  |
| 4408 | idle           | no frame at all from the client for 3 heartbeats (3 × HEARTBEAT_S)          |

uvicorn closes open sockets itself with 1012 (service restart) as it shuts down, before the app can
choose: treat 1001 and 1012 alike, and reconnect later. A connection that closes or drops stops its
run, as a closed SSE stream does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import uuid
from contextlib import suppress
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket
from pydantic import ValidationError
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from api.errors import describe_validation
from api.routes import ChatRequest, Decision, chat_thread, run_events
from api.sse import OUR_REFUSALS, done_payload, is_sent, why_not_started
from auth.access import VISITOR_COOKIE, Access
from auth.callers import Caller
from chat.events import ErrorOccurred, RunEnded
from chat.service import AgentService
from traces.store import TraceStore

log = logging.getLogger("glassbox.api")

GOING_AWAY = (1001, "going away")
INTERNAL_ERROR = (1011, "internal error")
UNAUTHORIZED = (4401, "unauthorized")
IDLE = (4408, "idle")
SILENT_HEARTBEATS = 3  # a client that has sent nothing for this many heartbeats is gone
CLIENT_FRAMES = ("message", "stop", "approve", "reject", "ping", "pong")


class FrameRefused(ValueError):
    """A client frame the server will not act on; the message says why, in our words."""


def build_ws(service: AgentService, traces: TraceStore, access: Access, heartbeat_s: float = 15.0) -> APIRouter:
    """Return the /api/chat/ws route over this service and trace store; `access` decides who connects."""
    router = APIRouter(prefix="/api")

    @router.websocket("/chat/ws")
    async def chat_socket(websocket: WebSocket) -> None:
        try:
            caller = socket_caller(access, websocket)
        except HTTPException:
            # Accepted only to close with a code: a socket closed before accepting reaches a browser
            # as a bare failure, without code or reason.
            await websocket.accept()
            await websocket.send_text(json.dumps(refusal("auth", (
                "Connect with a valid token: an 'Authorization: Bearer <token>' header, or ?token=<token> "
                "in the URL. The admin can make you one."))))
            await websocket.close(*UNAUTHORIZED)
            return
        await websocket.accept()
        await ChatConnection(websocket, service, traces, caller, heartbeat_s).serve()

    return router


def socket_caller(access: Access, websocket: WebSocket) -> Caller:
    """Return who is connecting, decided by `Access.api_caller` as for any /api request; raise its 401.

    A `token` query parameter counts as a bearer header (a header, if sent, wins). The visitor
    cookie is read here, as VisitorCookies only sees HTTP requests.
    """
    headers = list(websocket.scope["headers"])
    token = websocket.query_params.get("token")
    if token and "authorization" not in websocket.headers:
        headers.append((b"authorization", f"Bearer {token}".encode("latin-1", "replace")))
    visitor = access.verify(websocket.cookies.get(VISITOR_COOKIE)) or secrets.token_hex(16)
    state = {**websocket.scope.get("state", {}), VISITOR_COOKIE: visitor}
    # api_caller reads only the headers and the scope's state, which a connection has as a request does.
    return access.api_caller(HTTPConnection({**websocket.scope, "headers": headers, "state": state}))


def refusal(kind: str, message: str) -> dict[str, str]:
    """Return the `error` frame that answers a frame the server will not act on."""
    return {"type": "error", "kind": kind, "message": message}


def parse_frame(text: str | None) -> dict[str, Any]:
    """Return a client frame: a JSON object whose `type` is known; raise FrameRefused otherwise."""
    if text is None:
        raise FrameRefused("Send each frame as JSON text, not as binary data.")
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        raise FrameRefused("That frame is not valid JSON; send one JSON object per frame.") from None
    if not isinstance(frame, dict) or frame.get("type") not in CLIENT_FRAMES:
        raise FrameRefused(f"Each frame is a JSON object whose type is one of: {', '.join(CLIENT_FRAMES)}.")
    return frame


def not_started(error: Exception) -> dict[str, str]:
    """The `error` frame for a run that could not start: our refusals in their words, anything else not."""
    if not isinstance(error, OUR_REFUSALS):
        log.error("a websocket run could not start", exc_info=error)
    return refusal("input" if isinstance(error, OUR_REFUSALS) else "internal", why_not_started(error))


class ChatConnection:
    """One client's socket: reads its frames, runs one message at a time, pings it while it lasts."""

    def __init__(self, websocket: WebSocket, service: AgentService, traces: TraceStore, caller: Caller,
                 heartbeat_s: float) -> None:
        self.websocket, self.service, self.traces, self.caller = websocket, service, traces, caller
        self.heartbeat_s = heartbeat_s
        self.run: asyncio.Task | None = None
        self.running = False  # from a message accepted until its events are closed
        self.thread_id: str | None = None  # the running run's, known before it starts
        self.run_id: str | None = None  # known from its first event
        self.stop_asked = self.stop_sent = False
        self._sending = asyncio.Lock()  # the run, the pinger and the reader all send

    async def serve(self) -> None:
        """Act on frames until the client leaves or falls silent; stop its run on the way out."""
        pinger = asyncio.create_task(self._ping())
        close: tuple[int, str] | None = None
        try:
            close = await self._read()
        except asyncio.CancelledError:  # the server is shutting down
            close = GOING_AWAY
            raise
        except Exception:
            incident = uuid.uuid4().hex[:12]
            log.exception("websocket failed", extra={"incident": incident})
            close = INTERNAL_ERROR
        finally:
            pinger.cancel()
            await self._end_run()
            if close is not None:
                with suppress(WebSocketDisconnect, RuntimeError, OSError):
                    await self.websocket.close(*close)

    async def send(self, frame: dict[str, Any]) -> bool:
        """Send one frame; return False if the client is gone."""
        async with self._sending:
            try:
                await self.websocket.send_text(json.dumps(frame, default=str, ensure_ascii=False))
            except (WebSocketDisconnect, RuntimeError, OSError):  # the reader sees the close and ends it all
                return False
        return True

    async def _read(self) -> tuple[int, str] | None:
        """Handle frames until the client closes (None) or is silent too long (the close to send)."""
        while True:
            try:
                async with asyncio.timeout(SILENT_HEARTBEATS * self.heartbeat_s):
                    message = await self.websocket.receive()
            except TimeoutError:
                return IDLE
            if message["type"] == "websocket.disconnect":
                return None
            await self._handle(message.get("text"))

    async def _handle(self, text: str | None) -> None:
        """Act on one frame; one that cannot be acted on gets an `error` frame and changes nothing."""
        try:
            frame = parse_frame(text)
            if frame["type"] == "message":
                self._start(ChatRequest.model_validate(frame))
            elif frame["type"] == "stop":
                self._stop()
            elif frame["type"] in ("approve", "reject"):
                self._decide(frame["type"] == "approve", Decision.model_validate(frame))
            elif frame["type"] == "ping":
                await self.send({"type": "pong"})
            # A pong needs nothing more: any frame shows the client is there.
        except FrameRefused as refused:
            await self.send(refusal("input", str(refused)))
        except ValidationError as invalid:
            await self.send(refusal("input", describe_validation(invalid.errors())))
        except HTTPException as refused:  # chat_thread's refusals, in the HTTP API's words
            await self.send(refusal("input", str(refused.detail)))

    def _start(self, request: ChatRequest) -> None:
        if self.running:
            raise FrameRefused("A message is still running on this connection; wait for its done, or send stop.")
        self.thread_id = chat_thread(self.service, self.traces, request, self.caller)
        self.run_id, self.stop_asked, self.stop_sent, self.running = None, False, False, True
        self.run = asyncio.create_task(self._stream(request, self.thread_id))

    def _stop(self) -> None:
        if not self.running:
            raise FrameRefused("Nothing is running on this connection to stop.")
        self.stop_asked = True
        self._stop_if_asked()

    def _stop_if_asked(self) -> None:
        """Stop the run once it is under way (its first event seen): until then the thread may
        still be another run's, and a Stop sent early waits for it."""
        if self.stop_asked and not self.stop_sent and self.run_id is not None:
            self.stop_sent = self.service.cancel(self.thread_id)

    def _decide(self, approved: bool, decision: Decision) -> None:
        waiting = self.service.approvals.pending(self.run_id) if self.running and self.run_id else None
        if waiting is None:
            raise FrameRefused("Nothing on this connection is waiting for your approval.")
        if not self.service.approvals.decide(self.run_id, approved, by=self.caller.owner, reason=decision.reason):
            raise FrameRefused("That approval was decided a moment ago.")

    async def _stream(self, request: ChatRequest, thread_id: str) -> None:
        """Send the run's events as the SSE stream would, then `done`."""
        events = run_events(self.service, request, thread_id, self.caller)
        end: RunEnded | None = None
        failure: ErrorOccurred | None = None
        try:
            async for event in events:
                self.run_id = event.run_id
                self._stop_if_asked()
                failure = event if isinstance(event, ErrorOccurred) else failure
                if is_sent(event, request.events) and not await self.send(event.to_dict()):
                    break  # the client is gone: closing the events below stops the run
                if isinstance(event, RunEnded):
                    end = event
                    break
        except Exception as error:  # e.g. the thread became busy between the check and the start
            await self.send(not_started(error))
        finally:
            # Closed before `done` goes out, so the thread is free for the next message when it arrives;
            # closed on the way out too, which is what stops a run whose client went away.
            await events.aclose()
            self.running = False
        if end is not None:
            await self.send(done_payload(end, failure))

    async def _end_run(self) -> None:
        """Stop the run of a connection that is closing: cancelling its sender closes its events."""
        if self.run is None or self.run.done():
            return
        self.run.cancel()
        with suppress(asyncio.CancelledError):
            await asyncio.shield(self.run)  # as api/sse.py: never pass a cancel on twice

    async def _ping(self) -> None:
        """Send a ping every heartbeat while the client is there, so it and any proxy see the line live."""
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if not await self.send({"type": "ping"}):
                return
