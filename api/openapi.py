"""What the API documents: its answers' shapes, its error statuses, and /docs served by the app itself.

A route declares its 200 body and the errors its handler and dependencies answer, with `answers(...)`.
Three statuses follow from a route's shape, so `document_errors` adds them to every /api operation:
400 (a JSON body that cannot be parsed), 413 (a body over MAX_BODY_BYTES, api/limits.py) and 422
(invalid input as one sentence, api/errors.py; FastAPI would document pydantic's error list).
The models here document the answers; they do not filter them, so a new field reaches clients as is.
A method an /api path does not document gets 405, as HTTP says, where the page at "/" would say 404.
"""

from __future__ import annotations

import re
from collections.abc import Callable, MutableMapping
from functools import lru_cache
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import compile_path

from api.errors import ErrorBody

# Swagger UI 5 and ReDoc, shipped inside the fastapi-offline package: /docs needs no CDN.
DOCS_ASSETS = files("fastapi_offline") / "static"
ASSETS_URL = "/docs/assets"

ERRORS = {
    400: "The JSON body could not be parsed.",
    401: "A bearer token is needed (AUTH_MODE=private), or the one sent is not valid.",
    403: "Only the admin may do this.",
    404: "No such thread, run or token is yours to see.",
    409: "An answer is still streaming in this thread, or the approval was already decided, or the name is taken, "
         "or an evaluation is running already.",
    413: "The request body is over MAX_BODY_BYTES, or the message over MAX_MESSAGE_CHARS.",
    422: "A field is missing or invalid, or the body is not JSON; `detail` says which.",
    503: "The agent is still warming up (or failed to): try again in a moment.",
}
BEARER = {"bearer": {"type": "http", "scheme": "bearer",
                     "description": "ADMIN_TOKEN or a token from POST /api/tokens. Needed when AUTH_MODE=private."}}


class Documented(BaseModel):
    """An answer as documented: these fields at least; more may come."""

    model_config = ConfigDict(extra="allow")


class Thread(Documented):
    id: str
    title: str
    created_at: str = Field(description="ISO 8601, UTC.")
    updated_at: str = Field(description="The last activity, ISO 8601, UTC.")
    deleted: bool
    owner: str = Field(description="Whose thread it is: `local`, `token:<id>`, `visitor:<id>`, `hf:<user>`.")
    knowledge_base: str | None = Field(None, description="The knowledge base the conversation answers from.")


class ThreadPage(Documented):
    threads: list[Thread]
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null on the last.")


class Message(Documented):
    role: str = Field(description="`user` or `assistant`.")
    content: str
    run_id: str
    status: str | None = Field(None, description="The run's status (assistant messages).")
    error: str | None = Field(None, description="Why the run failed (assistant messages).")


class ThreadWithMessages(Thread):
    messages: list[Message]


class Run(Documented):
    id: str
    thread_id: str
    status: str = Field(description="queued, in_progress, awaiting_approval, completed, failed, cancelled "
                                    "or interrupted.")
    message: str
    answer: str = Field(description="The answer so far; partial if the run did not complete.")
    model: str | None
    ttft_s: float | None
    latency_s: float | None
    input_tokens: int | None
    output_tokens: int | None
    error: str | None
    created_at: str
    updated_at: str
    dropped_events: int = Field(description="Events the trace store could not keep (0 normally).")
    knowledge_base: str | None = Field(None, description="The knowledge base the run answered from.")
    knowledge_fingerprint: str | None = Field(None, description="A hash of that knowledge base's content then.")
    grounding: str | None = Field(None, description="grounded, unsupported or no_sources; null unless completed.")
    tool_calls: int | None = Field(None, description="Tool calls the run made; null before it was kept.")
    notes: int = Field(0, description="How many reviewer notes it has.")
    origin: str | None = Field(None, description="For an imported run: when it was imported.")
    ttft_breakdown: dict[str, float] | None = Field(
        None, description="Where the time to first token went, in seconds: queue (warm-up and start, apart from "
                          "`ttft_s`), retrieval, prompt, model (request to first chunk), delivery (first chunk to "
                          "the first token event). Null before it was kept, or with no output.")


