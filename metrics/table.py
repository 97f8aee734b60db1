"""A rolling table of the last runs, as a pandas frame for the panel's charts."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

# Column -> dtype; an empty frame keeps these so charts render before the first run.
COLUMNS: dict[str, str] = {
    "time": "datetime64[ns]",
    "ttft_s": "float64",
    "latency_s": "float64",
    "tokens": "int64",
    "tokens_per_s": "float64",
    "tool_calls": "int64",
    "status": "object",
}


@dataclass(frozen=True)
class RunRow:
    """One finished run, as the panel shows it."""

    time: datetime  # wall clock when the run ended
    ttft_s: float | None  # None when no answer token arrived
    latency_s: float
    tokens: int  # output tokens
    tool_calls: int
    status: str  # "completed", "failed" or "cancelled"

    @property
    def tokens_per_s(self) -> float | None:
        """Return output tokens per second of generation after the first token."""
        if self.ttft_s is None:
            return None
        generating_s = self.latency_s - self.ttft_s
        return self.tokens / generating_s if generating_s > 0 else None


class RunTable:
    """Keep the last `maxlen` runs; safe to add to from several sessions at once."""

    def __init__(self, maxlen: int) -> None:
        """Create an empty table that forgets its oldest run past `maxlen` runs."""
        if maxlen < 1:
            raise ValueError(f"RunTable needs maxlen >= 1, got {maxlen}.")
        self._rows: deque[RunRow] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.runs_recorded = 0  # ever, not just held: tells a chart whether it is out of date

    def add(self, row: RunRow) -> None:
        """Append a finished run, dropping the oldest when the table is full."""
        with self._lock:
            self._rows.append(row)
            self.runs_recorded += 1

    def __len__(self) -> int:
        """Return how many runs the table holds."""
        with self._lock:
            return len(self._rows)

    def frame(self) -> pd.DataFrame:
        """Return the runs, oldest first, with the columns of `COLUMNS`."""
        with self._lock:
            rows = list(self._rows)
        records = [_record(row) for row in rows]
        return pd.DataFrame(records, columns=list(COLUMNS)).astype(COLUMNS)


def _record(row: RunRow) -> tuple[object, ...]:
    """Return `row` as a tuple in `COLUMNS` order."""
    return (
        row.time,
        row.ttft_s,
        row.latency_s,
        row.tokens,
        row.tokens_per_s,
        row.tool_calls,
        row.status,
    )
