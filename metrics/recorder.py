"""Turn a run's events into Prometheus figures and a row of the run table."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from chat.events import TTFT_PHASES, AgentEnded, ErrorOccurred, Event, RunEnded, RunQueued, Token, ToolStarted
from metrics.registry import AgentMetrics
from metrics.table import RunRow, RunTable

logger = logging.getLogger(__name__)


class RunRecorder:
    """Record every event of every run; shared by all sessions of the app."""

    def __init__(
        self,
        metrics: AgentMetrics,
        table: RunTable,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Record into `metrics` and `table`; `clock` gives the wall time of a run's end."""
        self._metrics = metrics
        self._table = table
        self._clock = clock
        # run_id -> `at` of the run's last token (None before the first). Holds only
        # runs between RunQueued and RunEnded, so it stays as small as the load.
        self._open: dict[str, float | None] = {}
        self._questions: dict[str, str] = {}  # run_id -> its message, for the chart's tooltip
        self._lock = threading.Lock()

    def record(self, event: Event) -> None:
        """Update the figures for `event`; never raise, so a user's run cannot break."""
        try:
            self._record(event)
        except Exception:
            logger.exception("Could not record %r in the metrics; ignored it.", event)

    def _record(self, event: Event) -> None:
        """Dispatch `event` to its handler; events that carry no figure are skipped."""
        if isinstance(event, RunQueued):  # a request counts from the moment it is accepted
            self._run_started(event)
        elif isinstance(event, Token):
            self._token(event)
        elif isinstance(event, ToolStarted):
            tool = self._metrics.tool_label(event.tool)
            self._metrics.tool_invocations.labels(tool=tool).inc()
        elif isinstance(event, ErrorOccurred):
            kind = self._metrics.error_kind(event.kind)
            self._metrics.errors.labels(kind=kind).inc()
        elif isinstance(event, RunEnded):
            self._run_ended(event)
        elif isinstance(event, AgentEnded):
            self._metrics.team_agent_seconds.labels(agent_name=self._metrics.agent_label(event.agent)).observe(
                event.duration_s)
        elif not isinstance(event, Event):
            logger.warning("Not an event, ignored by the metrics: %r", event)

    def _run_started(self, event: RunQueued) -> None:
        """Count the request and the stream it opens."""
        with self._lock:
            if event.run_id in self._open:
                logger.warning("Run %s started twice; counted once.", event.run_id)
                return
            self._open[event.run_id] = None
            self._questions[event.run_id] = event.message[:80]
        self._metrics.requests.inc()
        self._metrics.active_streams.inc()

    def _token(self, event: Token) -> None:
        """Observe the gap since the same run's previous token."""
        with self._lock:
            if event.run_id not in self._open:
                return  # a run we did not see start has no previous token to measure from
            previous = self._open[event.run_id]
            self._open[event.run_id] = event.at
        if previous is not None:
            self._metrics.inter_token_latency.observe(event.at - previous)

    def _run_ended(self, event: RunEnded) -> None:
        """Close the stream, observe the run's timings and add its row to the table."""
        with self._lock:
            was_open = event.run_id in self._open
            self._open.pop(event.run_id, None)
            question = self._questions.pop(event.run_id, "")
        if not was_open:
            # Counting it would let latency's count exceed the requests counted.
            logger.warning("Run %s ended but was not open; ignored.", event.run_id)
            return
        self._metrics.active_streams.dec()
        if event.ttft_s is not None:
            self._metrics.time_to_first_token.observe(event.ttft_s)
        for phase, seconds in event.ttft_breakdown.items():
            if phase in TTFT_PHASES:  # bounded labels, whatever a stored event says
                self._metrics.ttft_phases.labels(phase=phase).observe(seconds)
        self._metrics.request_latency.observe(event.latency_s)
        self._metrics.output_tokens.inc(event.output_tokens)
        if event.grounding is not None:
            self._metrics.answers.labels(grounding=event.grounding).inc()
        self._table.add(_row(event, datetime.fromtimestamp(self._clock()), question))


def _row(event: RunEnded, ended: datetime, question: str = "") -> RunRow:
    """Return the table row of a finished run."""
    return RunRow(
        time=ended,
        ttft_s=event.ttft_s,
        latency_s=event.latency_s,
        tokens=event.output_tokens,
        tool_calls=event.tool_calls,
        status=event.status,
        question=question,
        run=event.run_id,
    )
