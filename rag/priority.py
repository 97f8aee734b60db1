"""Answers first: work that can wait (embedding an upload) gives way while an answer is written.

On 2 cores, an upload's embedding pass beside the local model made the first token 8x later
(bench/ingest.py): llama.cpp's threads and MiniLM's fought for the same cores. The agent
service marks each run as foreground; EmbeddingBatcher embeds an upload's next few sentences
only when no run is going, or when it has waited long enough that the upload must not starve.
One process has one CPU budget, so there is one Foreground per process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Foreground:
    """How many answers are being written right now, in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs = 0

    @contextmanager
    def running(self) -> Iterator[None]:
        """Mark the block as foreground work (one run of the agent)."""
        with self._lock:
            self._runs += 1
        try:
            yield
        finally:
            with self._lock:
                self._runs -= 1

    def busy(self) -> bool:
        """Return whether an answer is being written now."""
        return self._runs > 0


FOREGROUND = Foreground()
