"""Live OTLP export: each finished run's spans go to a collector as OTLP/HTTP protobuf, off the hot path.

Set OTEL_EXPORTER_OTLP_ENDPOINT (the collector's base URL; spans go to its /v1/traces) or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full URL); OTEL_EXPORTER_OTLP_HEADERS adds headers.
`LiveExport.record` is an event listener: it keeps a run's events until its `run_end`, then hands
the run to a thread that builds the spans (the same ids, times and attributes as the exported file,
traces/otlp.py) and gives them to OpenTelemetry's `BatchSpanProcessor`, which sends them in batches
from its own thread. A collector that refuses, hangs or fails costs a chat nothing: the run's spans
are dropped after a short timeout, with one warning per spell of failures.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event as SpanEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.re import parse_env_headers
from opentelemetry.util.types import AttributeValue

from chat.config import VERSION
from chat.events import Event, RunEnded, RunQueued
from chat.spans import Span, span_tree
from traces.otlp import event_json, span_attributes, span_error, span_name, trace_id_for

log = logging.getLogger("glassbox.otlp")
# The exporter logs every failed batch (and each retry); while a collector is down that is a line
# every few seconds. `_Reporting` says it once per spell instead.
SDK_EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
TRACES_PATH = "v1/traces"
SAMPLED = TraceFlags(TraceFlags.SAMPLED)  # every run is sent: the processor drops unsampled spans


def live_export_from_env(environ: Mapping[str, str]) -> LiveExport | None:
    """Return a live export to the collector the environment names, or None when it names none."""
    endpoint = (environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or "").strip()
    base = (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip()
    if not endpoint and base:  # the spec: a base URL gets the signal's path appended
        endpoint = f"{base.removesuffix('/')}/{TRACES_PATH}"
    if not endpoint:
        return None
    headers = environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or environ.get("OTEL_EXPORTER_OTLP_HEADERS") or ""
    return LiveExport(endpoint, headers=parse_env_headers(headers, liberal=True))


class LiveExport:
    """Send every finished run's spans to an OTLP/HTTP collector; `record` is the event listener."""

    def __init__(self, endpoint: str, *, headers: Mapping[str, str] | None = None, timeout_s: float = 3.0,
                 max_open_runs: int = 256, max_events_per_run: int = 50_000, max_held_events: int = 200_000,
                 max_waiting_runs: int = 64, max_queue_size: int = 2048, close_within_s: float = 2.0) -> None:
        self.endpoint = endpoint
        self.max_open_runs, self.max_events_per_run = max_open_runs, max_events_per_run
        self.max_held_events, self._held = max_held_events, 0  # events of open runs, all together
        self.close_within_s = close_within_s
        self.dropped_runs = 0  # runs not sent: too long, too many open at once, or the builder fell behind
        self._runs: dict[str, list[Event]] = {}  # run id -> its events so far, oldest run first
        self._lock = threading.Lock()
        self._closed = False
        sender = OTLPSpanExporter(endpoint=endpoint, headers=dict(headers or {}), timeout=timeout_s)
        self._exporter = _Reporting(sender, endpoint)
        self._processor = BatchSpanProcessor(self._exporter, max_queue_size=max_queue_size)
        self._resource = Resource.create({"service.name": "glassbox", "service.version": VERSION})
        self._scope = InstrumentationScope("glassbox", VERSION)
        self._finished: queue.Queue[list[Event] | None] = queue.Queue(maxsize=max_waiting_runs)
        self._builder = threading.Thread(target=self._build_forever, name="otlp-spans", daemon=True)
        self._builder.start()
        _quiet_sdk_exporter()

    def record(self, event: Event) -> None:
        """Keep the event with its run; hand the run on at its end. Never waits, never raises."""
        with self._lock:
            if self._closed:
                return
            if isinstance(event, RunQueued):  # a run is kept from its first event, so no trace is half a run
                if event.run_id in self._runs:  # queued again: it starts afresh
                    self._forget(event.run_id)
                elif len(self._runs) >= self.max_open_runs:  # the oldest is likeliest abandoned
                    self._forget(next(iter(self._runs)))
                    self._drop("over %d runs were open at once", self.max_open_runs)
                self._runs[event.run_id] = []
            events = self._runs.get(event.run_id)
            if events is None:
                return
            if len(events) >= self.max_events_per_run or self._held >= self.max_held_events:
                self._forget(event.run_id)
                self._drop("a run passed %d events, or the open runs %d together",
                           self.max_events_per_run, self.max_held_events)
                return
            events.append(event)
            self._held += 1
            if not isinstance(event, RunEnded):
                return
            self._forget(event.run_id)
        try:
            self._finished.put_nowait(events)
        except queue.Full:
            self._drop("%d finished runs were waiting to become spans", self._finished.maxsize)

    def close(self) -> None:
        """Send what is waiting if the collector answers within `close_within_s`, then stop; never hangs."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._runs.clear()
            self._held = 0
        deadline = time.monotonic() + self.close_within_s
        with contextlib.suppress(queue.Full):
            self._finished.put(None, timeout=self.close_within_s)
        self._builder.join(max(deadline - time.monotonic(), 0.0))
        # BatchSpanProcessor.shutdown waits up to 30 s for a collector that hangs; wait what is left of
        # our time, then fail the rest at once. Its thread is a daemon: the app's exit never waits for it.
        shutting = threading.Thread(target=self._processor.shutdown, name="otlp-shutdown", daemon=True)
        shutting.start()
        shutting.join(max(deadline - time.monotonic(), 0.1))
        if shutting.is_alive():
            self._exporter.shutdown()

    def _forget(self, run_id: str) -> None:
        self._held -= len(self._runs.pop(run_id))

    def _drop(self, why: str, *args: object) -> None:
        self.dropped_runs += 1
        if self.dropped_runs == 1 or self.dropped_runs % 1000 == 0:
            log.warning("a run was not sent to the OTLP collector: " + why, *args,
                        extra={"dropped_runs": self.dropped_runs})

    def _build_forever(self) -> None:
        while (events := self._finished.get()) is not None:
            try:
                for span in run_spans(events, self._resource, self._scope):
                    self._processor.on_end(span)
            except Exception:  # one odd run must not stop the export of the others
                log.exception("could not turn a run into OTLP spans", extra={"run_id": events[0].run_id})


def run_spans(events: list[Event], resource: Resource, scope: InstrumentationScope) -> list[ReadableSpan]:
    """Return one run's spans as OpenTelemetry SDK spans, with its own ids, times and attributes."""
    trace_id = int(trace_id_for(events[0].run_id), 16)
    return [_sdk_span(span, trace_id, events, resource, scope) for span in span_tree(events)]