class RunList(Documented):
    runs: list[Run]
    next_offset: int | None = Field(None, description="The offset of the next page; null at the end.")


class RunEvent(Documented):
    """An event of a run, as streamed and as stored: its type, ids, time and the type's own fields."""

    type: str = Field(description="run_queued, run_start, node_start, token, ... and, streamed, done, error "
                                  "and heartbeat.")


class RunWithEvents(Run):
    events: list[RunEvent] = Field(description="Every event of the run, in order, with its full payload.")


class Citation(Documented):
    source: str = Field(description="The document.")
    chunk_id: str
    text: str = Field(description="The sentence, with its section heading.")
    score: float = Field(description="Cosine similarity to the question, 0 to 1.")


class ChatResult(Documented):
    run_id: str
    thread_id: str
    status: str = Field(description="completed, failed or cancelled.")
    answer: str
    ttft_s: float | None = Field(description="Seconds to the first streamed output; null if none came.")
    latency_s: float
    input_tokens: int
    output_tokens: int
    tool_calls: int
    error: str | None = Field(description="Why the model failed; null unless status is failed.")
    citations: list[Citation] = Field(description="The retrieved sentences the answer was built on, best first.")
    grounding: str | None = Field(description="The grounding check's verdict on the answer: grounded, "
                                              "unsupported or no_sources; null unless completed.")
    first_token_agent: str | None = Field(None, description="The team graph: the agent whose token came first; "
                                                            "null for the support graph.")


class ThreadDeleted(Documented):
    id: str
    deleted: bool
    hard: bool


class Decided(Documented):
    run_id: str
    call_id: str
    tool: str
    approved: bool


class NewTokenMade(Documented):
    id: str
    name: str
    created_at: str
    token: str = Field(description="The secret: send it as 'Authorization: Bearer <token>'. Shown only once.")


class TokenInfo(Documented):
    id: str
    name: str
    created_at: str
    revoked_at: str | None


class TokenList(Documented):
    tokens: list[TokenInfo]


class TokenRevoked(Documented):
    id: str
    revoked: bool


class KnowledgeBaseInfo(Documented):
    name: str
    assistant_name: str
    description: str
    instructions: str
    examples: list[str]
    chunks: int
    documents: int
    fingerprint: str = Field(description="A hash of the content: equal content, equal fingerprint.")


class KnowledgeBaseList(Documented):
    knowledge_bases: list[KnowledgeBaseInfo]
    default: str = Field(description="The one new conversations use (KNOWLEDGE_BASE).")


class KnowledgeBaseDeleted(Documented):
    name: str
    deleted: bool


class Document(Documented):
    document: str
    chunks: int
    added_at: str | None = Field(description="When its newest chunk was added, ISO 8601, UTC.")


class DocumentList(Documented):
    documents: list[Document]


class DocumentRemoved(Documented):
    document: str
    chunks_removed: int


class Span(Documented):
    span_id: str = Field(description="16 hex digits.")
    parent_span_id: str | None = Field(description="None for the run, the root.")
    kind: str = Field(description="run, node, tool or model.")
    name: str = Field(description="`run`, the node's name (retrieve, agent, tools), the tool's, or `model call`.")
    start_ns: int = Field(description="Unix nanoseconds.")
    end_ns: int
    duration_ms: float
    status: str = Field(description="ok, error or cancelled.")
    attributes: dict[str, Any] = Field(description="What happened in it: the message and answer, tool input "
                                                   "and output, retrieval hits, the model's text and token count.")


class RunSpans(Documented):
    run_id: str
    spans: list[Span] = Field(description="The root first, then in the order they started.")


