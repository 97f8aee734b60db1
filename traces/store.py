"""Threads, runs and every event of every run, in SQLite, written off the streaming path.

`record(event)` only puts the event on a queue; one writer thread commits what has queued
up in a single transaction, so a burst of tokens costs one commit, not one per token, and
the first token never waits for the disk. `flush()` waits until everything recorded before
it is committed: the service awaits it before telling a reader that a run has ended.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chat.events import ErrorOccurred, Event, RunEnded, RunQueued, RunStarted, event_from_dict
from traces.schema import migrate

UNFINISHED = ("queued", "in_progress")
TITLE_CHARS = 60
log = logging.getLogger("glassbox.traces")


def utc_now() -> str:
    """Return the current time as an ISO 8601 UTC string."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def make_title(message: str) -> str:
    """Return a thread title from its first message."""
    text = " ".join(message.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


class TraceStore:
    """Persist the event stream; read threads, runs and events back."""

    def __init__(self, path: Path, now: Callable[[], str] = utc_now) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.now = path, now
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            self.schema_was = migrate(db)
            self.interrupted = _mark_interrupted(db, now())
        self._queue: queue.SimpleQueue[Event | threading.Event | None] = queue.SimpleQueue()
        self._seq: dict[str, int] = {}
        self._writer = threading.Thread(target=self._write_forever, name="trace-writer", daemon=True)
        self._writer.start()

    # --- writing -----------------------------------------------------------------------------

    def record(self, event: Event) -> None:
        """Queue an event for writing; returns at once."""
        self._queue.put(event)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event recorded so far is committed; return whether it was in time."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        self._queue.put(None)
        self._writer.join(timeout=10)

    def _write_forever(self) -> None:
        with closing(self._connect()) as db:
            while True:
                batch = [self._queue.get()]
                while not self._queue.empty() and len(batch) < 500:
                    batch.append(self._queue.get())
                events = [item for item in batch if isinstance(item, Event)]
                try:
                    with db:
                        for event in events:
                            self._write(db, event)
                except sqlite3.Error:  # logged, and the writer keeps going for the next runs
                    log.exception("could not store %d events", len(events))
                for item in batch:
                    if isinstance(item, threading.Event):
                        item.set()
                if any(item is None for item in batch):
                    return

    def _write(self, db: sqlite3.Connection, event: Event) -> None:
        now = self.now()
        if isinstance(event, RunQueued):
            db.execute(
                "INSERT OR IGNORE INTO threads (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (event.thread_id, make_title(event.message), now, now),
            )
            db.execute("UPDATE threads SET updated_at = ? WHERE id = ?", (now, event.thread_id))
            db.execute(
                "INSERT INTO runs (id, thread_id, status, message, created_at, updated_at) "
                "VALUES (?, ?, 'queued', ?, ?, ?)",
                (event.run_id, event.thread_id, event.message, now, now),
            )
        elif isinstance(event, RunStarted):
            db.execute("UPDATE runs SET status = 'in_progress', model = ?, updated_at = ? WHERE id = ?",
                       (event.model, now, event.run_id))
        elif isinstance(event, ErrorOccurred):
            db.execute("UPDATE runs SET error = ? WHERE id = ?", (f"{event.kind}: {event.message}", event.run_id))
        elif isinstance(event, RunEnded):
            db.execute(
                "UPDATE runs SET status = ?, answer = ?, ttft_s = ?, latency_s = ?, input_tokens = ?, "
                "output_tokens = ?, updated_at = ? WHERE id = ?",
                (event.status, event.answer, event.ttft_s, event.latency_s, event.input_tokens,
                 event.output_tokens, now, event.run_id),
            )
            db.execute("UPDATE threads SET updated_at = ? WHERE id = ?", (now, event.thread_id))
        seq = self._seq.get(event.run_id, 0)
        self._seq[event.run_id] = seq + 1
        db.execute(
            "INSERT INTO events (run_id, seq, type, at, payload) VALUES (?, ?, ?, ?, ?)",
            (event.run_id, seq, event.type, event.at, json.dumps(event.to_dict(), default=str)),
        )
        if isinstance(event, RunEnded):
            self._seq.pop(event.run_id, None)

    # --- reading and managing ----------------------------------------------------------------

    def list_threads(self, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Return threads, most recently active first."""
        where = "" if include_deleted else "WHERE deleted = 0"
        with self._reading() as db:
            rows = db.execute(f"SELECT * FROM threads {where} ORDER BY updated_at DESC").fetchall()
        return [_thread(row) for row in rows]

    def get_thread(self, thread_id: str) -> dict[str, Any] | None:
        """Return a thread that is not deleted, or None."""
        with self._reading() as db:
            row = db.execute("SELECT * FROM threads WHERE id = ? AND deleted = 0", (thread_id,)).fetchone()
        return _thread(row) if row else None

    def thread_messages(self, thread_id: str) -> list[dict[str, Any]]:
        """Return the thread's conversation: each run's message and (possibly partial) answer."""
        messages = []
        for run in reversed(self.list_runs(thread_id, limit=10_000)):
            messages.append({"role": "user", "content": run["message"], "run_id": run["id"]})
            if run["answer"] or run["status"] not in UNFINISHED:
                messages.append({"role": "assistant", "content": run["answer"], "run_id": run["id"],
                                 "status": run["status"], "error": run["error"]})
        return messages

    def rename_thread(self, thread_id: str, title: str) -> bool:
        """Give a thread a new title; return whether it exists."""
        with self._writing() as db:
            cursor = db.execute("UPDATE threads SET title = ? WHERE id = ? AND deleted = 0",
                                (make_title(title), thread_id))
        return cursor.rowcount > 0

    def delete_thread(self, thread_id: str, hard: bool = False) -> bool:
        """Hide a thread (soft) or remove it with its runs and events (hard); return whether it existed."""
        self.flush()  # so no queued event of this thread lands after a hard delete
        with self._writing() as db:
            if not hard:
                return db.execute("UPDATE threads SET deleted = 1 WHERE id = ? AND deleted = 0",
                                  (thread_id,)).rowcount > 0
            db.execute("DELETE FROM events WHERE run_id IN (SELECT id FROM runs WHERE thread_id = ?)", (thread_id,))
            db.execute("DELETE FROM runs WHERE thread_id = ?", (thread_id,))
            return db.execute("DELETE FROM threads WHERE id = ?", (thread_id,)).rowcount > 0

    def list_runs(self, thread_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Return runs, newest first, of one thread or of all."""
        with self._reading() as db:
            if thread_id is None:
                rows = db.execute("SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))
            else:
                rows = db.execute("SELECT * FROM runs WHERE thread_id = ? ORDER BY created_at DESC, rowid DESC "
                                  "LIMIT ?", (thread_id, limit))
            return [dict(row) for row in rows.fetchall()]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """Return a run with its ordered events, or None."""
        with self._reading() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            payloads = db.execute("SELECT payload FROM events WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
        return {**dict(row), "events": [json.loads(p[0]) for p in payloads]}

    def run_events(self, run_id: str) -> list[Event]:
        """Return a run's events as event objects, in order."""
        run = self.get_run(run_id)
        return [event_from_dict(payload) for payload in run["events"]] if run else []

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        db.row_factory = sqlite3.Row
        return db

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with closing(self._connect()) as db:
            yield db

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with closing(self._connect()) as db, db:
            yield db


def _thread(row: sqlite3.Row) -> dict[str, Any]:
    return {**dict(row), "deleted": bool(row["deleted"])}


def _mark_interrupted(db: sqlite3.Connection, now: str) -> int:
    """Mark runs a crash or restart left unfinished as interrupted, keeping their partial answers."""
    unfinished = db.execute(f"SELECT id FROM runs WHERE status IN {UNFINISHED}").fetchall()
    with db:
        for (run_id,) in unfinished:
            tokens = db.execute("SELECT payload FROM events WHERE run_id = ? AND type = 'token' ORDER BY seq",
                                (run_id,)).fetchall()
            answer = "".join(json.loads(p[0])["text"] for p in tokens).strip()
            db.execute("UPDATE runs SET status = 'interrupted', answer = ?, updated_at = ? WHERE id = ?",
                       (answer, now, run_id))
    return len(unfinished)
