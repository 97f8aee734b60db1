"""Threads, runs and every event of every run, in SQLite; each read or change names its caller.

Writing goes through `traces.writer.EventWriter`, off the streaming path. `flush(run_id)`
waits until everything recorded before it is committed and says whether it all was: the
service awaits it before telling a reader that a run has ended.

Access is decided by the caller passed to each call (`auth.callers.Caller`): a caller sees
only the threads it owns, and their runs; an admin sees everything. A thread that is not
yours reads exactly like one that does not exist.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auth.callers import Caller
from chat.events import Event, event_from_dict
from chat.text import clean_text, clean_value
from traces.db import PostgresDatabase, SqliteDatabase

if TYPE_CHECKING:
    from traces.db import Database
    from traces.otlp import ImportedRun
from traces.writer import EventWriter, make_title

UNFINISHED = ("queued", "in_progress", "awaiting_approval")
log = logging.getLogger("glassbox.traces")
__all__ = ["TraceStore", "make_title", "stored_time", "utc_now"]


def utc_now() -> str:
    """Return the current time as an ISO 8601 UTC string."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def stored_time(text: str) -> str:
    """Return an ISO 8601 time (UTC unless it says otherwise) as the store writes created_at (utc_now),
    so the two compare as text; raise ValueError if it is not one."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


class TraceStore:
    """Persist the event stream; read threads, runs and events back for a caller."""

    def __init__(self, database: Path | str | Database, now: Callable[[], str] = utc_now, *,
                 max_queue: int = 20_000, replica_timeout_s: float = 30.0) -> None:
        """Open the store in `database` (a SQLite file's path, a Postgres URL, or a traces.db backend), migrated."""
        if isinstance(database, Path):
            database = SqliteDatabase(database)
        elif isinstance(database, str):
            database = PostgresDatabase(database)
        self.database = database
        self.path = getattr(self.database, "path", None)  # the SQLite file, if it is one
        self.now = now
        # Our own writers (the event writer, thread claims, renames) take turns on this lock: left
        # to SQLite's busy handler, which sleeps and retries, 25 concurrent claims beside the event
        # writer waited up to ~0.35 s for the file (bench/load.py).
        self._write_lock = threading.Lock()
        self.replica = uuid.uuid4().hex[:16]  # this process, among those sharing a database (traces/replicas.py)
        self.replica_timeout_s = replica_timeout_s
        # One process per SQLite file (the state dir's lock): whatever it left unfinished is over.
        # A shared database: only what replicas silent for replica_timeout_s left.
        alive_since = time_before(now(), replica_timeout_s) if self.database.shared else None
        try:
            self.schema_was, self.interrupted = self.database.open(
                lambda db: _mark_interrupted(db, self.now(), alive_since))
        except BaseException:  # refused (a newer schema) or unreachable: let the connections go
            self.database.close()
            raise
        self.writer = EventWriter(self.connect, now, max_queue=max_queue, write_lock=self._write_lock,
                                  replica=self.replica)

    # --- writing -----------------------------------------------------------------------------

    def record(self, event: Event) -> None:
        """Queue an event for writing; returns at once unless the queue is full."""
        self.writer.record(event)

    def flush(self, run_id: str | None = None, timeout: float = 10.0) -> bool:
        """Wait until every event recorded so far is committed; return whether all were, in time."""
        return self.writer.flush(run_id, timeout)

    def close(self) -> None:
        """Write what is queued, then stop the writer and let the database go."""
        self.writer.close()
        self.database.close()

    def claim_thread(self, caller: Caller, thread_id: str, message: str, knowledge_base: str) -> str | None:
        """Create the thread for `caller`, answering from `knowledge_base`, if it is new.

        Return the knowledge base the thread answers from, or None if the caller may not post to it.
        """
        now = self.now()
        with self.writing() as db:
            db.execute(
                "INSERT OR IGNORE INTO threads (id, title, created_at, updated_at, owner, knowledge_base) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (thread_id, make_title(message), now, now, caller.owner, knowledge_base),
            )
            row = db.execute("SELECT owner, deleted, knowledge_base FROM threads WHERE id = ?", (thread_id,)).fetchone()
            if row["knowledge_base"] is None:  # a conversation from before knowledge bases had names
                db.execute("UPDATE threads SET knowledge_base = ? WHERE id = ?", (knowledge_base, thread_id))
        if row["deleted"] or not caller.may_see(row["owner"]):
            return None
        return row["knowledge_base"] or knowledge_base

    # --- reading and managing ----------------------------------------------------------------

    def list_threads(self, caller: Caller, limit: int = 50, offset: int = 0, *,
                     only: list[str] | None = None, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Return the caller's threads (an admin's: all), most recently active first; `only` these ids."""
        among = "" if only is None else f"AND id IN ({','.join('?' * len(only))})"
        with self.reading() as db:
            rows = db.execute(
                f"SELECT * FROM threads WHERE (? OR owner = ?) AND (? OR deleted = 0) AND eval_id IS NULL {among} "
                "ORDER BY updated_at DESC, rowid DESC LIMIT ? OFFSET ?",
                (caller.is_admin, caller.owner, include_deleted, *(only or []), limit, offset),
            ).fetchall()
        return [_thread(row) for row in rows]

    def get_thread(self, caller: Caller, thread_id: str) -> dict[str, Any] | None:
        """Return a thread the caller may see and that is not deleted, or None."""
        with self.reading() as db:
            row = db.execute("SELECT * FROM threads WHERE id = ? AND deleted = 0 AND (? OR owner = ?)",
                             (thread_id, caller.is_admin, caller.owner)).fetchone()
        return _thread(row) if row else None

    def thread_messages(self, caller: Caller, thread_id: str) -> list[dict[str, Any]]:
        """Return the thread's conversation: each run's message and (possibly partial) answer."""
        messages = []
        for run in reversed(self.list_runs(caller, thread_id, limit=10_000)):
            messages.append({"role": "user", "content": run["message"], "run_id": run["id"]})
            if run["answer"] or run["status"] not in UNFINISHED:
                messages.append({"role": "assistant", "content": run["answer"], "run_id": run["id"],
                                 "status": run["status"], "error": run["error"]})
        return messages

    def rename_thread(self, caller: Caller, thread_id: str, title: str) -> bool:
        """Give a thread a new title; return whether the caller has such a thread."""
        with self.writing() as db:
            cursor = db.execute("UPDATE threads SET title = ? WHERE id = ? AND deleted = 0 AND (? OR owner = ?)",
                                (make_title(title), thread_id, caller.is_admin, caller.owner))
        return cursor.rowcount > 0

    def delete_thread(self, caller: Caller, thread_id: str, hard: bool = False) -> bool:
        """Hide a thread (soft) or remove it with its runs and events (hard); return whether it existed."""
        if self.get_thread(caller, thread_id) is None:
            return False
        self.flush()  # so no queued event of this thread lands after a hard delete
        with self.writing() as db:
            if not hard:
                return db.execute("UPDATE threads SET deleted = 1 WHERE id = ? AND deleted = 0",
                                  (thread_id,)).rowcount > 0
            return _remove_threads(db, [thread_id]) > 0

    def list_runs(self, caller: Caller, thread_id: str | None = None, limit: int = 50,
                  *, grounding: str | None = None) -> list[dict[str, Any]]:
        """Return the caller's runs, newest first, of one thread or of all; with `grounding`, only
        runs whose answer got that verdict."""
        return self.find_runs(caller, RunQuery(thread_id=thread_id, grounding=grounding, limit=limit))

    def find_runs(self, caller: Caller, query: RunQuery) -> list[dict[str, Any]]:
        """Return the caller's runs that match `query`, in its order, one page of it."""
        where, args = query.where()
        with self.reading() as db:
            runs = [_run(row) for row in db.execute(
                "SELECT runs.* FROM runs LEFT JOIN threads ON threads.id = runs.thread_id "
                f"WHERE (? OR threads.owner = ?){where} ORDER BY {query.order_by()} LIMIT ? OFFSET ?",
                (caller.is_admin, caller.owner, *args, query.limit, query.offset)).fetchall()]
            # Notes are counted for the page only: in the query above, the runs skipped by OFFSET were
            # counted too (100,000 counts to show 25, bench/runs_list.py).
            counts: dict[str, int] = {}
            if runs:
                marks = ",".join("?" * len(runs))
                counts = dict(db.execute(f"SELECT run_id, count(*) FROM notes WHERE run_id IN ({marks}) "
                                         "GROUP BY run_id", [run["id"] for run in runs]).fetchall())
        return [{**run, "notes": counts.get(run["id"], 0)} for run in runs]

    def models(self, caller: Caller, limit: int = 50) -> list[str]:
        """Return the models that answered the caller's runs, by name (the Traces tab's model filter)."""
        with self.reading() as db:
            return [row[0] for row in db.execute(
                "SELECT DISTINCT runs.model FROM runs LEFT JOIN threads ON threads.id = runs.thread_id "
                "WHERE (? OR threads.owner = ?) AND runs.model IS NOT NULL AND runs.model != '' "
                "ORDER BY runs.model LIMIT ?", (caller.is_admin, caller.owner, limit)).fetchall()]

    # --- reviewer notes -----------------------------------------------------------------------

    def add_note(self, caller: Caller, run_id: str, reviewer: str, label: str, text: str,
                 span_id: str | None = None, event_seq: int | None = None) -> dict[str, Any] | None:
        """Attach a note to a run the caller may see (or to one of its spans or events); None if it can't."""
        if self.get_run(caller, run_id) is None:
            return None
        note = (run_id, span_id, event_seq, clean_text(reviewer)[:80], label, clean_text(text)[:4000], caller.owner,
                self.now())
        with self.writing() as db:
            row = db.execute("INSERT INTO notes (run_id, span_id, event_seq, reviewer, label, text, owner, "
                             "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *", note).fetchone()
        return dict(row)

    def notes(self, caller: Caller, run_id: str) -> list[dict[str, Any]] | None:
        """Return a run's notes, oldest first, if the caller may see the run; else None."""
        if self.get_run(caller, run_id) is None:
            return None
        with self.reading() as db:
            return [dict(row) for row in db.execute("SELECT * FROM notes WHERE run_id = ? ORDER BY id", (run_id,))]

    def import_runs(self, caller: Caller, runs: list[ImportedRun], origin: str) -> tuple[list[str], list[str]]:
        """Store whole runs from another Glassbox for `caller`, all in one transaction of its own (a
        failure writes none of them and touches no other run); return (imported, already there).

        A run whose id is stored already is skipped: importing a file twice adds nothing. A thread id
        another owner has is given a new one, so an import never joins someone else's conversation.
        """
        imported, already = [], []
        with self.writing() as db:
            for run in runs:
                events = run.events
                run_id, thread_id = events[0].run_id, events[0].thread_id
                if db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                    already.append(run_id)
                    continue
                owner = db.execute("SELECT owner FROM threads WHERE id = ?", (thread_id,)).fetchone()
                if owner is not None and owner[0] != caller.owner:
                    thread_id = hashlib.sha256(f"import/{caller.owner}/{thread_id}".encode()).hexdigest()[:32]
                    events = [dataclasses.replace(e, thread_id=thread_id) for e in events]
                new_thread = db.execute("SELECT 1 FROM threads WHERE id = ?", (thread_id,)).fetchone() is None
                self.writer.write_run(db, events)
                if new_thread:
                    db.execute("UPDATE threads SET owner = ? WHERE id = ?", (caller.owner, thread_id))
                began, ended = (_iso(events[0].ts), _iso(events[-1].ts))
                db.execute("UPDATE runs SET origin = ?, created_at = coalesce(?, created_at), "
                           "updated_at = coalesce(?, updated_at) WHERE id = ?", (origin, began, ended, run_id))
                for note in run.notes:
                    db.execute("INSERT INTO notes (run_id, span_id, event_seq, reviewer, label, text, owner, created_at) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               (run_id, note["span_id"], note["event_seq"], note["reviewer"], note["label"], note["text"],
                                caller.owner, note["created_at"] or self.now()))
                imported.append(run_id)
        return imported, already

    def get_run(self, caller: Caller, run_id: str) -> dict[str, Any] | None:
        """Return a run the caller may see, with its ordered events, or None."""
        with self.reading() as db:
            row = db.execute(
                "SELECT runs.* FROM runs LEFT JOIN threads ON threads.id = runs.thread_id "
                "WHERE runs.id = ? AND (? OR threads.owner = ?)", (run_id, caller.is_admin, caller.owner)).fetchone()
            if row is None:
                return None
            payloads = db.execute("SELECT seq, payload FROM events WHERE run_id = ? ORDER BY seq", (run_id,))
            events = [_payload(seq, payload) for seq, payload in payloads.fetchall()]
        return {**_run(row), "events": events}

    def run_events(self, caller: Caller, run_id: str) -> list[Event]:
        """Return a run's events as event objects, in order; unreadable ones are left out."""
        run = self.get_run(caller, run_id)
        events = []
        for payload in run["events"] if run else []:
            try:
                events.append(event_from_dict(payload))
            except Exception:  # an event from another version, or damaged: skip it, keep the rest
                log.warning("skipped an unreadable stored event", extra={"run_id": run_id})
        return events

    # --- retention ---------------------------------------------------------------------------

    def prune(self, max_age_days: float | None, max_runs: int | None) -> list[str]:
        """Remove finished runs older than `max_age_days` or beyond the newest `max_runs`,
        then threads left without runs, and give the space back; return the removed thread ids."""
        if not max_age_days and not max_runs:
            return []
        finished = f"status NOT IN {UNFINISHED}"
        self.flush()
        with self.writing() as db:
            old: set[str] = set()
            if max_age_days:
                cutoff = (datetime.now(UTC) - timedelta(days=max_age_days)).isoformat(timespec="milliseconds")
                old |= {r[0] for r in db.execute(f"SELECT id FROM runs WHERE {finished} AND created_at < ?", (cutoff,))}
            if max_runs:
                old |= {r[0] for r in db.execute(
                    f"SELECT id FROM runs WHERE {finished} AND id NOT IN "
                    "(SELECT id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?)", (max_runs,))}
            for chunk in _chunks(sorted(old), 500):
                marks = ",".join("?" * len(chunk))
                db.execute(f"DELETE FROM events WHERE run_id IN ({marks})", chunk)
                db.execute(f"DELETE FROM notes WHERE run_id IN ({marks})", chunk)
                db.execute(f"DELETE FROM runs WHERE id IN ({marks})", chunk)
            empty = [r[0] for r in db.execute(
                "SELECT id FROM threads WHERE NOT EXISTS (SELECT 1 FROM runs WHERE runs.thread_id = threads.id)")]
            _remove_threads(db, empty)
        self.database.reclaim_space()
        if old:
            log.info("retention removed old runs", extra={"runs": len(old), "threads": len(empty)})
        return empty

    # --- connections -----------------------------------------------------------------------

    def connect(self) -> Any:
        """A new connection to the store's database (the caller closes it)."""
        return self.database.connect()

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A connection to read with (evals/store.py shares the file)."""
        with closing(self.connect()) as db:
            yield db

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """A transaction, taking turns with the event writer."""
        with self._write_lock, closing(self.connect()) as db, db:
            yield db


def _thread(row: sqlite3.Row) -> dict[str, Any]:
    return {**dict(row), "deleted": bool(row["deleted"])}


RUN_ORDERS = {"newest": "runs.created_at DESC, runs.rowid DESC", "oldest": "runs.created_at, runs.rowid",
              "slowest_ttft": "runs.ttft_s IS NULL, runs.ttft_s DESC, runs.rowid DESC",
              "slowest": "runs.latency_s IS NULL, runs.latency_s DESC, runs.rowid DESC"}


@dataclass(frozen=True)
class RunQuery:
    """Which runs to list, in what order, and which page: every filter optional."""

    thread_id: str | None = None
    status: str | None = None
    grounding: str | None = None
    q: str | None = None  # text in the message or the answer
    note: str | None = None  # runs with a note of this label (pass, fail, flag), or "any"
    model: str | None = None
    knowledge_base: str | None = None
    min_ttft_s: float | None = None
    min_latency_s: float | None = None
    since: str | None = None  # ISO 8601, compared with created_at
    until: str | None = None
    order: str = "newest"  # a key of RUN_ORDERS
    limit: int = 50
    offset: int = 0

    def where(self) -> tuple[str, list[Any]]:
        """Return the SQL conditions (each a bound parameter, never text of the caller's) and their values."""
        conditions: list[str] = []
        args: list[Any] = []
        for column, value in (("runs.thread_id", self.thread_id), ("runs.status", self.status),
                              ("runs.grounding", self.grounding), ("runs.model", self.model),
                              ("runs.knowledge_base", self.knowledge_base)):
            if value is not None:
                conditions.append(f"{column} = ?")
                args.append(value)
        for column, bound, value in (("runs.ttft_s", ">=", self.min_ttft_s), ("runs.latency_s", ">=", self.min_latency_s),
                                     ("runs.created_at", ">=", self.since), ("runs.created_at", "<=", self.until)):
            if value is not None:
                conditions.append(f"{column} {bound} ?")
                args.append(value)
        if self.note:
            conditions.append("EXISTS (SELECT 1 FROM notes WHERE notes.run_id = runs.id"
                              + ("" if self.note == "any" else " AND notes.label = ?") + ")")
            args += [] if self.note == "any" else [self.note]
        if self.q:
            pattern = "%" + self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append("(runs.message LIKE ? ESCAPE '\\' OR runs.answer LIKE ? ESCAPE '\\')")
            args += [pattern, pattern]
        # Cleaned as stored text was (a lone surrogate cannot be encoded, and would fail the query).
        return "".join(f" AND {condition}" for condition in conditions), clean_value(args)

    def order_by(self) -> str:
        return RUN_ORDERS.get(self.order, RUN_ORDERS["newest"])


def time_before(now: str, seconds: float) -> str:
    """The time `seconds` before `now`, as the store writes times."""
    return (datetime.fromisoformat(now) - timedelta(seconds=seconds)).astimezone(UTC).isoformat(timespec="milliseconds")


def _iso(ts: int) -> str | None:
    """A Unix-nanosecond time as the store writes times, or None for none."""
    return datetime.fromtimestamp(ts / 1e9, UTC).isoformat(timespec="milliseconds") if ts else None


def _run(row: sqlite3.Row) -> dict[str, Any]:
    """A run row as the API shows it: its TTFT breakdown as an object (null before it was kept)."""
    run = dict(row)
    try:
        run["ttft_breakdown"] = json.loads(run["ttft_breakdown"]) if run.get("ttft_breakdown") else None
    except ValueError:
        run["ttft_breakdown"] = None
    return run


def _payload(seq: int, payload: str) -> dict[str, Any]:
    """Return a stored event; text an older version stored unclean comes back clean."""
    try:
        return clean_value(json.loads(payload))
    except ValueError:
        return {"type": "unreadable", "seq": seq}


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _remove_threads(db: sqlite3.Connection, thread_ids: list[str]) -> int:
    removed = 0
    for chunk in _chunks(thread_ids, 500):
        marks = ",".join("?" * len(chunk))
        db.execute(f"DELETE FROM events WHERE run_id IN (SELECT id FROM runs WHERE thread_id IN ({marks}))", chunk)
        db.execute(f"DELETE FROM notes WHERE run_id IN (SELECT id FROM runs WHERE thread_id IN ({marks}))", chunk)
        db.execute(f"DELETE FROM runs WHERE thread_id IN ({marks})", chunk)
        removed += db.execute(f"DELETE FROM threads WHERE id IN ({marks})", chunk).rowcount
    return removed


def _mark_interrupted(db: sqlite3.Connection, now: str, alive_since: str | None = None) -> int:
    """Mark runs a crash or restart left unfinished as interrupted, keeping their partial answers.

    With `alive_since` (a shared database: traces/replicas.py), only the runs of replicas not seen
    since then: another replica's live runs are left alone.
    """
    return interrupt_runs(db, unfinished_runs(db, alive_since), now)


def unfinished_runs(db: sqlite3.Connection, alive_since: str | None = None) -> list[str]:
    """The ids of unfinished runs: all of them, or with `alive_since`, those of replicas not seen since."""
    if alive_since is None:
        return [row[0] for row in db.execute(f"SELECT id FROM runs WHERE status IN {UNFINISHED}").fetchall()]
    return [row[0] for row in db.execute(
        f"SELECT id FROM runs WHERE status IN {UNFINISHED} AND (replica IS NULL OR replica NOT IN "
        "(SELECT id FROM replicas WHERE seen_at > ?))", (alive_since,)).fetchall()]


def interrupt_runs(db: sqlite3.Connection, run_ids: list[str], now: str) -> int:
    """Mark these unfinished runs interrupted, each keeping the answer its stored tokens make.

    Each run on its own: stored data that cannot be read costs that run's answer, never start-up.
    """
    marked = 0
    for run_id in run_ids:
        try:
            tokens = db.execute("SELECT payload FROM events WHERE run_id = ? AND type = 'token' ORDER BY seq",
                                (run_id,)).fetchall()
            answer = clean_text("".join(_payload(0, p[0]).get("text", "") for p in tokens).strip())
        except Exception:
            log.exception("could not rebuild an interrupted run's answer", extra={"run_id": run_id})
            answer = ""
        try:
            with db:
                marked += db.execute(f"UPDATE runs SET status = 'interrupted', answer = ?, updated_at = ? "
                                     f"WHERE id = ? AND status IN {UNFINISHED}", (answer, now, run_id)).rowcount
        except Exception:  # this run's row, on either backend: the others are still marked
            log.exception("could not mark a run interrupted", extra={"run_id": run_id})
    return marked
