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
    "question": "object",  # the message, for the chart's tooltip
    "run": "object",  # the run id, to open it in the Traces tab
    "replica": "object",  # which replica ran it ("" with one process): the fleet's charts are coloured by it
}
FINISHED = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class RunRow:
    """One finished run, as the panel shows it."""

    time: datetime  # wall clock when the run ended
    ttft_s: float | None  # None when no answer token arrived
    latency_s: float
    tokens: int  # output tokens
    tool_calls: int
    status: str  # "completed", "failed" or "cancelled"
    question: str = ""
    run: str = ""
    replica: str = ""

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

    def restore(self, runs: list[dict]) -> None:
        """Start from stored runs (newest first, as GET /api/runs lists them), so the charts
        show the last runs after a restart too."""
        rows = [row for row in map(_stored_row, reversed(runs)) if row is not None]
        with self._lock:
            self._rows.extend(rows)
            self.runs_recorded += len(rows)

    def replace(self, runs: list[dict], labels: dict[str, str] | None = None) -> bool:
        """Hold exactly these stored runs (newest first), each labelled by its replica's name in
        `labels`: every replica's runs, read from the shared store. Return whether anything changed."""
        rows = [row for row in (_stored_row(run, labels or {}) for run in reversed(runs)) if row is not None]
        with self._lock:
            if [(r.run, r.status, r.replica) for r in rows] == [(r.run, r.status, r.replica) for r in self._rows]:
                return False
            self._rows.clear()
            self._rows.extend(rows)
            self.runs_recorded += 1  # a new version: pages redraw their charts
            return True

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


def frame_with(frame: pd.DataFrame, row: RunRow) -> pd.DataFrame:
    """Return `frame` with `row` appended (a replayed run, drawn but never recorded)."""
    extra = pd.DataFrame([_record(row)], columns=list(COLUMNS)).astype(COLUMNS)
    return pd.concat([frame, extra], ignore_index=True) if len(frame) else extra


def _record(row: RunRow) -> tuple[object, ...]:
    """Return `row` as a tuple in `COLUMNS` order; times to the millisecond, as a tooltip shows them."""
    per_s = row.tokens_per_s
    return (
        row.time,
        None if row.ttft_s is None else round(row.ttft_s, 3),
        round(row.latency_s, 3),
        row.tokens,
        None if per_s is None else round(per_s, 1),
        row.tool_calls,
        row.status,
        row.question,
        row.run,
        row.replica,
    )


def _stored_row(run: dict, labels: dict[str, str] | None = None) -> RunRow | None:
    """A stored run (traces.store) as a row, if it finished; its time is when it ended, local."""
    if run.get("status") not in FINISHED or run.get("latency_s") is None:
        return None
    try:
        ended = datetime.fromisoformat(run["updated_at"]).astimezone().replace(tzinfo=None)
    except (KeyError, TypeError, ValueError):
        return None
    replica = (labels or {}).get(run.get("replica") or "", "") if labels else ""
    return RunRow(ended, run.get("ttft_s"), run["latency_s"], run.get("output_tokens") or 0, run.get("tool_calls") or 0,
                  run["status"], (run.get("message") or "")[:80], run.get("id", ""), replica)
