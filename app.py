"""Glassbox: watch an AI agent think. `python app.py` serves the page, /api, /ask and /metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import Response
from langgraph.checkpoint.base import BaseCheckpointSaver
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api.errors import install_error_handlers
from api.routes import build_api
from chat.components import Components, load_components, sqlite_checkpointer
from chat.config import Settings
from chat.logs import configure_logging, log_event
from chat.service import AgentService, MessageRefused, ThreadBusy
from chat.tools import SEARCH_TOOL, TICKET_TOOL
from metrics.counters import counters_markdown
from metrics.recorder import RunRecorder
from metrics.registry import AgentMetrics
from metrics.table import RunTable
from traces.store import TraceStore
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


def build_glassbox(
    settings: Settings,
    load: Callable[[Settings], Components] = load_components,
    checkpointer: Callable[[], Awaitable[BaseCheckpointSaver]] | None = None,
) -> Glassbox:
    """Wire the agent service to the metrics and the trace store; nothing slow happens until warm-up."""
    registry = CollectorRegistry()
    table = RunTable(settings.metrics_window)
    traces = TraceStore(settings.state_dir / "traces.sqlite3")
    recorder = RunRecorder(AgentMetrics(registry, tools=(SEARCH_TOOL, TICKET_TOOL)), table)
    service = AgentService(
        lambda: load(settings),
        checkpointer or sqlite_checkpointer(settings),
        recursion_limit=settings.recursion_limit,
        timeout_s=settings.model_timeout_s,
        max_message_chars=settings.max_message_chars,
        listeners=[recorder.record, traces.record, log_event],
        persisted=lambda: asyncio.to_thread(traces.flush),
    )
    return Glassbox(settings, service, registry, table, traces)


async def run_turn(service: AgentService, message: str, thread_id: str) -> AsyncIterator[TurnView]:
    """Yield the turn's view after each event; a service fault becomes a note in it."""
    view = TurnView()
    try:
        async for event in service.stream(message, thread_id):
            view.add(event)
            yield view
    except ThreadBusy as error:
        view.note(f"⚠️ {error}")
        yield view


