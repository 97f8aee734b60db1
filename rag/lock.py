"""One writer: the embedded Chroma store is not safe for two processes at once.

Whoever opens the store for writing (the serving app at warm-up, `python -m rag.ingest`)
holds an exclusive lock on `APP_STATE_DIR/store.lock` until it ends; the lock file says who
holds it. The kernel drops the lock when the holder exits, even killed, so a crash never
leaves the store locked.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO


class StoreBusy(RuntimeError):
    """Another process is writing to this state dir's store; the message says who.

    `url` is where the holder serves, if it is the app: the way in while it runs.
    """

    def __init__(self, message: str, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class StoreLock:
    """The exclusive lock of one state dir's store, held until release() or the process ends."""

    def __init__(self, handle: IO[str], path: Path) -> None:
        self._handle, self.path = handle, path

    @classmethod
    def acquire(cls, state_dir: Path, holder: str, url: str | None = None) -> StoreLock:
        """Take the lock for `holder` ("the app", "python -m rag.ingest"), serving at `url` if
        it serves; raise StoreBusy if another process holds it."""
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / "store.lock"
        handle = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            held = _read(handle.read())
            handle.close()
            raise StoreBusy(f"{_describe(held)} is using the knowledge store in {state_dir}, and it has one writer",
                            held.get("url") if isinstance(held.get("url"), str) else None) from None
        handle.seek(0)
        handle.truncate()
        since = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        handle.write(json.dumps({"holder": holder, "pid": os.getpid(), "since": since, "url": url}))
        handle.flush()
        return cls(handle, path)

    def release(self) -> None:
        """Let another process write (closing the file drops the lock)."""
        if not self._handle.closed:
            self._handle.close()


def _read(content: str) -> dict:
    try:
        held = json.loads(content)
    except ValueError:
        return {}
    return held if isinstance(held, dict) else {}


def _describe(held: dict) -> str:
    try:
        return f"{held['holder']} (process {int(held['pid'])}, since {held['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process"
