"""The agent as a service: warm up once, run messages as event streams, stop runs."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from auth.callers import LOCAL, Caller
from chat.approvals import Approvals
from chat.components import Components
from chat.events import ApprovalRequired, Event, RunEnded
from chat.graph import build_graph
from chat.run import emit_all, stream_run
from chat.state import SUPPORT, GraphShape
from chat.stream import RunTranslator
from chat.team import TEAM, build_team_graph
from chat.text import clean_text
from chat.tools import search_query
from rag.lock import StoreBusy
from rag.priority import FOREGROUND

if TYPE_CHECKING:
    from rag.bases import KnowledgeBases

log = logging.getLogger("glassbox.service")
Listener = Callable[[Event], None]


def _warm_up_failure(error: Exception) -> str:
    """Say what failed in our words; the library's own text is in the server log."""
    if isinstance(error, (FileNotFoundError, PermissionError)):
        return f"a file it needs could not be opened ({getattr(error, 'filename', None) or 'see the server log'})"
    if isinstance(error, MemoryError):
        return "there is not enough memory to load the model"
    return "loading the model or the knowledge store went wrong; the server log says what"


class ThreadLease(Protocol):
    """One run at a time per thread, across every process sharing the store (traces/replicas.py)."""

    def take(self, thread_id: str, run_id: str) -> bool: ...

    def release(self, thread_id: str, run_id: str) -> None: ...


class NotReady(RuntimeError):
    """Warm-up failed; the message says why."""


class ThreadBusy(RuntimeError):
    """A run is already streaming in this conversation."""


class NotYours(LookupError):
    """The thread belongs to someone else (or was deleted): to this caller it does not exist."""


SHAPES: dict[str, GraphShape] = {"support": SUPPORT, "team": TEAM}
BUILDERS = {"support": build_graph, "team": build_team_graph}


class WrongKnowledgeBase(LookupError):
    """The knowledge base asked for does not exist, or is not the one this conversation uses."""