class RunComparison(Documented):
    a: str
    b: str
    config: list[dict[str, Any]] = Field(description="Each config key whose value differs: {key, a, b}.")
    answer: list[dict[str, str]] = Field(description="The answers word by word: {same}, {a} or {b} runs of words.")
    timings: list[dict[str, Any]] = Field(description="TTFT, then each span's duration: {span, a_ms, b_ms}.")
    retrieval: list[dict[str, Any]] = Field(description="Each chunk either retrieved: {chunk_id, source, a, b, delta}.")
    tokens: dict[str, Any] = Field(description="{a: {input, output}, b: {input, output}}.")


class UploadResult(Documented):
    file: str = Field(description="The file's name, made printable.")
    ok: bool
    message: str = Field(description="`added: 12 chunks`, or why the file was refused, in plain words.")
    chunks: int = Field(description="The document's chunks after the upload.")
    new_chunks: int = Field(description="Of which were embedded now (an unchanged file adds none).")


class UploadResults(Documented):
    knowledge_base: str
    results: list[UploadResult] = Field(description="One per file, in the order sent.")
    added: int
    refused: int
    fingerprint: str = Field(description="The knowledge base's fingerprint after the upload.")


class Health(Documented):
    status: str = Field(description="warming up, ready or failed.")
    model: str | None
    chunks: int | None = Field(description="Chunks in the knowledge base.")
    uptime_s: float


class Readiness(Documented):
    status: str
    ready: bool
    model: str | None = None
    ready_after_s: float | None = None
    load_timings_s: dict[str, float] | None = None


# The stream's media type with the schema of one event, as FastAPI documents its own event streams
# (OpenAPI 3.2's itemSchema): each `data:` line is a JSON RunEvent; the last is `done` or `error`.
EVENT_STREAM = {
    "description": "Server-Sent Events: one JSON event per `data:` line; the last is `done` (or, for a run that "
                   "could not start, `error`).",
    "content": {"text/event-stream": {"itemSchema": {
        "type": "object", "required": ["data"],
        "properties": {"data": {"type": "string", "contentMediaType": "application/json",
                                "contentSchema": RunEvent.model_json_schema()}},
    }, "example": 'data: {"type": "token", "run_id": "5f0c", "thread_id": "9a1e", "at": 812.41, "text": "The"}\n\n'
                  'data: {"type": "done", "run_id": "5f0c", "thread_id": "9a1e", "status": "completed", ...}\n\n'}},
}
# The two errors whose body is not an ErrorBody.
OTLP_FILE = {
    "description": "OTLP JSON lines (OpenTelemetry's file-exporter format): one `TracesData` object a line, "
                   "one line a run. Phoenix, Langfuse, Jaeger and Tempo read it; another Glassbox imports it.",
    "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
}
class Note(Documented):
    id: int
    run_id: str
    span_id: str | None
    event_seq: int | None
    reviewer: str
    label: str = Field(description="pass, fail or flag.")
    text: str
    owner: str
    created_at: str


class NoteList(Documented):
    notes: list[Note]


class Imported(Documented):
    imported: list[str] = Field(description="The runs added, by id.")
    already_there: list[str] = Field(description="Runs the store had already (an import twice adds nothing).")


class EvalStarted(Documented):
    id: str
    questions: int
    url: str = Field(description="Where to follow it: GET /api/evals/{id}.")


class EvalSummary(Documented):
    total: int
    done: int
    passed: int
    accuracy: float | None = Field(description="Passed of those answered so far, 0 to 1.")
    grounding_rate: float | None = Field(description="Of the answers the check could judge, the share it found grounded.")
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None


class EvalItem(Documented):
    idx: int
    question: str
    expected: list[str]
    run_id: str | None = Field(description="Its run (GET /api/runs/{id}); null until asked.")
    passed: bool | None = Field(description="The answer contains an expected string; null until asked.")
    answer: str | None
    grounding: str | None
    ttft_s: float | None
    latency_s: float | None


class Evaluation(Documented):
    id: str
    name: str
    knowledge_base: str
    set_name: str
    status: str = Field(description="running, done, stopped, failed, or interrupted (by a restart).")
    owner: str
    config: dict[str, Any] = Field(description="The settings it ran with (model, RAG_TOP_K, ...).")
    created_at: str
    summary: EvalSummary
    items: list[EvalItem]


