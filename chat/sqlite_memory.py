"""Conversation memory in SQLite: LangGraph's own saver, each async call one hop to a worker thread.

LangGraph's AsyncSqliteSaver runs every statement through aiosqlite's thread and holds one lock
across all of a read's steps (cursor, execute, fetch, close), each a round trip through the
event loop. Under 25 streams at once the loop is busy with tokens, so each step waited its turn
and every new run's memory read queued behind the others': the 25th question reached retrieval
0.6 s after the first (bench/load.py, README "Load"). Here LangGraph's synchronous SqliteSaver
does the same work, in the same tables, in one hop per call; its lock is held for the
statements alone.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple
from langgraph.checkpoint.sqlite import SqliteSaver


class ThreadedSqliteSaver(SqliteSaver):
    """SqliteSaver whose async methods run its synchronous ones in a worker thread."""

    @classmethod
    def open(cls, path: Path) -> ThreadedSqliteSaver:
        """Open (creating if needed) the memory at `path`, usable from any thread."""
        saver = cls(sqlite3.connect(path, check_same_thread=False))  # every use holds saver.lock
        saver.setup()
        return saver

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None) -> AsyncIterator[CheckpointTuple]:
        found = await asyncio.to_thread(lambda: list(self.list(config, filter=filter, before=before, limit=limit)))
        for checkpoint in found:
            yield checkpoint

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def aget_delta_channel_history(self, *, config: RunnableConfig,
                                         channels: Sequence[str]) -> Mapping[str, Any]:
        return await asyncio.to_thread(lambda: self.get_delta_channel_history(config=config, channels=channels))

    def close(self) -> None:
        """Close the connection (after the last run)."""
        with self.lock:
            self.conn.close()