def _sdk_span(span: Span, trace_id: int, events: list[Event], resource: Resource,
              scope: InstrumentationScope) -> ReadableSpan:
    error = span_error(span)
    return ReadableSpan(
        name=span_name(span),
        context=_context(trace_id, span.span_id),
        parent=_context(trace_id, span.parent_span_id) if span.parent_span_id else None,
        resource=resource,
        attributes={key: _value(value) for key, value in span_attributes(span, events).items()},
        events=[SpanEvent(event.type, {"glassbox.event": event_json(event)}, at_ns) for at_ns, event in span.events],
        kind=SpanKind.CLIENT if span.kind == "model" else SpanKind.INTERNAL,
        status=Status(StatusCode.ERROR, error) if error is not None else Status(StatusCode.OK),
        start_time=span.start_ns,
        end_time=span.end_ns,
        instrumentation_scope=scope,
    )


def _context(trace_id: int, span_id: str) -> SpanContext:
    return SpanContext(trace_id=trace_id, span_id=int(span_id, 16), is_remote=False, trace_flags=SAMPLED)


def _value(value: object) -> AttributeValue:
    """An attribute as OTLP can carry it; anything else as text, as the file writes it (traces/otlp.py `_value`)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value)
    return str(value)


class _Reporting(SpanExporter):
    """The OTLP exporter, saying once when the collector starts failing (and why) and once when it recovers."""

    def __init__(self, exporter: SpanExporter, endpoint: str) -> None:
        self._exporter, self._endpoint = exporter, endpoint
        self.failing = False
        self._shut = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        _SDK_LINES.first = ""
        try:
            result = self._exporter.export(spans)
        except Exception as error:  # the processor would log a stack trace for every batch
            _SDK_LINES.first, result = repr(error), SpanExportResult.FAILURE
        if result is SpanExportResult.FAILURE and not self.failing:
            log.warning("the OTLP collector did not take spans; runs are dropped until it does",
                        extra={"endpoint": self._endpoint, "reason": _SDK_LINES.first or "unknown"})
        elif result is SpanExportResult.SUCCESS and self.failing:
            log.info("the OTLP collector takes spans again", extra={"endpoint": self._endpoint})
        self.failing = result is SpanExportResult.FAILURE
        return result

    def shutdown(self) -> None:
        if self._shut.acquire(blocking=False):  # once: both close() and the processor may ask
            self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)


class _SdkLines(logging.Filter, threading.local):
    """Hold back the SDK exporter's warnings and errors, keeping a batch's first (it names the cause:
    a status, a refused connection, a timeout) as the reason `_Reporting` gives.

    Per thread: the exporter logs on the processor's thread, the one that then calls `_Reporting`.
    """

    first = ""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        self.first = self.first or record.getMessage()
        return False


_SDK_LINES = _SdkLines()


def _quiet_sdk_exporter() -> None:
    logging.getLogger(SDK_EXPORTER_LOGGER).addFilter(_SDK_LINES)  # idempotent: the same filter object