def build_demo(glassbox: Glassbox) -> gr.Blocks:
    """Build the page: chat, live event panel, observability panel, and the /ask API."""
    settings, service = glassbox.settings, glassbox.service

    async def respond(message: str, history: list, thread_id: str, level: str):
        """Stream one turn into the chat and the panel; refuse bad input without losing it."""
        try:
            service.check(message or "")
        except MessageRefused as refused:  # the text stays in the box: nothing is lost
            gr.Warning(f"{refused} Your text is still in the box.")
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        history = [*history, gr.ChatMessage(role="user", content=message)]
        waiting = [gr.ChatMessage(role="assistant", content="⏳ Warming up: your question will be answered as soon as the model is ready.")]
        yield "", history + (waiting if service.status == "warming up" else []), panel_html([], level), []
        last_frame = 0.0
        async for view in run_turn(service, message, thread_id):
            latest = view.events[-1] if view.events else None
            # Every step is drawn; tokens at most once a frame. The run always ends on run_end,
            # which is drawn, so no token is left undrawn.
            if latest is None or latest.type != "token" or time.monotonic() - last_frame >= UI_FRAME_S:
                last_frame = time.monotonic()
                yield gr.skip(), history + view.messages(), panel_html(view.events, level), view.events

    async def ask(message: str, thread_id: str) -> AsyncIterator[str]:
        """Answer `message` in conversation `thread_id`, yielding the answer so far."""
        try:
            service.check(message or "")
        except MessageRefused as refused:
            raise gr.Error(str(refused)) from None
        view = TurnView()
        async for view in run_turn(service, message, thread_id or uuid.uuid4().hex):
            if view.events and view.events[-1].type == "token":
                yield view.answer
        notes = [s.text for s in view.segments if s.kind == "note"]
        if notes and not view.answer:
            raise gr.Error(" ".join(notes))
        yield view.answer.strip() + ("\n\n" + "\n".join(notes) if notes else "")

    def stop(thread_id: str) -> None:
        service.cancel(thread_id)

    def new_conversation(thread_id: str, level: str):
        service.cancel(thread_id)
        return uuid.uuid4().hex, [], panel_html([], level), [], gr.update(value=None)

    def list_conversations(ids: list[str], current: str, remember_current: bool = False):
        if remember_current and glassbox.traces.get_thread(current):
            ids = remember(ids, current)
        listed = choices(glassbox.traces, ids)
        value = current if current in {key for _, key in listed} else None
        return ids, gr.update(choices=listed, value=value)

    def open_conversation(selected: str, current: str, level: str):
        service.cancel(current)
        history, events = reopen(glassbox.traces, selected)
        return selected, history, panel_html(events, level), events

    def rename_conversation(title: str, current: str, ids: list[str]):
        if not title.strip():
            gr.Warning("Type the new title first.")
            return gr.skip(), gr.skip(), gr.skip()
        if not glassbox.traces.rename_thread(current, title):
            gr.Warning("Send a message first, then give the conversation a title.")
            return gr.skip(), gr.skip(), gr.skip()
        return "", *list_conversations(ids, current)

    def delete_conversation(current: str, ids: list[str], level: str):
        glassbox.traces.delete_thread(current)  # soft: the API can still read it
        fresh, history, html, events, _ = new_conversation(current, level)
        remaining, listed = list_conversations([t for t in ids if t != current], fresh)
        return fresh, history, html, events, remaining, listed

    def observe_all(drawn: int | None):
        return observe(service, glassbox.table, glassbox.registry, drawn)

    with gr.Blocks(title="Glassbox") as demo:
        thread_id = gr.State(lambda: uuid.uuid4().hex)  # a new browser session starts a new thread
        run_events = gr.State([])
        charts_drawn = gr.State(None)  # runs_recorded when this page's charts were last drawn
        browser_threads = gr.BrowserState([], storage_key="glassbox-threads",
                                          secret=browser_secret(settings.state_dir))
        with gr.Sidebar(label="Conversations", elem_id="gb-sidebar"):
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
        turn = [box, chatbot, thread_id, level]
        outputs = [box, chatbot, panel, run_events]
        listing = [browser_threads, conversations]
        for trigger in (box.submit, send.click):
            trigger(respond, turn, outputs, concurrency_limit=None, **private).then(
                lambda ids, current: list_conversations(ids, current, remember_current=True),
                [browser_threads, thread_id], listing, **private)
        stop_button.click(stop, [thread_id], None, queue=False, **private)
        new_button.click(new_conversation, [thread_id, level],
                         [thread_id, chatbot, panel, run_events, conversations], **private)
        conversations.input(open_conversation, [conversations, thread_id, level],
                            [thread_id, chatbot, panel, run_events], **private)
        rename_button.click(rename_conversation, [title_box, thread_id, browser_threads],
                            [title_box, *listing], **private)
        delete_button.click(delete_conversation, [thread_id, browser_threads, level],
                            [thread_id, chatbot, panel, run_events, browser_threads, conversations], **private)
        level.change(lambda events, lvl: panel_html(events, lvl), [run_events, level], panel, **private)
        figures = [status, ttft_plot, latency_plot, counters, target_table, charts_drawn]
        timer.tick(observe_all, charts_drawn, figures, show_progress="hidden", **private)
        demo.load(observe_all, charts_drawn, figures, **private)
        demo.load(list_conversations, [browser_threads, thread_id], listing, **private)
        gr.api(ask, api_name="ask", concurrency_limit=None)
    return demo


def build_app(glassbox: Glassbox) -> FastAPI:
    """Serve the page at /, the HTTP API at /api, its docs at /docs and metrics at /metrics."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await glassbox.service.aclose()
        glassbox.traces.close()

    app = FastAPI(title="Glassbox", version="1", lifespan=lifespan,
                  description="Watch an AI agent think: chat over SSE, threads, runs and their events.")
    install_error_handlers(app)
    app.include_router(build_api(glassbox.service, glassbox.traces, glassbox.settings.heartbeat_s))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(glassbox.registry), media_type=CONTENT_TYPE_LATEST)

    return gr.mount_gradio_app(app, build_demo(glassbox), path="/", footer_links=["api"], css=CSS)


def main() -> None:
    """Start warm-up, then serve on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT."""
    import uvicorn

    configure_logging()
    settings = Settings.from_env()
    glassbox = build_glassbox(settings)
    glassbox.service.start_warm_up()
    host = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    port = int(os.environ.get("GRADIO_SERVER_PORT", "7860"))
    log.info("serving", extra={"url": f"http://{host}:{port}", "provider": settings.llm_provider})
    # Open event streams (gradio_client heartbeats) must not hold a restart hostage.
    uvicorn.run(build_app(glassbox), host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)


if __name__ == "__main__":
    main()
