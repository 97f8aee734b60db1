"""Where the trace store keeps its tables: a SQLite file (the default), or Postgres (DATABASE_URL).

Both backends hand out connections that look alike to the store: `execute(sql, params)` with `?`
placeholders, rows readable by name or position, `with db:` as a transaction. The store's SQL is
written once, in the dialect both understand; `PostgresDatabase` adapts the few words that differ
(`INSERT OR IGNORE`, the case-blind `LIKE`) and gives every table SQLite's `rowid`, so an order
by insertion reads the same on both. Each backend migrates its own schema (traces/schema.py) to
the same version numbers.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("glassbox.traces")


class Database(Protocol):
    """A trace store backend: connections, their errors, start-up, and space reclaimed after retention."""

    errors: tuple[type[Exception], ...]
    shared: bool  # whether other processes (replicas) use the same database at once
    where: str  # for people: the file, or the server without its password

    def connect(self) -> Any: ...

    def open(self, recover: Callable[[Any], int]) -> tuple[int, int]: ...

    def reclaim_space(self) -> None: ...

    def close(self) -> None: ...


def database_for(state_dir: Path, url: str | None) -> Database:
    """The trace store's backend: Postgres at `url` (DATABASE_URL) if given, else SQLite under `state_dir`."""
    if url:
        return PostgresDatabase(url)
    return SqliteDatabase(state_dir / "traces.sqlite3")


class SqliteDatabase:
    """One SQLite file, in WAL mode; a damaged file is moved aside, never fatal."""

    errors = (sqlite3.Error,)
    shared = False  # one process: the state dir's lock (rag/lock.py)

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.where = str(path)

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit survives the app crashing, without an fsync each
        return db

    def open(self, recover: Callable[[Any], int]) -> tuple[int, int]:
        """Migrate, then `recover` (mark unfinished runs); return (schema version before, runs recovered)."""
        from traces.schema import migrate

        try:
            with closing(self.connect()) as db:
                db.execute("PRAGMA journal_mode=WAL")
                return migrate(db), recover(db)
        except sqlite3.DatabaseError:
            aside = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
            log.exception("the trace store is damaged; moved aside, starting a new one",
                          extra={"moved_to": str(aside)})
            for suffix in ("", "-wal", "-shm"):
                part = Path(str(self.path) + suffix)
                if part.exists():
                    part.rename(str(aside) + suffix)
            with closing(self.connect()) as db:
                db.execute("PRAGMA journal_mode=WAL")
                return migrate(db), 0

    def reclaim_space(self) -> None:
        with closing(self.connect()) as db:
            # executescript steps the pragma to the end; execute() would free a single page.
            db.executescript("PRAGMA incremental_vacuum;")

    def close(self) -> None:
        """Nothing to close: each connection is closed by its user."""


class PostgresDatabase:
    """A Postgres database, through a small psycopg 3 connection pool."""

    shared = True  # any number of replicas may use it at once (traces/replicas.py)

    def __init__(self, url: str, max_connections: int = 10) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.errors = (psycopg.Error,)
        self.url = url
        self.where = _without_password(url)
        # jit=off: Postgres compiled the runs list's plan with LLVM on every call, 194 ms of a 436 ms
        # page at 100,000 runs (bench/runs_list.py); these are short queries, where JIT only costs.
        self._pool = ConnectionPool(url, min_size=1, max_size=max_connections, open=True, timeout=30,
                                    name="glassbox-traces", kwargs={"options": "-c jit=off"})

    def connect(self) -> PostgresConnection:
        return PostgresConnection(self._pool.getconn(), self._pool.putconn)

    def open(self, recover: Callable[[Any], int]) -> tuple[int, int]:
        from traces.schema import migrate_postgres

        with closing(self.connect()) as db:
            return migrate_postgres(db), recover(db)

    def reclaim_space(self) -> None:
        """Postgres's autovacuum gives deleted rows' space back on its own."""

    def close(self) -> None:
        self._pool.close()


class PostgresConnection:
    """A pooled psycopg connection that speaks as sqlite3's does to the store: `?` placeholders,
    rows by name or position, `with db:` a transaction, `close()` back to the pool."""

    def __init__(self, connection: Any, release: Callable[[Any], None]) -> None:
        self._connection, self._release = connection, release

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cursor = self._connection.cursor(row_factory=_rows)
        cursor.execute(postgres_sql(sql) if params else sql, params or None)
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        cursor = self._connection.cursor(row_factory=_rows)
        cursor.executemany(postgres_sql(sql), rows)
        return cursor

    def commit(self) -> None:
        self._connection.commit()

    def rollback(self) -> None:
        self._connection.rollback()

    def __enter__(self) -> PostgresConnection:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if kind is None:
            self._connection.commit()
        else:
            self._connection.rollback()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.rollback()  # a reader's open transaction ends here, not in the pool
            self._release(self._connection)
            self._connection = None


class Row(tuple):
    """A row readable as sqlite3.Row is: by position, by column name, or as a dict."""

    _names: tuple[str, ...] = ()

    def __new__(cls, names: tuple[str, ...], values: Sequence[Any]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def keys(self) -> tuple[str, ...]:
        return self._names

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)


def _rows(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    """psycopg's row factory: Rows, without the `rowid` column Postgres tables carry for ordering."""
    names = tuple(column.name for column in cursor.description or ())
    kept = [i for i, name in enumerate(names) if name != "rowid"]
    shown = tuple(names[i] for i in kept)
    return lambda values: Row(shown, [values[i] for i in kept])


@lru_cache(maxsize=512)
def postgres_sql(sql: str) -> str:
    """The store's SQL in Postgres's words: `%s` placeholders, `ON CONFLICT DO NOTHING`, `ILIKE`."""
    sql = sql.replace("%", "%%")
    if sql.lstrip().startswith("INSERT OR IGNORE"):
        sql = sql.replace("INSERT OR IGNORE", "INSERT", 1) + " ON CONFLICT DO NOTHING"
    return sql.replace(" LIKE ", " ILIKE ").replace("?", "%s")


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
