"""The trace store's one writer: queued events committed in batches, off the streaming path.

`record(event)` only puts the event on a bounded queue; one thread commits what has queued up
in a single transaction, so a burst of tokens costs one commit, not one per token. If a batch
fails, each of its events is retried alone: a bad row costs only itself, and every other run's
events in that batch are still stored. Nothing stops the writer: any exception is logged, the
events it cost are counted against their runs, and the next batch is written as usual.

Back-pressure: the queue holds `max_queue` events. If the disk falls that far behind, `record`
waits (blocking the streaming loop, which slows every stream down to the disk's pace) for up
to `put_timeout_s`; an event that still does not fit is dropped, logged and counted.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from chat.events import (
    ApprovalDecided,
    ApprovalRequired,
    ErrorOccurred,
    Event,
    RunEnded,
    RunQueued,
    RunStarted,
)
from chat.text import clean_text

log = logging.getLogger("glassbox.traces")
BATCH_MAX = 500
TITLE_CHARS = 60


def make_title(message: str) -> str:
    """Return a thread title from its first message."""
    text = " ".join(clean_text(message).split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


@dataclass
class _Flush:
    """A marker in the queue: set once everything queued before it was handled."""

    run_id: str | None
    lost_before: int
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False


class EventWriter:
    """Commit events to SQLite from one background thread; never stop, never lose silently."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], now: Callable[[], str],
                 *, max_queue: int = 20_000, put_timeout_s: float = 5.0,
                 write_lock: threading.Lock | None = None, replica: str | None = None) -> None:
        self._connect, self.now, self.put_timeout_s = connect, now, put_timeout_s
        self.replica = replica  # the process that runs what it writes (traces/replicas.py)
        self._write_lock = write_lock or threading.Lock()  # shared with the store's other writers
        self._queue: queue.Queue[Event | _Flush | None] = queue.Queue(maxsize=max_queue)
        self._seq: dict[str, int] = {}
        self._lock = threading.Lock()
        self.lost = 0  # events recorded but not stored, since the store opened
        self._lost_runs: dict[str, int] = {}
        self._thread = threading.Thread(target=self._write_forever, name="trace-writer", daemon=True)
        self._thread.start()

    def record(self, event: Event) -> None:
        """Queue an event for writing; waits only when the queue is full (back-pressure)."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            log.warning("trace queue full: streaming waits for the disk", extra={"run_id": event.run_id})
            try:
                self._queue.put(event, timeout=self.put_timeout_s)
            except queue.Full:
                log.error("trace queue still full: an event was dropped", extra={"run_id": event.run_id})
                self._count_lost([event])

    def flush(self, run_id: str | None = None, timeout: float = 10.0) -> bool:
        """Wait until everything recorded so far is handled; return whether it was stored, in time.

        Without `run_id`: whether every event pending at the call was stored. With it: whether
        that run has lost no event at all.
        """
        with self._lock:
            marker = _Flush(run_id, self.lost)
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout) and marker.ok

    def lost_events(self, run_id: str) -> int:
        """Return how many of a run's events could not be stored."""
        with self._lock:
            return self._lost_runs.get(run_id, 0)

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _write_forever(self) -> None:
        db = self._connect()
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            events = [item for item in batch if isinstance(item, Event)]
            try:
                self._commit(db, events)
            except Exception:  # the connection itself broke: count the batch, start afresh
                log.exception("trace writer could not write a batch of %d events", len(events))
                self._count_lost(events)
                db = self._reconnect(db)
            for item in batch:
                if isinstance(item, _Flush):
                    with self._lock:  # for one run: did it lose anything; else: did anything pending
                        item.ok = (item.run_id not in self._lost_runs if item.run_id
                                   else self.lost == item.lost_before)
                    item.done.set()
            if any(item is None for item in batch):
                db.close()
                return

    def _commit(self, db: sqlite3.Connection, events: list[Event]) -> None:
        seq = dict(self._seq)
        try:
            with self._write_lock, db:
                for event in events:
                    self._write(db, event, seq)
            self._seq = seq
            return
        except Exception:
            log.warning("a batch of %d events failed; writing them one by one", len(events), exc_info=True)
        lost: list[Event] = []
        for event in events:  # one transaction each: a bad row costs only itself
            trial = dict(self._seq)
            try:
                with self._write_lock, db:
                    self._write(db, event, trial)
                self._seq = trial
            except Exception:
                log.exception("could not store an event", extra={"run_id": event.run_id, "type": event.type})
                lost.append(event)
        self._count_lost(lost)
        self._note_lost(db, lost)

    def write_run(self, db: sqlite3.Connection, events: list[Event]) -> None:
        """Write one whole run's rows in the caller's transaction (an import), as the queue would."""
        seq: dict[str, int] = {}
        for event in events:
            self._write(db, event, seq)

    def _write(self, db: sqlite3.Connection, event: Event, seq: dict[str, int]) -> None:
        now = self.now()
        if isinstance(event, RunQueued):
            db.execute(
                "INSERT OR IGNORE INTO threads (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (event.thread_id, make_title(event.message), now, now),
            )
            db.execute("UPDATE threads SET updated_at = ? WHERE id = ?", (now, event.thread_id))
            db.execute(
                "INSERT INTO runs (id, thread_id, status, message, created_at, updated_at, replica) "
                "VALUES (?, ?, 'queued', ?, ?, ?, ?)",
                (event.run_id, event.thread_id, clean_text(event.message), now, now, self.replica),
            )
        elif isinstance(event, RunStarted):
            db.execute("UPDATE runs SET status = 'in_progress', model = ?, knowledge_base = ?, "
                       "knowledge_fingerprint = ?, updated_at = ? WHERE id = ?",
                       (clean_text(event.model), event.knowledge_base or None, event.knowledge_fingerprint or None,
                        now, event.run_id))
        elif isinstance(event, (ApprovalRequired, ApprovalDecided)):
            status = "awaiting_approval" if isinstance(event, ApprovalRequired) else "in_progress"
            db.execute("UPDATE runs SET status = ?, updated_at = ? WHERE id = ?", (status, now, event.run_id))
        elif isinstance(event, ErrorOccurred):
            db.execute("UPDATE runs SET error = ? WHERE id = ?",
                       (clean_text(f"{event.kind}: {event.message}"), event.run_id))
        elif isinstance(event, RunEnded):
            db.execute(
                "UPDATE runs SET status = ?, answer = ?, ttft_s = ?, latency_s = ?, input_tokens = ?, "
                "output_tokens = ?, grounding = ?, ttft_breakdown = ?, tool_calls = ?, updated_at = ? WHERE id = ?",
                (event.status, clean_text(event.answer), event.ttft_s, event.latency_s, event.input_tokens,
                 event.output_tokens, event.grounding, json.dumps(event.ttft_breakdown) if event.ttft_breakdown else None,
                 event.tool_calls, now, event.run_id),
            )
            db.execute("UPDATE threads SET updated_at = ? WHERE id = ?", (now, event.thread_id))
        number = seq.get(event.run_id, 0)
        # ensure_ascii: whatever a payload holds, its JSON is plain ASCII and always storable.
        db.execute(
            "INSERT INTO events (run_id, seq, type, at, ts, payload) VALUES (?, ?, ?, ?, ?, ?)",
            (event.run_id, number, event.type, event.at, event.ts or None, json.dumps(event.to_dict(), default=str)),
        )
        seq[event.run_id] = number + 1
        if isinstance(event, RunEnded):
            seq.pop(event.run_id, None)

    def _count_lost(self, events: list[Event]) -> None:
        with self._lock:
            self.lost += len(events)
            for event in events:
                self._lost_runs[event.run_id] = self._lost_runs.get(event.run_id, 0) + 1

    def _note_lost(self, db: sqlite3.Connection, lost: list[Event]) -> None:
        """Say on each run how many of its events could not be stored (best effort)."""
        counts: dict[str, int] = {}
        for event in lost:
            counts[event.run_id] = counts.get(event.run_id, 0) + 1
        try:
            with self._write_lock, db:
                db.executemany("UPDATE runs SET dropped_events = dropped_events + ? WHERE id = ?",
                               [(count, run_id) for run_id, count in counts.items()])
        except Exception:
            log.exception("could not note lost events on their runs")

    def _reconnect(self, db: sqlite3.Connection) -> sqlite3.Connection:
        try:
            db.close()
            return self._connect()
        except Exception:  # keep the old one and try again with the next batch
            log.exception("trace writer could not reconnect")
            return db
