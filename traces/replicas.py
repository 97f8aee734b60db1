"""Several Glassbox processes on one Postgres database: who is alive, and who runs which thread.

Each process is a replica with an id of its own. It says it is alive every few seconds (`heartbeat`).
A run takes its thread's lease first (`take`), so one thread never runs twice at once, whichever
replica each message reaches; the lease goes when the run ends (`release`), or when its replica
stops saying it is alive. A replica that died (kill -9, a lost machine) leaves runs unfinished:
any live replica marks them interrupted once the dead one has been silent for REPLICA_TIMEOUT_S
(`recover`), and never touches a live replica's runs.

SQLite has one process by construction (the state dir's lock), so there the store recovers every
unfinished run at start, as before, and the service's own memory of busy threads is enough.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from traces.store import UNFINISHED, interrupt_runs, time_before, unfinished_runs

if TYPE_CHECKING:
    from traces.store import TraceStore

log = logging.getLogger("glassbox.replicas")
FRESH_LEASE_S = 30.0  # a lease this young holds even before its run's first row is written


class Replicas:
    """This process's place among the replicas sharing the trace store's database."""

    def __init__(self, traces: TraceStore, timeout_s: float = 30.0, url: str = "") -> None:
        self.traces, self.timeout_s, self.url = traces, timeout_s, url
        self.id = traces.replica  # what the store writes on each run it runs

    def heartbeat(self) -> None:
        """Say that this replica is alive (and forget replicas gone for a day: each start is a new one)."""
        now = self.traces.now()
        with self.traces.writing() as db:
            db.execute("INSERT INTO replicas (id, url, started_at, seen_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at", (self.id, self.url, now, now))
            db.execute("DELETE FROM replicas WHERE seen_at < ?", (self._ago(86_400),))

    def names(self) -> dict[str, str]:
        """Every replica's id and the name the charts label it with: its address (host:port)."""
        with self.traces.reading() as db:
            rows = db.execute("SELECT id, url FROM replicas").fetchall()
        address = {row[0]: (row[1] or "").removeprefix("http://").removeprefix("https://") for row in rows}
        taken = [name for name in address.values() if name]
        # Two replicas on one address (behind their own proxies, say): their ids tell them apart.
        return {rid: name if name and taken.count(name) == 1 else f"{name or 'replica'} · {rid[:6]}"
                for rid, name in address.items()}

    def shared_secret(self, name: str, make: str) -> str:
        """The secret every replica uses under `name`: the first replica's `make`, kept in the database."""
        with self.traces.writing() as db:
            db.execute("INSERT OR IGNORE INTO app_secrets (name, value) VALUES (?, ?)", (name, make))
            return db.execute("SELECT value FROM app_secrets WHERE name = ?", (name,)).fetchone()[0]

    def take(self, thread_id: str, run_id: str) -> bool:
        """Take the thread's lease for `run_id`; False if another run holds it, on any live replica."""
        now, alive_since = self.traces.now(), self._ago(self.timeout_s)
        with self.traces.writing() as db:
            db.execute(
                "INSERT INTO thread_leases (thread_id, run_id, replica, taken_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (thread_id) DO UPDATE SET run_id = excluded.run_id, replica = excluded.replica, "
                "taken_at = excluded.taken_at "
                # a lease is free when its replica is gone, or when it is not fresh and its run is over
                "WHERE thread_leases.replica NOT IN (SELECT id FROM replicas WHERE seen_at > ?) "
                f"OR (thread_leases.taken_at < ? AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.id = "
                f"thread_leases.run_id AND runs.status IN {UNFINISHED}))",
                (thread_id, run_id, self.id, now, alive_since, self._ago(FRESH_LEASE_S)))
            holder = db.execute("SELECT run_id FROM thread_leases WHERE thread_id = ?", (thread_id,)).fetchone()
        return holder is not None and holder[0] == run_id

    def release(self, thread_id: str, run_id: str) -> None:
        """Give the thread's lease back, if `run_id` still holds it."""
        with self.traces.writing() as db:
            db.execute("DELETE FROM thread_leases WHERE thread_id = ? AND run_id = ?", (thread_id, run_id))

    def recover(self) -> int:
        """Mark the unfinished runs of replicas silent for REPLICA_TIMEOUT_S interrupted; return how many."""
        with self.traces.reading() as db:
            orphans = unfinished_runs(db, alive_since=self._ago(self.timeout_s))
        if not orphans:
            return 0
        self.traces.flush()  # this replica's own queued rows first: its runs are never orphans
        db = self.traces.connect()
        try:
            marked = interrupt_runs(db, orphans, self.traces.now())
        finally:
            db.close()
        log.warning("marked the runs of a silent replica interrupted", extra={"runs": marked})
        return marked

    def _ago(self, seconds: float) -> str:
        return time_before(self.traces.now(), seconds)
