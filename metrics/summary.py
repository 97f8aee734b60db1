"""Percentiles of recent runs and how they compare with the latency targets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

# (column in the run table, percentile) pairs that `summary` reports.
PERCENTILES: tuple[tuple[str, int], ...] = (
    ("ttft_s", 50),
    ("ttft_s", 90),
    ("ttft_s", 95),
    ("latency_s", 50),
    ("latency_s", 90),
    ("latency_s", 95),
)
TARGET_COLUMNS: tuple[str, ...] = ("figure", "value", "target", "status")


@dataclass(frozen=True)
class Target:
    """A percentile the reference designs promise to keep under a bound."""

    key: str  # a key of `summary`'s result, e.g. "ttft_p90"
    under_s: float


# The reference designs' targets: p90 TTFT under 1 s and p95 latency under 2 s.
TARGETS: tuple[Target, ...] = (Target("ttft_p90", 1.0), Target("latency_p95", 2.0))
# The rows `targets` shows, in order; the ones in TARGETS also get a verdict.
SHOWN: tuple[tuple[str, str], ...] = (
    ("ttft_p50", "TTFT p50"),
    ("ttft_p90", "TTFT p90"),
    ("latency_p50", "latency p50"),
    ("latency_p95", "latency p95"),
)


def summary(frame: pd.DataFrame) -> dict[str, float | None]:
    """Return p50/p90/p95 of TTFT and latency as {"ttft_p90": 0.8, ...}; None if no data."""
    # Pass a filtered frame (e.g. completed runs only) to summarise a subset.
    return {
        f"{column.removesuffix('_s')}_p{p}": _percentile(frame[column], p)
        for column, p in PERCENTILES
    }


def _percentile(values: pd.Series, p: int) -> float | None:
    """Return the p-th percentile of the non-missing `values`, or None if there are none."""
    present = values.dropna()
    if present.empty:
        return None
    return float(present.quantile(p / 100))


def verdict(value: float | None, under_s: float) -> str:
    """Return "met", "missed" or "no data" for a figure that should stay under `under_s`."""
    if value is None or math.isnan(value):
        return "no data"
    return "met" if value < under_s else "missed"


def targets(figures: Mapping[str, float | None]) -> pd.DataFrame:
    """Return a display table (figure, value, target, status) from `summary`'s result."""
    bounds = {target.key: target.under_s for target in TARGETS}
    rows = []
    for key, label in SHOWN:
        value = figures.get(key)
        under_s = bounds.get(key)
        rows.append(
            (
                label,
                _seconds(value),
                "" if under_s is None else f"< {under_s:g} s",
                "" if under_s is None else verdict(value, under_s),
            )
        )
    return pd.DataFrame(rows, columns=list(TARGET_COLUMNS))


def _seconds(value: float | None) -> str:
    """Format a duration for people: "0.42 s", or "—" when there is none."""
    if value is None or math.isnan(value):
        return "—"
    # Three significant digits, so 0.999 beside "target < 1 s" does not read "1.00 s".
    return f"{value:.3g} s" if value < 100 else f"{value:.0f} s"