class EvalListed(Documented):
    id: str
    name: str
    knowledge_base: str
    status: str
    total: int
    done: int
    passed: int
    created_at: str


class EvalList(Documented):
    evals: list[EvalListed]
    running: str | None = Field(description="The evaluation running now, if any (one runs at a time).")


class EvalComparison(Documented):
    a: dict[str, Any]
    b: dict[str, Any]
    figures: list[dict[str, Any]] = Field(description="accuracy, grounding_rate, TTFT and latency p50/p95: a, b, change.")
    settings: list[dict[str, Any]] = Field(description="The settings that differ.")
    questions: list[dict[str, Any]] = Field(description="Each question's verdict in a and in b, matched by its text.")
    fixed: int
    broken: int


MODEL_FAILED = {502: {"model": ChatResult, "description": "The model failed: the partial answer, and `error`."}}
WARM_UP_FAILED = {503: {"model": Readiness, "description": "Warm-up failed: `ready` is false."}}


def answers(ok: type[BaseModel] | dict[str, Any], *errors: int) -> dict[int | str, dict[str, Any]]:
    """Return a route's `responses`: its 200 body and the error statuses its handler and dependencies answer."""
    success = {"model": ok} if isinstance(ok, type) else ok
    return {200: success, **{status: error_response(status) for status in errors}}


def error_response(status: int) -> dict[str, Any]:
    """Return the documented response for an error status: an ErrorBody, and the header a 401 carries."""
    response: dict[str, Any] = {"model": ErrorBody, "description": ERRORS[status]}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"description": "Bearer", "required": True,
                                                    "schema": {"type": "string"}}}
    return response


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Give every /api operation the statuses its shape brings, all as ErrorBody, and the bearer scheme."""
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items() if path.startswith("/api/") else ():
            responses = operation.setdefault("responses", {})
            shaped = {422} if "422" in responses else set()
            if method not in ("get", "head", "options"):  # api/limits.py reads these bodies first
                shaped |= {413, 422}
            if "requestBody" in operation:
                shaped.add(400)
            for status in shaped:
                responses[str(status)] = {"description": ERRORS[status], "content": error_body}
            operation["responses"] = dict(sorted(responses.items()))
            if "401" in responses:  # a token is optional unless AUTH_MODE=private
                operation["security"] = [{"bearer": []}, {}]
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    components["securitySchemes"] = BEARER
    return schema


def document_api(app: FastAPI) -> None:
    """Document errors as sent, serve /docs and /redoc from local copies, answer undocumented methods with 405."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(UndocumentedMethod, schema=openapi)
    app.mount(ASSETS_URL, StaticFiles(directory=str(DOCS_ASSETS)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} API",
                              redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png", with_google_fonts=False)


class UndocumentedMethod:
    """ASGI middleware: an /api path called with a method its documentation does not list gets 405 and `Allow`."""

    def __init__(self, app: Any, schema: Callable[[], dict[str, Any]]) -> None:
        self.app, self.schema = app, schema

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        is_api = scope["type"] == "http" and scope["path"].startswith("/api/")
        allowed = documented_methods(self.schema(), scope["path"]) if is_api else None
        if not allowed or scope["method"] in allowed:
            return await self.app(scope, receive, send)
        methods = ", ".join(sorted(allowed))
        response = JSONResponse({"detail": f"{scope['method']} is not allowed here; use {methods}."},
                                status_code=405, headers={"Allow": methods})
        await response(scope, receive, send)


def documented_methods(schema: dict[str, Any], path: str) -> set[str]:
    """Return the methods documented for a concrete path; empty for an unknown one."""
    return {method.upper() for template, operations in schema.get("paths", {}).items()
            if _path_pattern(template).match(path) for method in operations}


@lru_cache(maxsize=256)
def _path_pattern(template: str) -> re.Pattern[str]:
    return compile_path(template)[0]
