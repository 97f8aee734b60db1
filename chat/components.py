"""What a warm agent is made of, and how to load it: the slow part of start-up."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver

from chat.config import Settings


@dataclass
class Components:
    """The loaded parts the agent graph is built from."""

    model: BaseChatModel
    model_name: str
    tools: list[BaseTool]
    knowledge_chunks: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # load step -> seconds


def load_components(settings: Settings) -> Components:
    """Load embeddings, the knowledge base (ingesting KNOWLEDGE_DIR), tools and the chat model."""
    from chat.models import build_chat_model
    from chat.tickets import TicketStore
    from chat.tools import build_tools
    from rag.embeddings import embedding_function_for
    from rag.ingest import ingest_paths
    from rag.store import open_knowledge_base

    timings: dict[str, float] = {}
    with _timed(timings, "embeddings"):
        embed = embedding_function_for(settings)
        embed(["warm up"])  # load the embedding model now, not on the first question
    with _timed(timings, "knowledge_base"):
        knowledge_base = open_knowledge_base(settings.state_dir, embed)
        ingest_paths(knowledge_base, [settings.knowledge_dir], progress=False)
    with _timed(timings, "chat_model"):
        model, model_name = build_chat_model(settings)
    tickets = TicketStore(settings.state_dir / "tickets.sqlite3")
    tools = build_tools(knowledge_base, tickets, settings.rag_top_k)
    return Components(model, model_name, tools, knowledge_base.count(), timings)


def sqlite_checkpointer(settings: Settings) -> Callable[[], Awaitable[BaseCheckpointSaver]]:
    """Return an opener for the per-thread conversation memory, in SQLite under the state dir."""

    async def open_saver() -> BaseCheckpointSaver:
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        settings.state_dir.mkdir(parents=True, exist_ok=True)
        connection = await aiosqlite.connect(settings.state_dir / "checkpoints.sqlite3")
        saver = AsyncSqliteSaver(connection)
        await saver.setup()
        return saver

    return open_saver


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[step] = round(time.perf_counter() - started, 3)
