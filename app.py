"""Glassbox: watch an AI agent think. `python app.py` serves the page, /api, /ask and /metrics."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import gradio as gr
from fastapi import FastAPI, HTTPException
from fastapi.responses import Response
from langgraph.checkpoint.base import BaseCheckpointSaver
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api.errors import install_error_handlers
from api.limits import BodyLimit
from api.routes import ID_PATTERN, build_api
from auth.access import Access, VisitorCookies
from auth.callers import Caller
from chat.components import Components, load_components, sqlite_checkpointer
from chat.config import Settings
from chat.logs import configure_logging, log_event
from chat.service import AgentService, MessageRefused, NotYours, ThreadBusy
from chat.tools import SEARCH_TOOL, TICKET_TOOL
from metrics.counters import counters_markdown
from metrics.recorder import RunRecorder
from metrics.registry import AgentMetrics
from metrics.table import RunTable
from traces.store import TraceStore
from traces.tokens import TokenStore
from ui.conversations import browser_secret, choices, remember, reopen
from ui.observability import observe, status_markdown
from ui.render import LEVELS, TurnView, panel_html

log = logging.getLogger("glassbox.app")
UI_FRAME_S = 0.05  # while tokens stream, redraw the page at most this often
CSS = """
.gb-panel { max-height: 540px; overflow-y: auto; font-size: 0.85em; }
.gb-panel table { width: 100%; border-collapse: collapse; }
.gb-panel td, .gb-panel th { padding: 2px 6px; border-bottom: 1px solid var(--border-color-primary); vertical-align: top; }
.gb-panel td:first-child { white-space: nowrap; color: var(--body-text-color-subdued); font-variant-numeric: tabular-nums; }
.gb-error td, .gb-cancelled td { color: var(--error-text-color); }
.gb-run_end td { font-weight: 600; }
.gb-empty { color: var(--body-text-color-subdued); padding: 1em; }
"""


@dataclass
class Glassbox:
    """Everything with a lifetime, built once and shared by all sessions."""

    settings: Settings
    service: AgentService
    registry: CollectorRegistry
    table: RunTable
    traces: TraceStore
    access: Access


def build_glassbox(
    settings: Settings,
    load: Callable[[Settings], Components] = load_components,
    checkpointer: Callable[[], Awaitable[BaseCheckpointSaver]] | None = None,
) -> Glassbox:
    """Wire the agent service to the metrics and the trace store; nothing slow happens until warm-up."""
    registry = CollectorRegistry()
    table = RunTable(settings.metrics_window)
    traces = TraceStore(settings.state_dir / "traces.sqlite3")
    access = Access(settings.auth_mode, TokenStore(traces.path, traces.now), browser_secret(settings.state_dir),
                    settings.admin_token, settings.space_owner)
    recorder = RunRecorder(AgentMetrics(registry, tools=(SEARCH_TOOL, TICKET_TOOL)), table)
    service = AgentService(
        lambda: load(settings),
        checkpointer or sqlite_checkpointer(settings),
        recursion_limit=settings.recursion_limit,
        timeout_s=settings.model_timeout_s,
        max_message_chars=settings.max_message_chars,
        listeners=[recorder.record, traces.record, log_event],
        persisted=lambda run_id: asyncio.to_thread(traces.flush, run_id),
        claim=traces.claim_thread,
        approval_timeout_s=settings.approval_timeout_s,
    )
    return Glassbox(settings, service, registry, table, traces, access)


async def run_turn(service: AgentService, message: str, thread_id: str, caller: Caller) -> AsyncIterator[TurnView]:
    """Yield the turn's view after each event; a service fault becomes a note in it."""
    view = TurnView()
    try:
        async for event in service.stream(message, thread_id, caller):
            view.add(event)
            yield view
    except (ThreadBusy, NotYours) as error:
        view.note(f"⚠️ {error}")
        yield view


