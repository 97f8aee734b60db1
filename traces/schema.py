"""The trace store's schema, created and migrated by the app itself."""

from __future__ import annotations

import sqlite3
from typing import Any

# Each entry moves the schema one version up; never edit a released entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE threads (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        thread_id TEXT NOT NULL REFERENCES threads(id),
        status TEXT NOT NULL,
        message TEXT NOT NULL,
        answer TEXT NOT NULL DEFAULT '',
        model TEXT,
        ttft_s REAL,
        latency_s REAL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX runs_by_thread ON runs(thread_id, created_at);
    CREATE TABLE events (
        run_id TEXT NOT NULL REFERENCES runs(id),
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        at REAL NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    """,
    # 2: owners (AUTH_MODE), API tokens stored hashed, events a run lost, an index for retention.
    """
    ALTER TABLE threads ADD COLUMN owner TEXT NOT NULL DEFAULT 'local';
    CREATE INDEX threads_by_owner ON threads(owner, updated_at);
    ALTER TABLE runs ADD COLUMN dropped_events INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX runs_by_time ON runs(created_at);
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    """,
    # 3: knowledge bases: the one a conversation answers from; per run its name, content
    # fingerprint and the grounding check's verdict (GET /api/runs?grounding=...).
    """
    ALTER TABLE threads ADD COLUMN knowledge_base TEXT;
    ALTER TABLE runs ADD COLUMN knowledge_base TEXT;
    ALTER TABLE runs ADD COLUMN knowledge_fingerprint TEXT;
    ALTER TABLE runs ADD COLUMN grounding TEXT;
    CREATE INDEX runs_by_grounding ON runs(grounding, created_at);
    """,
    # 4: spans: each event's wall-clock time (Unix ns; NULL for events stored before), beside the
    # span ids in its payload (chat/spans.py places older events by their order); per run, where
    # its time to first token went (JSON: queue, retrieval, prompt, model, delivery), its tool calls,
    # and for an imported run where it came from.
    """
    ALTER TABLE events ADD COLUMN ts INTEGER;
    ALTER TABLE runs ADD COLUMN ttft_breakdown TEXT;
    ALTER TABLE runs ADD COLUMN tool_calls INTEGER;
    ALTER TABLE runs ADD COLUMN origin TEXT;
    """,
    # 5: reviewer notes on a run, or on one of its spans or events: who, a label, and text.
    """
    CREATE TABLE notes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(id),
        span_id TEXT,
        event_seq INTEGER,
        reviewer TEXT NOT NULL,
        label TEXT NOT NULL,
        text TEXT NOT NULL,
        owner TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX notes_by_run ON notes(run_id, id);
    CREATE INDEX notes_by_label ON notes(label, run_id);
    """,
    # 6: evaluation runs: a set of questions asked against a knowledge base, each question a run in a
    # thread of its own (kept out of the conversation list), with its expected answers and verdict.
    """
    CREATE TABLE evals (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        knowledge_base TEXT NOT NULL,
        set_name TEXT NOT NULL,
        status TEXT NOT NULL,
        config TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX evals_by_owner ON evals(owner, created_at);
    CREATE TABLE eval_items (
        eval_id TEXT NOT NULL REFERENCES evals(id),
        idx INTEGER NOT NULL,
        question TEXT NOT NULL,
        expected TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        run_id TEXT,
        passed INTEGER,
        PRIMARY KEY (eval_id, idx)
    );
    ALTER TABLE threads ADD COLUMN eval_id TEXT;
    """,
    # 7: replicas sharing one database (traces/replicas.py): which replica runs each run, when each
    # replica was last alive, and each thread's lease, so a thread runs once at a time across them.
    """
    ALTER TABLE runs ADD COLUMN replica TEXT;
    CREATE TABLE replicas (
        id TEXT PRIMARY KEY,
        url TEXT,
        started_at TEXT NOT NULL,
        seen_at TEXT NOT NULL
    );
    CREATE TABLE thread_leases (
        thread_id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        replica TEXT NOT NULL,
        taken_at TEXT NOT NULL
    );
    CREATE INDEX runs_unfinished ON runs(status, replica);
    """,
    # 8: secrets every replica must share: the key that signs visitor cookies and encrypts each
    # browser's thread list (ui/conversations.py), kept here when the database is shared.
    """
    CREATE TABLE app_secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

# The same versions for Postgres (DATABASE_URL): the same tables and columns in its types. SQLite's
# implicit `rowid` (insertion order, which the store sorts by) is an identity column here, REAL is
# DOUBLE PRECISION, a 64-bit integer is BIGINT; a version whose SQL is the same on both is shared.
POSTGRES_MIGRATIONS: tuple[str, ...] = (
    # 1
    """
    CREATE TABLE threads (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        rowid BIGINT GENERATED BY DEFAULT AS IDENTITY
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        thread_id TEXT NOT NULL REFERENCES threads(id),
        status TEXT NOT NULL,
        message TEXT NOT NULL,
        answer TEXT NOT NULL DEFAULT '',
        model TEXT,
        ttft_s DOUBLE PRECISION,
        latency_s DOUBLE PRECISION,
        input_tokens INTEGER,
        output_tokens INTEGER,
        error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        rowid BIGINT GENERATED BY DEFAULT AS IDENTITY
    );
    CREATE INDEX runs_by_thread ON runs(thread_id, created_at);
    CREATE TABLE events (
        run_id TEXT NOT NULL REFERENCES runs(id),
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    """,
    MIGRATIONS[1],  # 2: the same SQL on both
    MIGRATIONS[2],  # 3: the same SQL on both
    # 4
    """
    ALTER TABLE events ADD COLUMN ts BIGINT;
    ALTER TABLE runs ADD COLUMN ttft_breakdown TEXT;
    ALTER TABLE runs ADD COLUMN tool_calls INTEGER;
    ALTER TABLE runs ADD COLUMN origin TEXT;
    """,
    # 5
    """
    CREATE TABLE notes (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(id),
        span_id TEXT,
        event_seq INTEGER,
        reviewer TEXT NOT NULL,
        label TEXT NOT NULL,
        text TEXT NOT NULL,
        owner TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX notes_by_run ON notes(run_id, id);
    CREATE INDEX notes_by_label ON notes(label, run_id);
    """,
    # 6
    """
    CREATE TABLE evals (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        knowledge_base TEXT NOT NULL,
        set_name TEXT NOT NULL,
        status TEXT NOT NULL,
        config TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        rowid BIGINT GENERATED BY DEFAULT AS IDENTITY
    );
    CREATE INDEX evals_by_owner ON evals(owner, created_at);
    CREATE TABLE eval_items (
        eval_id TEXT NOT NULL REFERENCES evals(id),
        idx INTEGER NOT NULL,
        question TEXT NOT NULL,
        expected TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        run_id TEXT,
        passed INTEGER,
        PRIMARY KEY (eval_id, idx)
    );
    ALTER TABLE threads ADD COLUMN eval_id TEXT;
    """,
    MIGRATIONS[6],  # 7: the same SQL on both
    MIGRATIONS[7],  # 8: the same SQL on both
)
assert len(POSTGRES_MIGRATIONS) == SCHEMA_VERSION, "every version exists for both backends"
MIGRATION_LOCK = 7_474_811  # pg_advisory_xact_lock key: two processes starting at once migrate one at a time


def migrate(db: sqlite3.Connection) -> int:
    """Bring the database up to SCHEMA_VERSION; return the version it had before."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute("SELECT version FROM schema_version").fetchone()
    before = row[0] if row else 0
    if before > SCHEMA_VERSION:
        raise RuntimeError(
            f"The trace store has schema version {before}, newer than this Glassbox ({SCHEMA_VERSION}); "
            "upgrade Glassbox or point APP_STATE_DIR elsewhere."
        )
    if before == 0:  # set before the first table exists, so retention can give space back
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
    for version in range(before, SCHEMA_VERSION):
        db.executescript(f"BEGIN; {MIGRATIONS[version]} COMMIT;")
    if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # a store made before retention existed
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.execute("VACUUM")
    with db:
        db.execute("DELETE FROM schema_version")
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
    return before


def migrate_postgres(db: Any) -> int:
    """Bring a Postgres database up to SCHEMA_VERSION in one transaction; return the version it had before."""
    with db:
        db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        before = row[0] if row else 0
        if before > SCHEMA_VERSION:
            raise RuntimeError(
                f"The trace store has schema version {before}, newer than this Glassbox ({SCHEMA_VERSION}); "
                "upgrade Glassbox or point DATABASE_URL elsewhere."
            )
        for version in range(before, SCHEMA_VERSION):
            db.execute(POSTGRES_MIGRATIONS[version])
        db.execute("DELETE FROM schema_version")
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
    return before
