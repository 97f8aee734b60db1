"""Shared fakes: a scripted chat model, a small knowledge base, and a warm service."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field

from bench.run import free_port
from chat.components import Components
from chat.service import AgentService
from chat.tickets import TicketStore
from chat.tools import build_tools
from rag.types import Hit


@dataclass
class Reply:
    """One scripted model answer: reasoning, then tokens or tool calls."""

    tokens: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"name", "args"}
    reasoning: list[str] = field(default_factory=list)
    delay_s: float = 0.0  # before every chunk
    fail_after: int | None = None  # raise after this many tokens
    hang_after: int | None = None  # stall forever after this many tokens


class ScriptedChatModel(BaseChatModel):
    """A chat model that streams scripted replies, one per call, and records its prompts."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    replies: list[Reply] = Field(default_factory=list)
    # Replies for the calls whose system prompt contains the key (the team's agents run side by
    # side, so their calls come in no fixed order): checked before `replies`.
    replies_for: dict[str, list[Reply]] = Field(default_factory=dict)
    default: Reply = Field(default_factory=lambda: Reply(tokens=["OK."]))
    supports_tools: bool = True
    prompts: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[str] = Field(default_factory=list)
    chunks_sent: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:
        if not self.supports_tools:
            raise NotImplementedError
        self.bound_tools = [t.name for t in tools]
        return self

    def _next_reply(self, messages: list[BaseMessage]) -> Reply:
        self.prompts.append(list(messages))
        system = messages[0].text if messages and messages[0].type == "system" else ""
        for key, replies in self.replies_for.items():
            if key in system and replies:
                return replies.pop(0)
        return self.replies.pop(0) if self.replies else self.default

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        reply = self._next_reply(messages)
        message = AIMessage(content="".join(reply.tokens), tool_calls=_tool_calls(reply))
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _astream(self, messages, stop=None, run_manager=None, **kwargs) -> AsyncIterator[ChatGenerationChunk]:
        reply = self._next_reply(messages)
        for text in reply.reasoning:
            await asyncio.sleep(reply.delay_s)
            yield self._chunk(AIMessageChunk(content="", additional_kwargs={"reasoning_content": text}))
        for index, text in enumerate(reply.tokens):
            if reply.fail_after is not None and index == reply.fail_after:
                raise ConnectionError("upstream closed the stream")
            if reply.hang_after is not None and index == reply.hang_after:
                await asyncio.sleep(3600)
            await asyncio.sleep(reply.delay_s)
            chunk = self._chunk(AIMessageChunk(content=text))
            if run_manager:
                await run_manager.on_llm_new_token(text, chunk=chunk)
            yield chunk
        for index, call in enumerate(_tool_calls(reply)):
            tool_chunk = {"name": call["name"], "args": json.dumps(call["args"]), "id": call["id"], "index": index}
            yield self._chunk(AIMessageChunk(content="", tool_call_chunks=[tool_chunk]))
        usage = {"input_tokens": 10, "output_tokens": len(reply.tokens), "total_tokens": 10 + len(reply.tokens)}
        yield self._chunk(AIMessageChunk(content="", usage_metadata=usage, chunk_position="last"))

    def _chunk(self, message: AIMessageChunk) -> ChatGenerationChunk:
        self.chunks_sent += 1
        return ChatGenerationChunk(message=message)


def _tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {"name": c["name"], "args": c["args"], "id": c.get("id", f"call-{i}"), "type": "tool_call"}
        for i, c in enumerate(reply.tool_calls)
    ]