def build_demo(glassbox: Glassbox) -> gr.Blocks:
    """Build the page: chat, live event panel, observability panel, and the /ask API."""
    settings, service, traces, access = glassbox.settings, glassbox.service, glassbox.traces, glassbox.access

    def page_caller(visitor: str, profile: gr.OAuthProfile | None) -> Caller:
        """Who this page is: signed in with Hugging Face (on a Space with OAuth), else its browser."""
        return access.page_caller(visitor or "unknown", profile.username if profile else None)

    async def respond(message: str, history: list, thread_id: str, level: str, visitor: str,
                      profile: gr.OAuthProfile | None = None):
        """Stream one turn into the chat and the panel; refuse bad input without losing it."""
        try:
            service.check(message or "")
        except MessageRefused as refused:  # the text stays in the box: nothing is lost
            gr.Warning(f"{refused} Your text is still in the box.")
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        history = [*history, gr.ChatMessage(role="user", content=message)]
        waiting = [gr.ChatMessage(role="assistant", content="⏳ Warming up: your question will be answered as soon as the model is ready.")]
        yield "", history + (waiting if service.status == "warming up" else []), panel_html([], level), [], gr.skip()
        last_frame = 0.0
        async for view in run_turn(service, message, thread_id, page_caller(visitor, profile)):
            latest = view.events[-1] if view.events else None
            # Every step is drawn; tokens at most once a frame. The run always ends on run_end,
            # which is drawn, so no token is left undrawn.
            if latest is None or latest.type != "token" or time.monotonic() - last_frame >= UI_FRAME_S:
                last_frame = time.monotonic()
                asking = gr.update(visible=view.pending_approval is not None)
                yield gr.skip(), history + view.messages(), panel_html(view.events, level), view.events, asking

    async def ask(message: str, thread_id: str, request: gr.Request) -> AsyncIterator[str]:
        """Answer `message` in conversation `thread_id`, yielding the answer so far."""
        try:
            caller = access.ask_caller(request.headers.get("authorization"), request.session_hash)
            service.check(message or "")
        except MessageRefused as refused:
            raise gr.Error(str(refused)) from None
        except HTTPException as refused:
            raise gr.Error(refused.detail) from None
        if thread_id and not re.fullmatch(ID_PATTERN.strip("^$"), thread_id):
            raise gr.Error("thread_id must be 1 to 128 letters, digits, - or _; leave it empty to start a new one.")
        view = TurnView()
        async for view in run_turn(service, message, thread_id or uuid.uuid4().hex, caller):
            if view.events and view.events[-1].type == "token":
                yield view.answer
        notes = [s.text for s in view.segments if s.kind == "note"]
        if notes and not view.answer:
            raise gr.Error(" ".join(notes))
        yield view.answer.strip() + ("\n\n" + "\n".join(notes) if notes else "")

    async def stop(thread_id: str) -> None:  # async: runs on the event loop, where the run's task lives
        service.cancel(thread_id)

    def decide(thread_id: str, owner: str, approved: bool):
        """Answer the approval this conversation's run waits for (the thread is this page's own)."""
        waiting = service.approvals.pending_in_thread(thread_id)
        reason = "" if approved else "rejected in the chat"
        if waiting is None or not service.approvals.decide(waiting.run_id, approved, owner, reason):
            gr.Warning("Nothing is waiting for approval any more.")
        return gr.update(visible=False)

    async def approve(thread_id: str, visitor: str, profile: gr.OAuthProfile | None = None):
        return decide(thread_id, page_caller(visitor, profile).owner, approved=True)

    async def reject(thread_id: str, visitor: str, profile: gr.OAuthProfile | None = None):
        return decide(thread_id, page_caller(visitor, profile).owner, approved=False)

    def new_conversation(thread_id: str, level: str):
        service.cancel(thread_id)
        return uuid.uuid4().hex, [], panel_html([], level), [], gr.update(value=None)

    def list_conversations(ids: list[str], current: str, caller: Caller, remember_current: bool = False):
        if remember_current and traces.get_thread(caller, current):
            ids = remember(ids, current)
        listed = choices(traces, caller, ids)
        value = current if current in {key for _, key in listed} else None
        return ids, gr.update(choices=listed, value=value)

    def show_conversations(ids: list[str], current: str, visitor: str, profile: gr.OAuthProfile | None = None):
        return list_conversations(ids, current, page_caller(visitor, profile))

    def show_conversations_after_turn(ids: list[str], current: str, visitor: str,
                                      profile: gr.OAuthProfile | None = None):
        return list_conversations(ids, current, page_caller(visitor, profile), remember_current=True)

    def open_conversation(selected: str, current: str, level: str, visitor: str,
                          profile: gr.OAuthProfile | None = None):
        caller = page_caller(visitor, profile)
        if not selected or traces.get_thread(caller, selected) is None:
            gr.Warning("That conversation is gone, or not yours.")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        service.cancel(current)
        history, events = reopen(traces, caller, selected)
        return selected, history, panel_html(events, level), events

    def rename_conversation(title: str, current: str, ids: list[str], visitor: str,
                            profile: gr.OAuthProfile | None = None):
        caller = page_caller(visitor, profile)
        if not title.strip():
            gr.Warning("Type the new title first.")
            return gr.skip(), gr.skip(), gr.skip()
        if not traces.rename_thread(caller, current, title):
            gr.Warning("Send a message first, then give the conversation a title.")
            return gr.skip(), gr.skip(), gr.skip()
        return "", *list_conversations(ids, current, caller)

    def delete_conversation(current: str, ids: list[str], level: str, visitor: str,
                            profile: gr.OAuthProfile | None = None):
        caller = page_caller(visitor, profile)
        traces.delete_thread(caller, current)  # soft: the API can still read it
        fresh, history, html, events, _ = new_conversation(current, level)
        remaining, listed = list_conversations([t for t in ids if t != current], fresh, caller)
        return fresh, history, html, events, remaining, listed

    def known_visitor(visitor: str) -> str:
        return visitor or uuid.uuid4().hex  # a browser's first visit: its anonymous identity

    def observe_all(drawn: int | None):
        return observe(service, glassbox.table, glassbox.registry, drawn)

    with gr.Blocks(title="Glassbox") as demo:
        thread_id = gr.State(lambda: uuid.uuid4().hex)  # a new browser session starts a new thread
        run_events = gr.State([])
        charts_drawn = gr.State(None)  # runs_recorded when this page's charts were last drawn
        browser_threads = gr.BrowserState([], storage_key="glassbox-threads", secret=access.secret)
        # This browser's anonymous identity (AUTH_MODE public/private): encrypted, so it can't be forged.
        visitor = gr.BrowserState("", storage_key="glassbox-visitor", secret=access.secret)
        with gr.Sidebar(label="Conversations", elem_id="gb-sidebar"):
            if settings.hf_oauth:  # a Space with hf_oauth: true; signed in, the Space's owner is admin
                gr.LoginButton(elem_id="gb-login")
            conversations = gr.Radio([], label="Your conversations", elem_id="gb-conversations")
            title_box = gr.Textbox(placeholder="A new title for this conversation", show_label=False,
                                   max_length=200, elem_id="gb-title")
            with gr.Row():
                rename_button = gr.Button("Rename", size="sm", elem_id="gb-rename")
                delete_button = gr.Button("Delete", size="sm", variant="stop", elem_id="gb-delete")
        with gr.Row(equal_height=False):
            gr.Markdown("## Glassbox · watch the agent think")
            status = gr.Markdown(status_markdown(service), elem_id="gb-status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Chat", height=520, elem_id="gb-chat", layout="bubble",
                                     placeholder="Ask about returns, shipping, warranty, payments…")
                with gr.Row():
                    box = gr.Textbox(placeholder="Ask a question and press Enter", show_label=False,
                                     scale=5, max_length=settings.max_message_chars, elem_id="gb-input")
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="gb-send")
                with gr.Row(visible=False, elem_id="gb-approval") as approval_row:
                    approve_button = gr.Button("Approve", variant="primary", elem_id="gb-approve")
                    reject_button = gr.Button("Reject", variant="stop", elem_id="gb-reject")
                with gr.Row():
                    stop_button = gr.Button("Stop", variant="stop", elem_id="gb-stop")
                    new_button = gr.Button("New conversation", elem_id="gb-new")
            with gr.Column(scale=2):
                level = gr.Radio(list(LEVELS), value="full trace", label="Event level", elem_id="gb-level")
                panel = gr.HTML(panel_html([], "full trace"), elem_id="gb-panel")
        with gr.Accordion("Observability", open=True, elem_id="gb-observability"):
            with gr.Row():
                ttft_plot = gr.LinePlot(x="time", y="ttft_s", title="Time to first token (s)",
                                        height=220, y_lim=[0, None], x_axis_format="%H:%M:%S",
                                        elem_id="gb-ttft-plot")
                latency_plot = gr.LinePlot(x="time", y="latency_s", title="Latency, end to end (s)",
                                           height=220, y_lim=[0, None],
                                           x_axis_format="%H:%M:%S", elem_id="gb-latency-plot")
            with gr.Row():
                counters = gr.Markdown(counters_markdown(glassbox.registry), elem_id="gb-counters")
                target_table = gr.Dataframe(label="Percentiles of completed runs vs targets",
                                            interactive=False, elem_id="gb-targets")
        timer = gr.Timer(1.0)

        private = {"api_visibility": "private"}
        turn = [box, chatbot, thread_id, level, visitor]
        outputs = [box, chatbot, panel, run_events, approval_row]
        listing = [browser_threads, conversations]
        for trigger in (box.submit, send.click):
            trigger(respond, turn, outputs, concurrency_limit=None, **private).then(
                show_conversations_after_turn, [browser_threads, thread_id, visitor], listing, **private)
        stop_button.click(stop, [thread_id], None, queue=False, **private)
        approve_button.click(approve, [thread_id, visitor], approval_row, queue=False, **private)
        reject_button.click(reject, [thread_id, visitor], approval_row, queue=False, **private)
        new_button.click(new_conversation, [thread_id, level],
                         [thread_id, chatbot, panel, run_events, conversations], **private)
        conversations.input(open_conversation, [conversations, thread_id, level, visitor],
                            [thread_id, chatbot, panel, run_events], **private)
        rename_button.click(rename_conversation, [title_box, thread_id, browser_threads, visitor],
                            [title_box, *listing], **private)
        delete_button.click(delete_conversation, [thread_id, browser_threads, level, visitor],
                            [thread_id, chatbot, panel, run_events, browser_threads, conversations], **private)
        level.change(lambda events, lvl: panel_html(events, lvl), [run_events, level], panel, **private)
        figures = [status, ttft_plot, latency_plot, counters, target_table, charts_drawn]
        timer.tick(observe_all, charts_drawn, figures, show_progress="hidden", **private)
        demo.load(observe_all, charts_drawn, figures, **private)
        demo.load(known_visitor, visitor, visitor, **private).then(
            show_conversations, [browser_threads, thread_id, visitor], listing, **private)
        gr.api(ask, api_name="ask", concurrency_limit=None)
    return demo


