"""Evaluations in the trace store's SQLite file: the set, its verdicts, and links to the runs.

Each question is asked in a thread of its own, made here with the evaluation's id so the chat's
conversation list leaves it out; its run is an ordinary run (Traces tab, export, replay).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from auth.callers import Caller
from evals.sets import Question
from traces.store import TraceStore, make_title, time_before

RUNNING = "running"
STALE_S = 900.0  # a running evaluation with no verdict for this long has lost its replica


class EvalStore:
    """Create evaluations, record each question's verdict, read them back for their owner."""

    def __init__(self, traces: TraceStore) -> None:
        self.traces = traces
        # A restart stops what was running; its answered questions stay. On a database replicas share,
        # another replica's evaluation may be running: only one silent for STALE_S was stopped.
        self.interrupted = self.recover(all_running=not traces.database.shared)

    def recover(self, all_running: bool = False) -> int:
        """Mark evaluations no replica is running any more interrupted: all running ones, or those that
        recorded no verdict for STALE_S (each question records one well within the model's timeouts)."""
        now = self.traces.now()
        quiet_since = time_before(now, STALE_S)
        with self.traces.writing() as db:
            return db.execute("UPDATE evals SET status = 'interrupted', updated_at = ? WHERE status = ? AND (? OR "
                              "updated_at < ?)", (now, RUNNING, all_running, quiet_since)).rowcount

    def create(self, caller: Caller, name: str, knowledge_base: str, set_name: str, questions: list[Question],
               config: dict[str, Any] | None) -> dict[str, Any]:
        """Store a new running evaluation and a thread per question; return it."""
        eval_id, now = uuid.uuid4().hex, self.traces.now()
        items = [(eval_id, index, q.question, json.dumps(list(q.expected), ensure_ascii=False), uuid.uuid4().hex)
                 for index, q in enumerate(questions)]
        with self.traces.writing() as db:
            db.execute("INSERT INTO evals (id, owner, name, knowledge_base, set_name, status, config, created_at, "
                       "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (eval_id, caller.owner, name, knowledge_base, set_name, RUNNING,
                        json.dumps(config, default=str) if config else None, now, now))
            db.executemany("INSERT INTO eval_items (eval_id, idx, question, expected, thread_id) VALUES (?, ?, ?, ?, ?)",
                           items)
            db.executemany("INSERT INTO threads (id, title, created_at, updated_at, owner, knowledge_base, eval_id) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(thread, make_title(question), now, now, caller.owner, knowledge_base, eval_id)
                            for _, _, question, _, thread in items])
        return {"id": eval_id, "threads": [item[4] for item in items]}

    def record(self, eval_id: str, index: int, run_id: str | None, passed: bool) -> None:
        """Link question `index` to its run and verdict."""
        with self.traces.writing() as db:
            db.execute("UPDATE eval_items SET run_id = ?, passed = ? WHERE eval_id = ? AND idx = ?",
                       (run_id, int(passed), eval_id, index))
            db.execute("UPDATE evals SET updated_at = ? WHERE id = ?", (self.traces.now(), eval_id))

    def finish(self, eval_id: str, status: str) -> None:
        """Mark the evaluation done, stopped or failed."""
        with self.traces.writing() as db:
            db.execute("UPDATE evals SET status = ?, updated_at = ? WHERE id = ?", (status, self.traces.now(), eval_id))

    def list(self, caller: Caller, limit: int = 100) -> list[dict[str, Any]]:
        """The caller's evaluations (an admin's: all), newest first, with their counts."""
        with self.traces.reading() as db:
            rows = db.execute(
                "SELECT evals.*, COUNT(eval_items.idx) AS total, COUNT(eval_items.passed) AS done, "
                "COALESCE(SUM(eval_items.passed), 0) AS passed FROM evals "
                "LEFT JOIN eval_items ON eval_items.eval_id = evals.id WHERE (? OR evals.owner = ?) "
                "GROUP BY evals.id ORDER BY evals.created_at DESC, evals.rowid DESC LIMIT ?",
                (caller.is_admin, caller.owner, limit)).fetchall()
        return [_eval(row) for row in rows]

    def get(self, caller: Caller, eval_id: str) -> dict[str, Any] | None:
        """An evaluation the caller may see, with every question, its run's figures and verdict; else None."""
        with self.traces.reading() as db:
            row = db.execute("SELECT * FROM evals WHERE id = ? AND (? OR owner = ?)",
                             (eval_id, caller.is_admin, caller.owner)).fetchone()
            if row is None:
                return None
            items = db.execute(
                "SELECT eval_items.idx, eval_items.question, eval_items.expected, eval_items.thread_id, "
                "eval_items.run_id, eval_items.passed, runs.status, runs.answer, runs.ttft_s, runs.latency_s, "
                "runs.grounding, runs.model FROM eval_items LEFT JOIN runs ON runs.id = eval_items.run_id "
                "WHERE eval_items.eval_id = ? ORDER BY eval_items.idx", (eval_id,)).fetchall()
        return {**_eval(row), "items": [_item(item) for item in items]}


def _eval(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    try:
        data["config"] = json.loads(data["config"]) if data.get("config") else {}
    except ValueError:
        data["config"] = {}
    return data


def _item(row: sqlite3.Row) -> dict[str, Any]:
    item = dict(row)
    item["expected"] = json.loads(item["expected"])
    item["passed"] = None if item["passed"] is None else bool(item["passed"])
    return item