class MessageRefused(ValueError):
    """The message is empty or too long; the message says so and how to fix it."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(text)
        self.reason = reason  # "empty" or "too_long"


class AgentService:
    """Run the agent for any number of sessions; every event goes to every listener."""

    def __init__(
        self,
        load: Callable[[], Components],
        open_checkpointer: Callable[[], Awaitable[BaseCheckpointSaver]] | None = None,
        *,
        recursion_limit: int = 12,
        timeout_s: float = 60.0,
        max_message_chars: int = 4000,
        listeners: list[Listener] | None = None,
        persisted: Callable[[str], Awaitable[bool]] | None = None,
        claim: Callable[[Caller, str, str, str], str | None] | None = None,
        approval_timeout_s: float = 300.0,
        default_knowledge_base: str = "sample",
        lease: ThreadLease | None = None,
        agent_graph: str = "support",
    ) -> None:
        self._load = load
        self._open_checkpointer = open_checkpointer
        self.recursion_limit = recursion_limit
        self.timeout_s = timeout_s
        self.max_message_chars = max_message_chars
        self.listeners = list(listeners or [])
        # Awaited before a run's end reaches its reader: what a reader was told is stored.
        self.persisted = persisted
        # Creates a new thread for the caller with a knowledge base, or returns an existing one's
        # knowledge base if it is theirs; None when it is not.
        self.claim = claim
        self.default_knowledge_base = default_knowledge_base
        self.agent_graph = agent_graph  # AGENT_GRAPH: the graph a message runs when it names none
        self.lease = lease  # one run per thread across replicas (traces/replicas.py); None: this process only
        self.approvals = Approvals(approval_timeout_s)  # runs paused until a person decides
        self.components: Components | None = None
        self.checkpointer: BaseCheckpointSaver | None = None
        self.error: str | None = None
        self.started_at = time.monotonic()
        self.ready_after_s: float | None = None
        self._loaded = threading.Event()
        self._graphs: dict[str, CompiledStateGraph] = {}  # per AGENT_GRAPH name, compiled on first use
        self._graph_lock: asyncio.Lock | None = None
        self._active: dict[str, asyncio.Task] = {}

    @property
    def status(self) -> str:
        """Return "warming up", "ready" or "failed: <why>"."""
        if self.error:
            return f"failed: {self.error}"
        return "ready" if self._loaded.is_set() else "warming up"

    def start_warm_up(self) -> threading.Thread:
        """Load the model, embeddings and store in the background."""
        thread = threading.Thread(target=self.warm_up, name="warm-up", daemon=True)
        thread.start()
        return thread

    def warm_up(self) -> None:
        """Load everything now (blocking); record failure instead of raising."""
        try:
            self.components = self._load()
            self.ready_after_s = time.monotonic() - self.started_at
            log.info("ready", extra={"seconds": round(self.ready_after_s, 2), "timings": self.components.timings})
        except StoreBusy as busy:  # shown on the page; the server keeps running
            log.error("warm-up failed: %s", busy)
            self.error = f"{busy}. Stop it first, or give this app its own APP_STATE_DIR."
        except Exception as error:
            log.exception("warm-up failed")
            self.error = _warm_up_failure(error)
        finally:
            self._loaded.set()

    async def wait_ready(self) -> Components:
        """Wait for warm-up (a message sent early waits instead of failing)."""
        if not self._loaded.is_set():
            await asyncio.to_thread(self._loaded.wait)
        if self.components is None:
            raise NotReady(f"The agent could not start: {self.error}")
        return self.components

    def check(self, message: str) -> None:
        """Raise MessageRefused for a message the agent will not take."""
        if not message.strip():
            raise MessageRefused("Type a question first: the message is empty.", "empty")
        if len(message) > self.max_message_chars:
            raise MessageRefused(
                f"That message is {len(message):,} characters; the limit here is {self.max_message_chars:,}. "
                "Shorten it and send again.",
                "too_long",
            )

    def is_busy(self, thread_id: str) -> bool:
        """Return whether a run is streaming in `thread_id`."""
        return thread_id in self._active

    async def stream(self, message: str, thread_id: str, caller: Caller = LOCAL,
                     knowledge_base: str | None = None, agent_graph: str | None = None) -> AsyncIterator[Event]:
        """Run one message in the caller's thread and yield its events, from `RunQueued` to `RunEnded`.

        `agent_graph` ("support" or "team"; default AGENT_GRAPH) may differ from turn to turn: both
        graphs keep the conversation in the same memory.

        A new thread answers from `knowledge_base` (default: the default one) for good; naming
        another one for an existing thread is refused. Raises MessageRefused, NotYours,
        WrongKnowledgeBase or ThreadBusy before anything runs.
        """
        self.check(message)
        message = clean_text(message)  # one odd character costs itself, never the store
        self.check_knowledge_base(knowledge_base)
        shape = SHAPES.get(agent_graph or self.agent_graph, SUPPORT)
        if shape.searches_message and self.knowledge is not None:
            # Its first step searches for the message: the embedding starts now, alongside the
            # thread's claim and the graph's start, off the time to first token (bench/ttft.py).
            self.knowledge.prefetch(search_query(message))
        wanted = knowledge_base or self.default_knowledge_base
        used = wanted
        if self.claim:
            used = await asyncio.to_thread(self.claim, caller, thread_id, message, wanted)
            if used is None:
                raise NotYours("There is no conversation with that id; leave it out to start a new one.")
            if knowledge_base and used != knowledge_base:
                raise WrongKnowledgeBase(f"This conversation answers from the knowledge base “{used}”; "
                                         "start a new conversation to use another one.")
        if self.is_busy(thread_id):
            raise ThreadBusy("An answer is still streaming in this conversation; stop it or wait.")
        queue: asyncio.Queue[Event] = asyncio.Queue()
        translator = RunTranslator(uuid.uuid4().hex, thread_id, shape=shape)
        run_id = translator.ids["run_id"]
        # Replicas sharing a database: the thread's lease, so a message reaching another replica waits its turn.
        if self.lease is not None and not await asyncio.to_thread(self.lease.take, thread_id, run_id):
            raise ThreadBusy("An answer is still streaming in this conversation; stop it or wait.")

        def emit(event: Event) -> None:
            event = translator.stamp(event)  # seq, wall-clock time, span: every reader sees the same
            if isinstance(event, ApprovalRequired):  # decidable from the moment anyone can see it
                self.approvals.expect(event)
            self._publish(event)
            queue.put_nowait(event)

        task = asyncio.create_task(self._run(message, translator, emit, used))
        self._active[thread_id] = task
        try:
            while True:
                event = await queue.get()
                if isinstance(event, RunEnded) and self.persisted and not await self.persisted(event.run_id):
                    log.warning("run not stored in full", extra={"run_id": event.run_id})
                yield event
                if isinstance(event, RunEnded):
                    break
        finally:
            self._active.pop(thread_id, None)
            self.approvals.forget(translator.ids["run_id"])
            if not task.done():  # the reader went away (Stop, closed tab): stop the model too
                task.cancel()
            with suppress(asyncio.CancelledError):
                # Shielded: a web server (anyio) cancels its handler again and again; awaiting
                # the run unshielded would pass each cancel on into LangGraph's own clean-up,
                # which then never cancels the model node, and the model keeps generating.
                await asyncio.shield(task)
            if self.lease is not None:
                with suppress(asyncio.CancelledError):  # shielded too: the lease goes back whatever happens
                    await asyncio.shield(asyncio.to_thread(self._release, thread_id, run_id))

    def _release(self, thread_id: str, run_id: str) -> None:
        try:
            self.lease.release(thread_id, run_id)
        except Exception:  # the database is away: the lease frees itself once the run is over
            log.exception("could not release a thread's lease", extra={"run_id": run_id})

    def cancel(self, thread_id: str) -> bool:
        """Stop the run streaming in `thread_id`; return whether there was one."""
        task = self._active.get(thread_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    async def aclose(self) -> None:
        """Stop running answers and close the conversation memory's database."""
        for task in list(self._active.values()):
            task.cancel()
        # The SQLite saver closes itself, under its lock (a statement still in a worker thread ends
        # first); Postgres' closes its pool, which is awaited.
        saver = self.checkpointer
        close = getattr(saver, "close", None) or getattr(getattr(saver, "conn", None), "close", None)
        closed = close() if close is not None else None
        if inspect.isawaitable(closed):
            await closed
        if self.knowledge is not None:
            self.knowledge.close()  # another process may write to the store now

    @property
    def knowledge(self) -> KnowledgeBases | None:
        """The knowledge bases, once warm (None before, or for an agent built without any)."""
        return self.components.knowledge if self.components else None

    def check_knowledge_base(self, name: str | None) -> None:
        """Raise WrongKnowledgeBase if `name` is given and no such knowledge base exists (once warm)."""
        library = self.knowledge
        if name and library is not None and not library.exists(name):
            raise WrongKnowledgeBase(f"There is no knowledge base named “{name[:40]}”; "
                                     "GET /api/kb lists them.")

    async def _run(self, message: str, translator: RunTranslator, emit: Listener, knowledge_base: str) -> None:
        emit(translator.queued(message))
        try:
            components = await self.wait_ready()
            graph = await self._compiled_graph(components, translator.shape.name)
            library = components.knowledge
            if library is not None and not library.exists(knowledge_base):  # asked for during warm-up
                emit_all(emit, translator.finish("failed", error=(
                    "input", f"There is no knowledge base named “{knowledge_base[:40]}”.")))
                return
            fingerprint = "" if library is None else (library.cached_fingerprint(knowledge_base)
                                                      or await asyncio.to_thread(library.fingerprint, knowledge_base))
        except asyncio.CancelledError:  # stopped while queued
            emit_all(emit, translator.finish("cancelled", stopped="stopped while queued"))
            raise
        except NotReady as error:
            emit_all(emit, translator.finish("failed", error=("internal", str(error))))
            return
        with FOREGROUND.running():  # an upload's embedding gives way meanwhile (rag/priority.py)
            await stream_run(
                graph, message, translator=translator, model_name=components.model_name,
                knowledge=(knowledge_base, fingerprint), assistant=components.identity(knowledge_base)[1],
                run_config=components.config,
                recursion_limit=self.recursion_limit, timeout_s=self.timeout_s, emit=emit,
                decide=self.approvals.wait,
            )

    async def _compiled_graph(self, components: Components, name: str = "support") -> CompiledStateGraph:
        # Compiled on the serving event loop, because the Postgres saver's pool binds to it.
        if self._graph_lock is None:
            self._graph_lock = asyncio.Lock()
        async with self._graph_lock:
            if self._open_checkpointer and self.checkpointer is None:
                self.checkpointer = await self._open_checkpointer()
            if name not in self._graphs:
                self._graphs[name] = BUILDERS[name](components.model, components.tools, checkpointer=self.checkpointer,
                                                    identity=components.identity,
                                                    history_messages=components.history_messages)
        return self._graphs[name]

    def _publish(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # a broken reader must not break the user's run
                log.exception("event listener failed", extra={"run_id": event.run_id})
