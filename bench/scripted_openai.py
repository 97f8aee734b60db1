"""A scripted OpenAI-compatible server: the model stand-in for tests and the benchmark.

It streams a fixed reply (after an optional reasoning part) with fixed delays,
or emits tool calls, or breaks or hangs mid-stream, or answers with an HTTP error
status before streaming, exactly as a `Script` says, and records every request it
gets. Loopback only; no model, no network.

    with ScriptedServer(Script(reply="Hi there", ttft_s=0.2)) as server:
        model = ChatOpenAI(base_url=server.base_url, api_key="test", model="scripted")
        ...
        assert "tools" in server.requests[0].body

Manual use: `python -m bench.scripted_openai --port 8001 --ttft 0.4`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from bench import openai_shapes as shapes
from bench.serving import BackgroundServer

MODEL_ID = "scripted"
ToolCallSpec = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Script:
    """How the scripted model answers a chat request.

    Token counts (`fail_after_tokens`, `hang_after_tokens`) count every
    token-carrying chunk: reasoning, text and tool-call pieces alike.
    """

    reply: str = "Hello from the scripted model."
    # Delay before the first chunk of any kind (the role chunk goes with the first token).
    ttft_s: float = 0.0
    # Delay between one token chunk and the next.
    token_interval_s: float = 0.0
    # Streamed first, as `delta.reasoning_content` (vLLM / DeepSeek style).
    reasoning: str | None = None
    # Emitted instead of `reply` when the request's last message is from the user,
    # so an agent's follow-up call (last message: the tool result) gets the text.
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    # Close the connection abruptly after this many token chunks.
    fail_after_tokens: int | None = None
    # Stop sending after this many token chunks but keep the connection open.
    hang_after_tokens: int | None = None
    # Answer with this HTTP status and an OpenAI-style error body instead of a reply (401, 429,
    # 500...). A client that retries (openai retries 429 and 5xx) takes the next script on its retry.
    status: int | None = None
    # Scripts for the next chat requests, one each, in order; then this one again.
    replies: list[Script] = field(default_factory=list)


@dataclass
class ReceivedRequest:
    """One request the server got, and what became of its reply."""

    path: str
    body: dict[str, Any]
    chunks_sent: int = 0  # token chunks the client took (streams only)
    completed: bool = False  # the whole reply went out ([DONE] for streams)
    client_disconnected: bool = False  # the client left before the stream ended


class ScriptState:
    """What one app answers with and what it has received; shared with the test thread."""

    def __init__(self, script: Script) -> None:
        self.default = script
        self.queue: deque[Script] = deque(script.replies)
        self.requests: list[ReceivedRequest] = []
        # Set on shutdown so hanging streams end instead of holding uvicorn open.
        self.closing = threading.Event()

    def enqueue(self, *scripts: Script) -> None:
        """Answer the next chat requests with these scripts, in order."""
        self.queue.extend(scripts)

    def next_script(self) -> Script:
        """Return the script for the next chat request."""
        return self.queue.popleft() if self.queue else self.default

    def record(self, path: str, body: dict[str, Any]) -> ReceivedRequest:
        """Remember a received request and return its record."""
        received = ReceivedRequest(path=path, body=body)
        self.requests.append(received)
        return received

    @property
    def cancelled_requests(self) -> int:
        """Count streams whose client went away before the end."""
        return sum(r.client_disconnected for r in self.requests)


class ScriptedStreamBreak(RuntimeError):
    """Raised inside a stream to make uvicorn drop the connection mid-response."""


class _QuietStreamBreaks(logging.Filter):
    """Drop uvicorn's traceback for breaks we cause on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _is_break(record.exc_info[1] if record.exc_info else None)


def _is_break(exc: BaseException | None) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_break(e) for e in exc.exceptions)
    return isinstance(exc, ScriptedStreamBreak)


_QUIET_BREAKS = _QuietStreamBreaks()


