"""The observability panel's figures: the warm-up badge, charts, counters and targets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import gradio as gr
import pandas as pd
from prometheus_client import CollectorRegistry

from chat.service import AgentService
from metrics.counters import counters_markdown
from metrics.summary import summary, targets
from metrics.table import RunTable
from ui.run_view import table as table_markdown


def status_markdown(service: AgentService) -> str:
    """Return the warm-up badge: warming up, ready (with model and store size), or failed."""
    if service.status == "ready" and service.components:
        c = service.components
        return f"**● ready** · {c.model_name} · {c.knowledge_chunks} chunks · ready in {service.ready_after_s:.1f} s"
    if service.status == "warming up":
        return "**◌ warming up…** loading the model, embeddings and knowledge base"
    return f"**✖ {service.status}**"


class ObservabilityFeed:
    """What every open page's observability panel shows, computed once per interval and shared.

    Pages don't poll. Each open page holds one `watch()` stream that looks at the shared figures
    once an interval on the server and sends only what changed since that page last drew it, so
    an idle page costs neither the server nor its browser anything. (A 1-second timer per page
    was 20 Gradio round trips a second for 20 idle pages: a third of a core on the server, and 20
    Chromium renderers redrawing unchanged markdown, which saturated a 2-core machine.)
    """

    def __init__(self, service: AgentService, table: RunTable, registry: CollectorRegistry,
                 interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.service, self.table, self.registry = service, table, registry
        self.interval_s, self.clock = interval_s, clock
        self._computed_at = -float("inf")
        self._badge = self._counters = ""
        self._charts: tuple[int | None, Any, Any] = (None, None, None)  # version, frame, targets

    def figures(self, drawn: int | None) -> tuple[Any, ...]:
        """Return the badge, TTFT and latency chart data, counters, targets, and what is now drawn.

        Charts and targets go to a page only when a run has finished since it last drew them
        (`drawn`, from the page's session): redrawing unchanged charts makes them flicker.
        """
        now = self.clock()
        if now - self._computed_at >= self.interval_s:
            self._computed_at = now
            self._badge, self._counters = status_markdown(self.service), counters_markdown(self.registry)
        version = self.table.runs_recorded  # read before the frame: a run added meanwhile is redrawn next tick
        if version == drawn:
            return self._badge, gr.skip(), gr.skip(), self._counters, gr.skip(), version
        if self._charts[0] != version:
            frame = charted(self.table)
            self._charts = (version, frame, targets_markdown(targets(summary(frame))))
        _, frame, table = self._charts
        return self._badge, frame, frame, self._counters, table, version

    async def watch(self, drawn: int | None, lifetime_s: float) -> AsyncIterator[tuple[Any, ...]]:
        """Yield a page's figures now, then only what changed, once an interval, for `lifetime_s`.

        Gradio stops the stream at its next yield once the page has gone, so a closed page's
        watcher lasts at most until the next change or the end of its lifetime; the page's timer
        starts the next one.
        """
        deadline, sent = self.clock() + lifetime_s, (None, None)
        while True:
            badge, ttft, latency, counters, table, version = self.figures(drawn)
            if (badge, counters) != sent or version != drawn:
                yield (badge if badge != sent[0] else gr.skip(), ttft, latency,
                       counters if counters != sent[1] else gr.skip(), table, version)
                sent, drawn = (badge, counters), version
            if self.clock() >= deadline:
                return
            await asyncio.sleep(self.interval_s)


def charted(table: RunTable) -> pd.DataFrame:
    """The runs the charts draw: completed ones, as the percentiles count (a stopped or failed run has
    no TTFT to draw, and a gap in a chart read as a fault)."""
    frame = table.frame()
    return frame[frame["status"] == "completed"].reset_index(drop=True)


def targets_markdown(figures: pd.DataFrame) -> str:
    """The percentiles against their targets, as a small table that wraps on a phone."""
    return ("**Percentiles of completed runs vs targets**\n\n"
            + table_markdown(["figure", "value", "target", "status"], figures.values.tolist()))


def run_in(table: RunTable, selected: Any) -> str | None:
    """The run a chart selection points at: the latest run whose point lies in the selected time range,
    else the one nearest its middle (a short drag beside a point). `selected` is SelectData.index."""
    if not isinstance(selected, (list, tuple)) or len(selected) != 2:
        return None
    try:
        low, high = sorted(_as_time(value) for value in selected)
    except (TypeError, ValueError):
        return None
    frame = table.frame()
    frame = frame[frame["run"] != ""]
    if frame.empty:
        return None
    inside = frame[(frame["time"] >= low) & (frame["time"] <= high)]
    if not inside.empty:
        return str(inside.iloc[-1]["run"])
    distance = (frame["time"] - (low + (high - low) / 2)).abs()
    return str(frame.loc[distance.idxmin(), "run"])


def _as_time(value: Any) -> Any:
    if isinstance(value, (int, float)):  # Gradio sends the frame's times as seconds since the epoch
        return pd.Timestamp(value, unit="s")
    return pd.Timestamp(value).tz_localize(None) if pd.Timestamp(value).tzinfo else pd.Timestamp(value)
