"""Support tickets, the agent's escalation path, kept in SQLite."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    summary TEXT NOT NULL,
    severity TEXT NOT NULL,
    thread_id TEXT,
    created_at TEXT NOT NULL
)"""


class TicketStore:
    """Create and read support tickets in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Tools run in worker threads; one connection guarded by a lock is enough here.
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(SCHEMA)

    def create(self, summary: str, severity: str, thread_id: str | None = None) -> str:
        """Store a ticket and return its id, e.g. "T-000042"."""
        now = datetime.now(UTC).isoformat()
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO tickets (summary, severity, thread_id, created_at) VALUES (?, ?, ?, ?)",
                (summary, severity, thread_id, now),
            )
        return f"T-{cursor.lastrowid:06d}"

    def get(self, ticket_id: str) -> dict | None:
        """Return a ticket by its id, or None."""
        number = int(ticket_id.removeprefix("T-"))
        with self._lock:
            row = self._db.execute(
                "SELECT summary, severity, thread_id, created_at FROM tickets WHERE id = ?",
                (number,),
            ).fetchone()
        if row is None:
            return None
        return dict(zip(("summary", "severity", "thread_id", "created_at"), row), id=ticket_id)

    def close(self) -> None:
        """Close the database."""
        self._db.close()