class FakeKnowledgeBase:
    """Keyword search over a few fixed facts."""

    FACTS = [
        Hit("returns.md", "c1", 0.9, "Faulty items can be returned within 45 days for a replacement or refund."),
        Hit("shipping.md", "c2", 0.8, "Standard shipping takes 3 to 5 working days."),
    ]

    def __init__(self) -> None:
        self.queries: list[str] = []

    def search(self, query: str, k: int) -> list[Hit]:
        self.queries.append(query)
        words = set(query.lower().split())
        ranked = sorted(self.FACTS, key=lambda h: -len(words & set(h.text.lower().split())))
        return ranked[:k]


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory) -> Iterator[str]:
    """A Chroma server (`chroma run`, which the chromadb package ships) on a free port: CHROMA_URL's backend."""
    import shutil
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    beside = Path(sys.executable).with_name("chroma")
    command = str(beside) if beside.exists() else shutil.which("chroma")
    if command is None:
        pytest.fail("the chroma command (from the chromadb package) is not installed")
    server = subprocess.Popen([command, "run", "--path", str(tmp_path_factory.mktemp("chroma-server")),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("chroma run did not start within 30 s")
        yield url
    finally:
        server.terminate()
        server.wait(10)


REQUIRE_POSTGRES = os.environ.get("GLASSBOX_REQUIRE_POSTGRES") == "1"  # set by .ci/run: never skip in CI


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory) -> Iterator[str]:
    """A throwaway Postgres cluster (Debian's postgresql package) on a free port; its admin URL."""
    import shutil
    import subprocess

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        (pytest.fail if REQUIRE_POSTGRES else pytest.skip)("Postgres is not installed (apt-get install postgresql)")
    binaries = found[-1].parent
    # Not under pytest's temp dir: that one is root's alone, and Postgres runs as its own user.
    folder = Path(tempfile.mkdtemp(prefix="glassbox-postgres-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # Postgres refuses to run as root: as the package's own user
        shutil.chown(folder, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = folder / "data"
    subprocess.run([*as_postgres, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    subprocess.run([*as_postgres, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
                    "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(admin_url: str) -> str:
    """A new, empty database on the test cluster; its URL."""
    import uuid

    import psycopg

    name = f"t{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def trace_database(request) -> str | None:
    """DATABASE_URL for `serve_glassbox`: None (SQLite in the state dir), or a fresh Postgres database.

    A test module with `BOTH_BACKENDS = True` runs every test that starts the app on both.
    """
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    return fresh_database(request.getfixturevalue("postgres_server"))


def pytest_generate_tests(metafunc) -> None:
    if "trace_database" in metafunc.fixturenames and getattr(metafunc.module, "BOTH_BACKENDS", False):
        metafunc.parametrize("trace_database", ["sqlite", "postgres"], indirect=True)


def emptied(url: str) -> str:
    """The Chroma server at `url`, with every collection a previous test left there deleted."""
    import chromadb

    client = chromadb.HttpClient(host="127.0.0.1", port=int(url.rsplit(":", 1)[1]),
                                 settings=chromadb.config.Settings(anonymized_telemetry=False))
    for collection in client.list_collections():
        client.delete_collection(collection.name)
    return url


@pytest.fixture(autouse=True)
def no_collector_of_the_developers(monkeypatch) -> None:
    """A shell's OTEL_EXPORTER_OTLP_ENDPOINT must not send every test's runs to a collector."""
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def scripted_model() -> ScriptedChatModel:
    return ScriptedChatModel()


@pytest.fixture
def tickets(tmp_path: Path) -> Iterator[TicketStore]:
    store = TicketStore(tmp_path / "tickets.sqlite3")
    yield store
    store.close()


@pytest.fixture
def knowledge_base() -> FakeKnowledgeBase:
    return FakeKnowledgeBase()


@pytest.fixture
def make_service(scripted_model, knowledge_base, tickets):
    """Build a service around the scripted model; keyword arguments go to AgentService."""

    def make(**kwargs: Any) -> AgentService:
        tools = build_tools(lambda _name: knowledge_base, tickets, top_k=1)
        components = Components(model=scripted_model, model_name="scripted", tools=tools)
        service = AgentService(lambda: components, **kwargs)
        service.warm_up()
        return service

    return make


@dataclass
class Running:
    """An app started by `serve_glassbox`."""

    glassbox: Any
    url: str
    server: Any


@pytest.fixture
def serve_glassbox(tmp_path, scripted_model, knowledge_base, tickets, trace_database):
    """Start the real app (page, /api, /ask, /metrics) around the scripted model.

    Every app a test starts shares one state dir, so a second start is a restart.
    """
    from langgraph.checkpoint.memory import InMemorySaver

    from app import build_app, build_glassbox
    from bench.serving import BackgroundServer
    from chat.config import Settings

    servers = []
    saver = InMemorySaver()

    async def open_saver():
        return saver

    def start(load_delay_s: float = 0.0, port: int = 0, knowledge: Any = None, gate: Any = None,
              **settings: Any) -> Running:
        """`knowledge`: real KnowledgeBases to search and manage (default: the fake knowledge base);
        `gate`: a threading.Event warm-up waits for, so a test decides when the model is ready."""

        def load(_settings: Settings) -> Components:
            import time

            time.sleep(load_delay_s)
            if gate is not None:
                gate.wait(30)
            if knowledge is not None:
                tools = build_tools(lambda name: knowledge.get(name or "sample"), tickets, top_k=1)
                return Components(scripted_model, "scripted", tools, knowledge=knowledge)
            tools = build_tools(lambda _name: knowledge_base, tickets, top_k=1)
            return Components(scripted_model, "scripted", tools, knowledge_chunks=2, timings={"model": 0.0})

        settings.setdefault("database_url", trace_database)
        glassbox = build_glassbox(Settings(state_dir=tmp_path / "state", **settings), load, open_saver)
        glassbox.service.start_warm_up()
        server = BackgroundServer(build_app(glassbox), port=port, name="glassbox").start()
        servers.append(server)
        return Running(glassbox, server.url, server)

    yield start
    for server in servers:
        server.stop()


async def approving(service: AgentService, message: str, thread_id: str = "t1", approve: bool = True,
                    agent_graph: str | None = None) -> list:
    """Run a message to its end, deciding every approval it asks for as a person in the chat would."""
    events: list = []

    async def decide_when_asked() -> None:
        while True:
            for event in events:
                if event.type == "approval_required":
                    service.approvals.decide(event.run_id, approve, by="test")
            await asyncio.sleep(0.01)

    decider = asyncio.create_task(decide_when_asked())
    try:
        async for event in service.stream(message, thread_id, agent_graph=agent_graph):
            events.append(event)
    finally:
        decider.cancel()
    return events


def in_memory_checkpointer():
    """Return an opener of a fresh in-memory conversation memory (interrupt() needs one)."""
    from langgraph.checkpoint.memory import InMemorySaver

    saver = InMemorySaver()

    async def open_saver():
        return saver

    return open_saver


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def service_with_memory(request, make_service, tmp_path):
    """Build a service with conversation memory; keyword arguments go to AgentService. Each test runs
    with LangGraph's in-memory saver, and with the SQLite and Postgres savers the app uses
    (chat.components.checkpointer_for), so approvals and memory repair hold on every backend."""
    from chat.components import checkpointer_for
    from chat.config import Settings

    made: list[AgentService] = []
    if request.param == "memory":
        opener = None
    else:
        url = fresh_database(request.getfixturevalue("postgres_server")) if request.param == "postgres" else None
        opener = checkpointer_for(Settings(state_dir=tmp_path / "memory", database_url=url))

    def make(**kwargs: Any) -> AgentService:
        made.append(make_service(open_checkpointer=opener or in_memory_checkpointer(), **kwargs))
        return made[-1]

    yield make
    for service in made:  # the savers' connections and pools close with their services
        await service.aclose()


@pytest.fixture
def openai_service(knowledge_base, tickets):
    """Build a warm service on the real ChatOpenAI client at `base_url` (with memory)."""
    from chat.config import Settings
    from chat.models import build_chat_model

    def make(base_url: str, **settings: Any) -> AgentService:
        config = Settings.from_env({"OPENAI_BASE_URL": base_url, "OPENAI_MODEL": "scripted", **settings})
        model, name = build_chat_model(config)
        tools = build_tools(lambda _name: knowledge_base, tickets, top_k=config.rag_top_k)
        service = AgentService(lambda: Components(model, name, tools), in_memory_checkpointer(),
                               timeout_s=config.model_timeout_s)
        service.warm_up()
        return service

    return make


async def cancel_like_a_web_server(service: AgentService, message: str, thread_id: str) -> None:
    """Start a run in an anyio task group and cancel the group at its first token, as Starlette and
    Gradio cancel a handler (anyio re-cancels every await in the scope)."""
    import anyio

    first_token = anyio.Event()

    async def handler() -> None:
        async for event in service.stream(message, thread_id):
            if event.type == "token":
                first_token.set()

    async with anyio.create_task_group() as group:
        group.start_soon(handler)
        await first_token.wait()
        group.cancel_scope.cancel()


@pytest.fixture
def server():
    """A scripted OpenAI-compatible server on a free port (bench/scripted_openai.py)."""
    from bench.scripted_openai import Script, ScriptedServer

    with ScriptedServer(Script(reply="Faulty items can be returned within 45 days.")) as running:
        yield running


async def run_message(service: AgentService, message: str, thread_id: str = "t", agent_graph: str | None = None) -> list:
    """Run one message to its end (with the graph named, else the default); return its events."""
    return [event async for event in service.stream(message, thread_id, agent_graph=agent_graph)]
