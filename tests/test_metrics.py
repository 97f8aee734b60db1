"""The recorder turns hand-built events into the right Prometheus figures."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from datetime import datetime

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from chat.events import (
    ErrorOccurred,
    NodeStarted,
    RunEnded,
    RunQueued,
    Token,
    ToolStarted,
)
from metrics.recorder import RunRecorder
from metrics.registry import ERROR_KINDS, AgentMetrics
from metrics.table import RunTable

WALL_CLOCK = 1_700_000_000.0
EXPECTED_TYPES = {
    "agent_requests_total": "counter",
    "agent_errors_total": "counter",
    "agent_time_to_first_token_seconds": "histogram",
    "agent_request_latency_seconds": "histogram",
    "agent_inter_token_latency_seconds": "histogram",
    "agent_tool_invocations_total": "counter",
    "agent_output_tokens_total": "counter",
    "agent_active_streams": "gauge",
}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def table() -> RunTable:
    return RunTable(maxlen=10)


@pytest.fixture
def recorder(registry: CollectorRegistry, table: RunTable) -> RunRecorder:
    metrics = AgentMetrics(registry, tools=["search_knowledge_base"])
    return RunRecorder(metrics, table, clock=lambda: WALL_CLOCK)


def started(at: float, run: str = "r1") -> RunQueued:
    return RunQueued(run_id=run, thread_id="t1", at=at, message="Hi")


def token(at: float, run: str = "r1") -> Token:
    return Token(run_id=run, thread_id="t1", at=at, text="x")


def ended(at: float, run: str = "r1", **fields: object) -> RunEnded:
    values: dict = {
        "status": "completed",
        "answer": "ok",
        "latency_s": 0.8,
        "ttft_s": 0.3,
    }
    return RunEnded(run_id=run, thread_id="t1", at=at, **{**values, **fields})


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_every_error_kind_shows_zero_before_any_run(
    registry: CollectorRegistry,
) -> None:
    AgentMetrics(registry)
    for kind in ERROR_KINDS:
        assert sample(registry, "agent_errors_total", kind=kind) == 0.0
    assert sample(registry, "agent_requests_total") == 0.0
    assert sample(registry, "agent_active_streams") == 0.0


def test_metrics_stay_off_the_global_registry() -> None:
    AgentMetrics(CollectorRegistry())
    AgentMetrics(CollectorRegistry())  # a second app in one process must not clash
    assert REGISTRY.get_sample_value("agent_requests_total") is None


def test_exposition_has_exactly_the_eight_metrics(registry: CollectorRegistry) -> None:
    AgentMetrics(registry)
    text = generate_latest(registry).decode()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    assert {name: types.get(name) for name in EXPECTED_TYPES} == EXPECTED_TYPES


def test_completed_run(
    recorder: RunRecorder, registry: CollectorRegistry, table: RunTable
) -> None:
    recorder.record(started(at=10.0))
    assert sample(registry, "agent_active_streams") == 1.0
    recorder.record(NodeStarted(run_id="r1", thread_id="t1", at=10.01, node="agent"))
    recorder.record(
        ToolStarted(run_id="r1", thread_id="t1", at=10.1, call_id="c1",
                    tool="search_knowledge_base", input={"query": "returns"})
    )  # fmt: skip
    for at in (10.5, 10.5625, 10.8125):  # gaps of 0.0625 s and 0.25 s, exact in binary
        recorder.record(token(at))
    recorder.record(ended(at=10.8125, output_tokens=3, tool_calls=1))

    assert sample(registry, "agent_requests_total") == 1.0
    assert sample(registry, "agent_active_streams") == 0.0
    assert (
        sample(registry, "agent_tool_invocations_total", tool="search_knowledge_base")
        == 1.0
    )
    assert sample(registry, "agent_output_tokens_total") == 3.0
    ttft = "agent_time_to_first_token_seconds"
    assert sample(registry, f"{ttft}_count") == 1.0
    assert sample(registry, f"{ttft}_sum") == pytest.approx(0.3)
    assert sample(registry, f"{ttft}_bucket", le="0.25") == 0.0
    assert sample(registry, f"{ttft}_bucket", le="0.5") == 1.0
    assert sample(registry, "agent_request_latency_seconds_bucket", le="0.5") == 0.0
    assert sample(registry, "agent_request_latency_seconds_bucket", le="0.8") == 1.0
    itl = "agent_inter_token_latency_seconds"
    assert sample(registry, f"{itl}_count") == 2.0
    assert sample(registry, f"{itl}_sum") == 0.3125
    assert sample(registry, f"{itl}_bucket", le="0.05") == 0.0
    assert sample(registry, f"{itl}_bucket", le="0.075") == 1.0
    assert sample(registry, f"{itl}_bucket", le="0.3") == 2.0
    row = table.frame().iloc[0]
    assert row["time"] == datetime.fromtimestamp(WALL_CLOCK)
    assert (row["tokens"], row["tool_calls"], row["status"]) == (3, 1, "completed")


def test_inter_token_gaps_are_measured_within_each_run(
    recorder: RunRecorder, registry: CollectorRegistry
) -> None:
    recorder.record(started(at=0.0, run="a"))
    recorder.record(started(at=0.0, run="b"))
    for at, run in ((1.0, "a"), (1.5, "b"), (1.75, "b"), (2.0, "a")):
        recorder.record(token(at, run=run))
    assert sample(registry, "agent_inter_token_latency_seconds_count") == 2.0
    assert sample(registry, "agent_inter_token_latency_seconds_sum") == 1.25


def test_a_reused_run_id_does_not_measure_from_the_old_run(
    recorder: RunRecorder, registry: CollectorRegistry
) -> None:
    recorder.record(started(at=0.0))
    recorder.record(token(at=1.0))
    recorder.record(ended(at=1.0))
    recorder.record(started(at=50.0))
    recorder.record(token(at=51.0))
    assert sample(registry, "agent_inter_token_latency_seconds_count") == 0.0


def test_failed_run(
    recorder: RunRecorder, registry: CollectorRegistry, table: RunTable
) -> None:
    recorder.record(started(at=0.0))
    recorder.record(
        ErrorOccurred(
            run_id="r1", thread_id="t1", at=30.0, kind="timeout", message="Too slow."
        )
    )
    recorder.record(ended(at=30.0, status="failed", ttft_s=None, latency_s=30.0))
    assert sample(registry, "agent_errors_total", kind="timeout") == 1.0
    assert sample(registry, "agent_errors_total", kind="model") == 0.0
    assert sample(registry, "agent_time_to_first_token_seconds_count") == 0.0
    assert sample(registry, "agent_request_latency_seconds_count") == 1.0
    assert sample(registry, "agent_active_streams") == 0.0
    assert table.frame()["status"].tolist() == ["failed"]


def test_labels_stay_bounded(
    recorder: RunRecorder, registry: CollectorRegistry
) -> None:
    odd_error = ErrorOccurred(
        run_id="r1", thread_id="t1", at=1.0, kind="gpu", message="?"
    )  # type: ignore[arg-type]
    odd_tool = ToolStarted(
        run_id="r1", thread_id="t1", at=1.0, call_id="c", tool="made_up", input={}
    )
    recorder.record(odd_error)
    recorder.record(odd_tool)
    assert sample(registry, "agent_errors_total", kind="internal") == 1.0
    assert sample(registry, "agent_errors_total", kind="gpu") is None
    assert sample(registry, "agent_tool_invocations_total", tool="unknown") == 1.0
    assert sample(registry, "agent_tool_invocations_total", tool="made_up") is None


def test_unexpected_events_are_logged_not_raised(
    recorder: RunRecorder, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    recorder.record("not an event")  # type: ignore[arg-type]
    recorder.record(ended(at=1.0, run="never-started"))
    recorder.record(started(at=2.0))
    recorder.record(ended(at=3.0, output_tokens=-1))  # a counter cannot go down
    recorder.record(ended(at=3.0))  # the run is already over
    assert sample(registry, "agent_active_streams") == 0.0
    assert sample(registry, "agent_request_latency_seconds_count") == 1.0
    assert len(caplog.records) == 4


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not on PATH")
def test_promtool_accepts_the_exposition(
    recorder: RunRecorder, registry: CollectorRegistry
) -> None:
    recorder.record(started(at=0.0))
    recorder.record(ended(at=1.0))
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
