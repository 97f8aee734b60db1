"""Live OTLP export: finished runs reach a collector as OTLP/HTTP protobuf with the file's ids, times and
attributes, and a collector that hangs, fails or is not there never slows a chat down or spams the log."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from chat.events import Event, RunEnded, RunQueued, Token, event_from_dict
from chat.spans import span_tree
from tests.test_spans import ticket_run
from traces.live_otlp import SDK_EXPORTER_LOGGER, LiveExport, live_export_from_env
from traces.otlp import span_attributes, trace_id_for


class Collector:
    """An OTLP/HTTP receiver on a free local port that decodes what it gets; it can answer, fail or hang."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode  # ok, fail (500) or hang (never answers)
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self.posts = 0
        self.release = threading.Event()  # lets hung requests go when the test ends
        self._got = threading.Condition()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.received(self.path, dict(self.headers), body)
                if collector.mode == "hang":
                    collector.release.wait(10)
                    return
                reply = b"" if collector.mode == "fail" else ExportTraceServiceResponse().SerializeToString()
                self.send_response(500 if collector.mode == "fail" else 200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self, path: str, headers: dict[str, str], body: bytes) -> None:
        with self._got:
            self.posts += 1
            self.headers.append({k.lower(): v for k, v in headers.items()} | {"path": path})
            if self.mode == "ok":
                self.requests.append(ExportTraceServiceRequest.FromString(body))
            self._got.notify_all()

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """Every span received, each with its resource's attributes."""
        with self._got:
            return [({a.key: value(a.value) for a in rs.resource.attributes}, span)
                    for request in self.requests for rs in request.resource_spans
                    for ss in rs.scope_spans for span in ss.spans]

    def wait_for(self, done: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self._got:
            return self._got.wait_for(done, timeout)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return [value(item) for item in v.array_value.values] if kind == "array_value" else getattr(v, kind)


@pytest.fixture
def collector() -> Iterator[Callable[[str], Collector]]:
    made: list[Collector] = []

    def make(mode: str = "ok") -> Collector:
        made.append(Collector(mode))
        return made[-1]

    yield make
    for running in made:
        running.close()


@pytest.fixture
def soon(monkeypatch) -> None:
    """Batches go out every 50 ms, not every 5 s (BatchSpanProcessor reads OTEL_BSP_SCHEDULE_DELAY)."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")


def tiny_run(run_id: str, tokens: int = 2) -> list[Event]:
    """A hand-made run: queued, some tokens, ended."""
    ids = {"run_id": run_id, "thread_id": "t1"}
    body = [RunQueued(**ids, at=0.0, message="hi")] + [Token(**ids, at=0.1, text="x") for _ in range(tokens)]
    body.append(RunEnded(**ids, at=0.2, status="completed", answer="x" * tokens, latency_s=0.2, ttft_s=0.1))
    return [dataclasses.replace(event, seq=n, ts=1_700_000_000_000_000_000 + n) for n, event in enumerate(body)]


def record_all(live: LiveExport, events: list[Event]) -> float:
    """Record every event as the service would; return the seconds it took."""
    started = time.perf_counter()
    for event in events:
        live.record(event)
    return time.perf_counter() - started


def traces_of(collector: Collector) -> set[str]:
    return {span.trace_id.hex() for _, span in collector.spans()}


async def test_a_finished_run_reaches_the_collector_as_the_file_describes_it(
        make_service, scripted_model, collector) -> None:
    events = await ticket_run(make_service, scripted_model)
    received = collector()
    live = live_export_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": received.url + "/",
                                 "OTEL_EXPORTER_OTLP_HEADERS": "x-team=glass%20box"})
    record_all(live, events)
    live.close()  # shutdown sends what the batch holds
    assert received.posts == 1 and received.headers[0]["path"] == "/v1/traces"
    assert received.headers[0]["x-team"] == "glass box"
    assert received.headers[0]["content-type"] == "application/x-protobuf"

    spans = {span.span_id.hex(): (resource, span) for resource, span in received.spans()}
    expected = span_tree(events)
    assert set(spans) == {s.span_id for s in expected}
    assert {span.trace_id.hex() for _, span in spans.values()} == {trace_id_for(events[0].run_id)}
    for ours in expected:
        resource, span = spans[ours.span_id]
        assert resource["service.name"] == "glassbox" and resource["service.version"]
        assert span.parent_span_id.hex() == ours.parent_span_id
        assert (span.start_time_unix_nano, span.end_time_unix_nano) == (ours.start_ns, ours.end_ns)
        assert {a.key: value(a.value) for a in span.attributes} == span_attributes(ours, events)
        assert [e.time_unix_nano for e in span.events] == [at for at, _ in ours.events]
    by_kind = {value(a.value): span for _, span in spans.values() for a in span.attributes
               if a.key == "openinference.span.kind"}
    root = {a.key: value(a.value) for a in by_kind["AGENT"].attributes}
    assert root["gen_ai.operation.name"] == "invoke_agent" and root["input.value"] == "I want a human"
    model = {a.key: value(a.value) for a in by_kind["LLM"].attributes}
    assert model["gen_ai.operation.name"] == "chat" and model["llm.model_name"]
    assert model["langfuse.observation.completion_start_time"].endswith("+00:00")
    assert by_kind["LLM"].kind == by_kind["LLM"].SPAN_KIND_CLIENT and by_kind["AGENT"].status.code == 1

    carried = [event_from_dict(json.loads(a.value.string_value)) for _, span in spans.values()
               for e in span.events for a in e.attributes if a.key == "glassbox.event"]
    assert sorted(carried, key=lambda e: e.seq) == events  # every event, verbatim


def test_the_environment_names_the_collector() -> None:
    assert live_export_from_env({}) is None
    assert live_export_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}) is None
    base = live_export_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    full = live_export_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/otlp/v1/traces"})
    assert (base.endpoint, full.endpoint) == ("http://collector:4318/v1/traces", "http://tempo:4318/otlp/v1/traces")
    base.close()
    full.close()


def test_a_collector_that_hangs_slows_no_chat_and_a_later_run_still_goes(collector, soon) -> None:
    stuck = collector("hang")
    live = LiveExport(stuck.url + "/v1/traces", timeout_s=0.3, close_within_s=1.0)
    record_all(live, tiny_run("a" * 32))
    assert stuck.wait_for(lambda: stuck.posts >= 1)  # the exporter now waits on a collector that never answers
    assert record_all(live, tiny_run("b" * 32, tokens=2000)) < 1.0

    stuck.mode = "ok"  # it comes back
    stuck.release.set()
    record_all(live, tiny_run("c" * 32))
    assert stuck.wait_for(lambda: trace_id_for("c" * 32) in traces_of(stuck))
    started = time.perf_counter()
    live.close()
    assert time.perf_counter() - started < 3.0


@pytest.mark.parametrize(("mode", "reason"), [("fail", "code: 500"), ("hang", "timeout"), ("closed", "timeout")])
def test_a_dead_collector_costs_one_warning_and_a_bounded_close(collector, soon, caplog, mode, reason) -> None:
    if mode == "closed":
        with socket.socket() as spare:
            spare.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{spare.getsockname()[1]}"
    else:
        url = collector(mode).url
    live = LiveExport(url + "/v1/traces", timeout_s=0.3, close_within_s=1.0)
    caplog.set_level(logging.DEBUG - 1)
    for n in range(5):
        assert record_all(live, tiny_run(f"{n:032x}")) < 1.0
        time.sleep(0.1)  # several batches, each failing
    started = time.perf_counter()
    live.close()
    assert time.perf_counter() - started < 3.0

    ours = [r for r in caplog.records if r.name == "glassbox.otlp"]
    assert len(ours) == 1 and ours[0].levelno == logging.WARNING and reason in ours[0].reason
    assert not [r for r in caplog.records if r.name.startswith(SDK_EXPORTER_LOGGER) and r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.exc_info]


def test_a_hostile_run_cannot_grow_memory_without_bound(collector) -> None:
    received = collector()
    live = LiveExport(received.url + "/v1/traces", max_events_per_run=100, max_open_runs=2)
    record_all(live, tiny_run("a" * 32, tokens=1000))  # too long: dropped, not cut
    left_open = tiny_run("b" * 32)
    record_all(live, left_open[:-1])
    record_all(live, tiny_run("c" * 32)[:1])
    record_all(live, tiny_run("d" * 32)[:1])  # a third open at once: the oldest, b, goes
    record_all(live, left_open[-1:])
    record_all(live, tiny_run("e" * 32))  # and c goes for it
    live.close()
    assert traces_of(received) == {trace_id_for("e" * 32)} and live.dropped_runs == 3

    crowd = LiveExport(received.url + "/v1/traces", max_held_events=50)  # many open runs, each short enough
    for run in [tiny_run(f"{n:032x}", tokens=10)[:-1] for n in range(5)]:
        record_all(crowd, run)  # 44 events held; the fifth run goes at the 51st
    record_all(crowd, tiny_run("f" * 32, tokens=10))  # 12 more do not fit
    record_all(crowd, tiny_run("0" * 32, tokens=1))  # 3 do
    crowd.close()
    assert traces_of(received) == {trace_id_for("e" * 32), trace_id_for("0" * 32)} and crowd.dropped_runs == 2
