"""Glassbox: watch an AI agent think. `python app.py` serves the page, /api, /ask and /metrics."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import os
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import Response
from langgraph.checkpoint.base import BaseCheckpointSaver
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api.errors import install_error_handlers
from api.evals import build_evals_api
from api.exports import build_export_api
from api.headers import SecurityHeaders
from api.knowledge import build_knowledge_api
from api.limits import UPLOAD_FILES, BodyLimit
from api.notes import build_notes_api
from api.openapi import document_api
from api.replay import build_replay_api
from api.routes import build_api
from api.ws import build_ws
from auth.access import ADMIN, Access, VisitorCookies
from chat.calculator import CALCULATOR_TOOL
from chat.components import Components, checkpointer_for, load_components
from chat.config import Settings
from chat.logs import configure_logging, log_event
from chat.service import AgentService
from chat.team import TEAM
from chat.tools import SEARCH_TOOL, TICKET_TOOL
from evals.runner import EvalRunner
from evals.store import EvalStore
from metrics.recorder import RunRecorder
from metrics.registry import AgentMetrics
from metrics.table import RunTable
from traces.db import database_for
from traces.live_otlp import LiveExport, live_export_from_env
from traces.replicas import Replicas
from traces.store import RunQuery, TraceStore
from traces.tokens import TokenStore
from ui.ask import add_ask_api
from ui.conversations import browser_secret
from ui.page import CSS, build_page
from ui.sessions import use_lazy_sessions

log = logging.getLogger("glassbox.app")
@dataclass
class Glassbox:
    """Everything with a lifetime, built once and shared by all sessions."""

    settings: Settings
    service: AgentService
    registry: CollectorRegistry
    table: RunTable
    traces: TraceStore
    access: Access
    evals: EvalRunner
    live_export: LiveExport | None = None  # spans to an OTLP collector, when OTEL_EXPORTER_OTLP_ENDPOINT is set
    replicas: Replicas | None = None  # this process among those sharing DATABASE_URL


def build_glassbox(
    settings: Settings,
    load: Callable[[Settings], Components] = load_components,
    checkpointer: Callable[[], Awaitable[BaseCheckpointSaver]] | None = None,
) -> Glassbox:
    """Wire the agent service to the metrics and the trace store; nothing slow happens until warm-up."""
    registry = CollectorRegistry()
    table = RunTable(settings.metrics_window)
    traces = TraceStore(database_for(settings.state_dir, settings.database_url),
                        replica_timeout_s=settings.replica_timeout_s)
    replicas = None
    if traces.database.shared:  # replicas may share this database: say this one is alive, lease threads
        replicas = Replicas(traces, settings.replica_timeout_s, f"http://{settings.server_name}:{settings.server_port}")
        replicas.heartbeat()
    secret = browser_secret(settings.state_dir)
    if replicas is not None:  # a visitor's cookie and thread list must read the same on every replica
        secret = replicas.shared_secret("browser-state", secret)
    access = Access(settings.auth_mode, TokenStore(traces.connect, traces.now), secret,
                    settings.admin_token, settings.space_owner)
    table.restore(traces.find_runs(ADMIN, RunQuery(limit=settings.metrics_window)))  # the charts survive a restart
    live_export = live_export_from_env(os.environ)
    recorder = RunRecorder(AgentMetrics(registry, tools=(SEARCH_TOOL, TICKET_TOOL, CALCULATOR_TOOL), agents=TEAM.agents), table)
    service = AgentService(
        lambda: load(settings),
        checkpointer or checkpointer_for(settings),
        recursion_limit=settings.recursion_limit,
        timeout_s=settings.model_timeout_s,
        max_message_chars=settings.max_message_chars,
        listeners=[recorder.record, traces.record, log_event, *([live_export.record] if live_export else [])],
        persisted=lambda run_id: asyncio.to_thread(traces.flush, run_id),
        claim=traces.claim_thread,
        approval_timeout_s=settings.approval_timeout_s,
        default_knowledge_base=settings.knowledge_base,
        lease=replicas,
        agent_graph=settings.agent_graph,
    )
    return Glassbox(settings, service, registry, table, traces, access, EvalRunner(service, EvalStore(traces)),
                    live_export, replicas)


def build_demo(glassbox: Glassbox) -> gr.Blocks:
    """Build the page and the /ask API on it."""
    demo = build_page(glassbox)
    with demo:
        add_ask_api(glassbox)
    return demo


def build_app(glassbox: Glassbox) -> FastAPI:
    """Serve the page at /, the HTTP API at /api, its docs at /docs and metrics at /metrics."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        retention = asyncio.create_task(keep_within_retention(glassbox))
        alive = asyncio.create_task(keep_alive(glassbox)) if glassbox.replicas else None
        yield
        retention.cancel()
        if alive is not None:
            alive.cancel()
        await glassbox.evals.aclose()
        await glassbox.service.aclose()
        glassbox.traces.close()
        if glassbox.live_export:  # sends what is waiting; gives up after ~2 s if the collector hangs
            await asyncio.to_thread(glassbox.live_export.close)

    app = FastAPI(title="Glassbox", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Watch an AI agent think: chat over SSE, threads, runs and their events.")
    install_error_handlers(app)
    document_api(app)  # errors documented as sent, /docs offline, 405 for an undocumented method
    settings = glassbox.settings
    app.include_router(build_api(glassbox.service, glassbox.traces, glassbox.access, settings.heartbeat_s))
    app.include_router(build_ws(glassbox.service, glassbox.traces, glassbox.access, settings.heartbeat_s))
    app.include_router(build_knowledge_api(glassbox.service, glassbox.access, settings.max_upload_bytes))
    app.include_router(build_export_api(glassbox.traces, glassbox.access))
    app.include_router(build_replay_api(glassbox.traces, glassbox.access))
    app.include_router(build_notes_api(glassbox.traces, glassbox.access))
    app.include_router(build_evals_api(glassbox.evals, glassbox.access))
    app.add_middleware(VisitorCookies, access=glassbox.access)
    app.add_middleware(BodyLimit, api_bytes=settings.max_body_bytes, upload_bytes=settings.max_upload_bytes)
    app.add_middleware(SecurityHeaders)  # outermost: refusals and errors carry the headers too

    use_lazy_sessions()  # a new caller no longer costs a copy of every component's config (ui/sessions.py)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(glassbox.registry), media_type=CONTENT_TYPE_LATEST)

    return gr.mount_gradio_app(app, build_demo(glassbox), path="/", footer_links=["api"], css=CSS,
                               max_file_size=UPLOAD_FILES * settings.max_upload_bytes)


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


async def keep_alive(glassbox: Glassbox) -> None:
    """Say this replica is alive, take over what silent ones left unfinished, and show the fleet's
    runs in this replica's charts, every few seconds."""
    replicas = glassbox.replicas
    while True:
        await asyncio.sleep(max(0.5, replicas.timeout_s / 6))
        try:
            await asyncio.to_thread(replicas.heartbeat)
            await asyncio.to_thread(replicas.recover)
            await asyncio.to_thread(glassbox.evals.store.recover)
            await asyncio.to_thread(show_the_fleet, glassbox)
        except Exception:  # the database is away for a moment: the next beat tries again
            log.exception("replica heartbeat failed; will try again")


def show_the_fleet(glassbox: Glassbox) -> bool:
    """Fill the charts' table from the shared store: every replica's last runs, labelled by replica."""
    runs = glassbox.traces.find_runs(ADMIN, RunQuery(limit=glassbox.settings.metrics_window))
    return glassbox.table.replace(runs, glassbox.replicas.names())


def spare_gradio_a_failed_import() -> None:
    """Make `import matplotlib` fail at once when it is not installed.

    Gradio tries it twice for every event step (utils.MatplotlibBackendMananger), and a failed
    import searches sys.path each time: ~90 µs, about 8% of the serving loop under 25 streams
    (bench/load.py --profile). A None in sys.modules is Python's own "known missing" marker.
    """
    if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
        sys.modules["matplotlib"] = None  # type: ignore[assignment]


def freeze_the_heap_once_warm(warm_up: threading.Thread) -> None:
    """When the page is built and warm-up has loaded everything, leave what is loaded out of the
    garbage collector's full passes (gc.freeze).

    Those objects live as long as the process, yet each full pass walked them all: passes grew to
    0.3 s as the heap filled, and under 25 streams each one held every stream's next token
    (bench/load.py: they were the slowest first tokens). Call after the page is built.
    """

    def freeze() -> None:
        warm_up.join()
        gc.collect()
        gc.freeze()

    threading.Thread(target=freeze, name="heap-freeze", daemon=True).start()


def keep_temporary_files_in(state_dir: Path) -> None:
    """Uploads (Gradio's copies, spooled request bodies) go under APP_STATE_DIR, nowhere else."""
    temporary = state_dir / "tmp"
    temporary.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(state_dir / "uploads")  # read when the app is built
    tempfile.tempdir = str(temporary)


def main() -> None:
    """Start warm-up, then serve on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT."""
    import uvicorn

    configure_logging()
    spare_gradio_a_failed_import()
    settings = Settings.from_env()
    keep_temporary_files_in(settings.state_dir)
    glassbox = build_glassbox(settings)
    warm_up = glassbox.service.start_warm_up()
    app = build_app(glassbox)
    freeze_the_heap_once_warm(warm_up)
    host, port = settings.server_name, settings.server_port
    log.info("serving", extra={"url": f"http://{host}:{port}", "provider": settings.llm_provider,
                               "auth_mode": settings.auth_mode})
    # Open event streams (gradio_client heartbeats) must not hold a restart hostage.
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)


if __name__ == "__main__":
    main()
