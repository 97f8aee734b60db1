"""What a warm agent is made of, and how to load it: the slow part of start-up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver

from chat.config import VERSION, Settings

if TYPE_CHECKING:
    from rag.bases import KnowledgeBases


@dataclass
class Components:
    """The loaded parts the agent graph is built from."""

    model: BaseChatModel
    model_name: str
    tools: list[BaseTool]
    knowledge_chunks: int = 0  # in the default knowledge base
    timings: dict[str, float] = field(default_factory=dict)  # load step -> seconds
    knowledge: KnowledgeBases | None = None  # every named knowledge base; None in tests without one
    default_knowledge_base: str = "sample"
    config: dict[str, Any] = field(default_factory=dict)  # what every run_start records (config_snapshot)
    history_messages: int = 6  # of the conversation, given to the model (HISTORY_MESSAGES)

    def identity(self, name: str | None) -> tuple[str, str, str]:
        """Return a knowledge base's resolved name, assistant name and instructions (chat.graph.Identity)."""
        resolved = name or self.default_knowledge_base
        if self.knowledge is None:
            return resolved, "a support assistant", ""
        manifest = self.knowledge.manifest(resolved)
        return resolved, manifest.assistant_name, manifest.instructions


def load_components(settings: Settings) -> Components:
    """Load embeddings, the knowledge bases (seeding `sample`, ingesting KNOWLEDGE_DIR), tools and the model."""
    from chat.models import build_chat_model
    from chat.tickets import TicketStore
    from chat.tools import build_tools
    from rag.bases import SAMPLE
    from rag.embeddings import embedding_function_for
    from rag.ingest import ingest_paths
    from rag.opening import adopt_eval_set, adopt_manifest, drop_copies, open_knowledge_bases

    timings: dict[str, float] = {}
    with _timed(timings, "embeddings"):
        embed = embedding_function_for(settings)
        embed(["warm up"])  # load the embedding model now, not on the first question
    with _timed(timings, "knowledge_base"):
        bases = open_knowledge_bases(settings.state_dir, embed, settings.sample_dir / "manifest.json",
                                     holder="Glassbox (python app.py)",
                                     url=f"http://{settings.server_name}:{settings.server_port}",
                                     chroma_url=settings.chroma_url)
        ingest_paths(bases.open(SAMPLE).kb, [settings.sample_dir], progress=False)
        if bases.legacy:  # an older version's single store: its copy of the sample shop goes
            drop_copies(bases, bases.legacy, SAMPLE)
        default = settings.knowledge_base
        if settings.knowledge_dir is not None:
            ingest_paths(bases.open(default).kb, [settings.knowledge_dir], progress=False)
            adopt_manifest(bases, default, settings.knowledge_dir)
            adopt_eval_set(bases, default, settings.knowledge_dir)
            bases.changed(default)
        bases.open(default)  # the default exists, if empty: a new Space starts with nothing of its own
    with _timed(timings, "chat_model"):
        model, model_name = build_chat_model(settings)
    tickets = TicketStore(settings.state_dir / "tickets.sqlite3")
    tools = build_tools(lambda name: bases.get(name or default), tickets, settings.rag_top_k,
                        min_score=settings.rag_min_score)
    return Components(model, model_name, tools, knowledge_chunks=bases.get(default).count(), timings=timings,
                      knowledge=bases, default_knowledge_base=default, config=config_snapshot(settings, model_name),
                      history_messages=settings.history_messages)


def config_snapshot(settings: Settings, model_name: str) -> dict[str, Any]:
    """What answers with these settings: recorded on every run_start, compared between runs."""
    from chat.prompts import prompt_template

    template, digest = prompt_template(settings.rag_top_k)
    return {
        "glassbox_version": VERSION,
        "provider": settings.llm_provider,
        "model": model_name,
        "parameters": {"temperature": 0.0 if settings.llm_provider == "local" else None,
                       "max_tokens": settings.max_answer_tokens, "top_k": settings.rag_top_k,
                       "min_score": settings.rag_min_score, "history_messages": settings.history_messages,
                       **({"given_numbers_only": settings.local_given_numbers_only,
                           "no_denied_yes": settings.local_no_denied_yes,
                           "fact_opening": settings.local_fact_opening}
                          if settings.llm_provider == "local" else {})},
        "prompt_template": template,
        "prompt_hash": digest,
        "embeddings": settings.embeddings_provider,
    }


def checkpointer_for(settings: Settings) -> Callable[[], Awaitable[BaseCheckpointSaver]]:
    """Return an opener for the per-thread conversation memory: in Postgres with DATABASE_URL, else SQLite."""
    return postgres_checkpointer(settings.database_url) if settings.database_url else sqlite_checkpointer(settings)


def postgres_checkpointer(url: str) -> Callable[[], Awaitable[BaseCheckpointSaver]]:
    """Return an opener for the conversation memory in Postgres: LangGraph's own saver, on a psycopg pool."""

    async def open_saver() -> BaseCheckpointSaver:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        # The settings LangGraph's saver documents: autocommit, no prepared statements (poolers), dict rows.
        pool = AsyncConnectionPool(url, max_size=10, open=False, name="glassbox-checkpoints",
                                   kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row})
        await pool.open()
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        await saver.setup()
        return saver

    return open_saver


def sqlite_checkpointer(settings: Settings) -> Callable[[], Awaitable[BaseCheckpointSaver]]:
    """Return an opener for the per-thread conversation memory, in SQLite under the state dir."""

    async def open_saver() -> BaseCheckpointSaver:
        from chat.sqlite_memory import ThreadedSqliteSaver

        settings.state_dir.mkdir(parents=True, exist_ok=True)
        return await asyncio.to_thread(ThreadedSqliteSaver.open, settings.state_dir / "checkpoints.sqlite3")

    return open_saver


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[step] = round(time.perf_counter() - started, 3)