def build_app(glassbox: Glassbox) -> FastAPI:
    """Serve the page at /, the HTTP API at /api, its docs at /docs and metrics at /metrics."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        retention = asyncio.create_task(keep_within_retention(glassbox))
        yield
        retention.cancel()
        await glassbox.service.aclose()
        glassbox.traces.close()

    app = FastAPI(title="Glassbox", version="1", lifespan=lifespan,
                  description="Watch an AI agent think: chat over SSE, threads, runs and their events.")
    install_error_handlers(app)
    settings = glassbox.settings
    app.include_router(build_api(glassbox.service, glassbox.traces, glassbox.access, settings.heartbeat_s))
    app.add_middleware(VisitorCookies, access=glassbox.access)
    app.add_middleware(BodyLimit, api_bytes=settings.max_body_bytes, upload_bytes=settings.max_upload_bytes)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(glassbox.registry), media_type=CONTENT_TYPE_LATEST)

    return gr.mount_gradio_app(app, build_demo(glassbox), path="/", footer_links=["api"], css=CSS,
                               max_file_size=settings.max_upload_bytes)


async def keep_within_retention(glassbox: Glassbox, every_s: float = 3600.0) -> None:
    """Apply TRACE_RETENTION_DAYS / TRACE_MAX_RUNS now and every hour, conversation memory included."""
    settings = glassbox.settings
    if not (settings.trace_retention_days or settings.trace_max_runs):
        return
    while True:
        try:
            removed = await asyncio.to_thread(glassbox.traces.prune, settings.trace_retention_days,
                                              settings.trace_max_runs)
            checkpointer = glassbox.service.checkpointer
            for thread_id in removed if checkpointer is not None else []:
                await checkpointer.adelete_thread(thread_id)
        except Exception:  # retention must never take the server down
            log.exception("retention failed; will try again")
        await asyncio.sleep(every_s)


def main() -> None:
    """Start warm-up, then serve on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT."""
    import uvicorn

    configure_logging()
    settings = Settings.from_env()
    glassbox = build_glassbox(settings)
    glassbox.service.start_warm_up()
    host, port = settings.server_name, settings.server_port
    log.info("serving", extra={"url": f"http://{host}:{port}", "provider": settings.llm_provider,
                               "auth_mode": settings.auth_mode})
    # Open event streams (gradio_client heartbeats) must not hold a restart hostage.
    uvicorn.run(build_app(glassbox), host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)


if __name__ == "__main__":
    main()