class _StreamUntilDisconnect(StreamingResponse):
    """Stream, and cancel the generator the moment the client disconnects.

    Starlette skips its disconnect listener under ASGI spec 2.4 and waits for
    send() to fail instead, so a generator that is sleeping or hanging would
    never learn that the client left. uvicorn speaks 2.3 today; this keeps the
    cancellation count right when a server speaks 2.4.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def run_then_cancel(func: Callable[[], Awaitable[None]]) -> None:
                await func()
                group.cancel_scope.cancel()

            group.start_soon(run_then_cancel, partial(self.stream_response, send))
            await run_then_cancel(partial(self.listen_for_disconnect, receive))


def plan_reply(script: Script, messages: list[dict[str, Any]]) -> tuple[list[shapes.Delta], str]:
    """Return the token deltas to send and the finish reason."""
    deltas: list[shapes.Delta] = [
        {"reasoning_content": t} for t in shapes.split_tokens(script.reasoning or "")
    ]
    last_role = messages[-1].get("role") if messages else None
    if script.tool_calls and last_role == "user":
        return deltas + shapes.tool_call_deltas(script.tool_calls), "tool_calls"
    return deltas + [{"content": t} for t in shapes.split_tokens(script.reply)], "stop"


async def _hang_until(closing: threading.Event) -> None:
    while not closing.is_set():
        await asyncio.sleep(0.05)


async def _stream_reply(
    script: Script, body: dict[str, Any], received: ReceivedRequest, state: ScriptState
) -> AsyncIterator[str]:
    """Yield the SSE frames of one scripted reply, honouring delays, breaks and hangs."""
    deltas, finish = plan_reply(script, body.get("messages", []))
    cid, model = f"chatcmpl-{uuid.uuid4().hex[:24]}", body.get("model", MODEL_ID)
    with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    frame = partial(shapes.chunk, cid, model, include_usage=with_usage)
    try:
        await asyncio.sleep(script.ttft_s)
        yield shapes.sse(frame({"role": "assistant", "content": ""}))
        for index, delta in enumerate(deltas):
            if index:
                await asyncio.sleep(script.token_interval_s)
            if index == script.fail_after_tokens:
                raise ScriptedStreamBreak(f"scripted break after {index} tokens")
            if index == script.hang_after_tokens:
                await _hang_until(state.closing)
                return
            yield shapes.sse(frame(delta))
            received.chunks_sent += 1  # resumed, so the previous frame was sent
        yield shapes.sse(frame({}, finish_reason=finish))
        if with_usage:
            prompt = shapes.count_prompt_tokens(body.get("messages", []))
            yield shapes.sse(shapes.usage_chunk(cid, model, shapes.usage(prompt, len(deltas))))
        yield shapes.sse("[DONE]")
        received.completed = True
    except (asyncio.CancelledError, GeneratorExit):
        received.client_disconnected = True
        raise


async def _whole_reply(
    script: Script, body: dict[str, Any], received: ReceivedRequest, state: ScriptState
) -> Response:
    """Return one non-streaming chat.completion (or the scripted failure)."""
    await asyncio.sleep(script.ttft_s)
    if script.hang_after_tokens is not None:
        await _hang_until(state.closing)
    if script.fail_after_tokens is not None or script.hang_after_tokens is not None:
        error = {"message": "scripted failure", "type": "server_error", "code": None}
        return JSONResponse({"error": error}, status_code=500)
    messages = body.get("messages", [])
    deltas, finish = plan_reply(script, messages)
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if finish == "tool_calls":
        message["tool_calls"] = shapes.message_tool_calls(script.tool_calls)
    else:
        message["content"] = script.reply
    if script.reasoning:
        message["reasoning_content"] = script.reasoning
    cid, model = f"chatcmpl-{uuid.uuid4().hex[:24]}", body.get("model", MODEL_ID)
    usage = shapes.usage(shapes.count_prompt_tokens(messages), len(deltas))
    received.completed = True
    return JSONResponse(shapes.completion(cid, model, message, finish, usage))


# OpenAI's error `type` and `code` for the statuses a script may answer with.
ERROR_SHAPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", "context_length_exceeded"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def _status_reply(status: int) -> JSONResponse:
    """Return the error response an OpenAI-compatible endpoint sends with `status`."""
    kind, code = ERROR_SHAPES.get(status, ("server_error", None))
    error = {"message": f"scripted {status}", "type": kind, "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status)


def _embedding_inputs(raw: Any) -> list[str] | list[list[int]]:
    """Normalise `input` (a string, token ids, or a list of either) to a list."""
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        return [raw]
    return list(raw)


def create_app(script: Script | None = None) -> FastAPI:
    """Build the scripted OpenAI-compatible app; its state is `app.state.scripted`."""
    app = FastAPI(title="Glassbox scripted OpenAI-compatible server")
    state = ScriptState(script or Script())
    app.state.scripted = state
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if _QUIET_BREAKS not in uvicorn_errors.filters:
        uvicorn_errors.addFilter(_QUIET_BREAKS)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return shapes.models_list([MODEL_ID])

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await request.json()
        received = state.record(request.url.path, body)
        script = state.next_script()
        if script.status is not None:
            received.completed = True
            return _status_reply(script.status)
        if body.get("stream"):
            frames = _stream_reply(script, body, received, state)
            return _StreamUntilDisconnect(frames, media_type="text/event-stream")
        return await _whole_reply(script, body, received, state)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> dict[str, Any]:
        body = await request.json()
        received = state.record(request.url.path, body)
        fmt = body.get("encoding_format") or "float"
        reply = shapes.embeddings_list(body.get("model", MODEL_ID), _embedding_inputs(body["input"]), fmt)
        received.completed = True
        return reply

    return app


class ScriptedServer(BackgroundServer):
    """Serve `create_app(script)` on a free loopback port, in a thread.

    Use as a context manager; `base_url` is ready for any OpenAI client when
    `__enter__` returns, and `__exit__` stops the server (hanging streams too).
    """

    def __init__(self, script: Script | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 startup_timeout_s: float = 10.0) -> None:
        super().__init__(create_app(script), host=host, port=port, lifespan="off",
                         name="scripted-openai", startup_timeout_s=startup_timeout_s)
        self.state: ScriptState = self.app.state.scripted

    @property
    def base_url(self) -> str:
        """Return the OpenAI base URL, e.g. http://127.0.0.1:PORT/v1."""
        return f"{self.url}/v1"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Return every request received so far, oldest first."""
        return self.state.requests

    @property
    def cancelled_requests(self) -> int:
        """Count streams whose client went away before the end."""
        return self.state.cancelled_requests

    def enqueue(self, *scripts: Script) -> None:
        """Answer the next chat requests with these scripts, in order."""
        self.state.enqueue(*scripts)

    def stop(self) -> None:
        """Release hanging streams, then stop the server."""
        self.state.closing.set()
        super().stop()


def main(argv: list[str] | None = None) -> None:
    """Serve a scripted model until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds before the first chunk")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between chunks")
    parser.add_argument("--reply", default=Script.reply)
    parser.add_argument("--reasoning", default=None)
    args = parser.parse_args(argv)
    script = Script(
        reply=args.reply,
        ttft_s=args.ttft,
        token_interval_s=args.interval,
        reasoning=args.reasoning,
    )
    uvicorn.run(create_app(script), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
