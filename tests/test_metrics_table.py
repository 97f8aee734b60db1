"""The run table keeps the last runs; the summary checks them against the targets."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from metrics.summary import summary, targets
from metrics.table import COLUMNS, RunRow, RunTable


def row(latency_s: float = 1.0, ttft_s: float | None = 0.5, tokens: int = 10) -> RunRow:
    return RunRow(
        time=datetime(2025, 1, 1, 12, 0),
        ttft_s=ttft_s,
        latency_s=latency_s,
        tokens=tokens,
        tool_calls=0,
        status="completed",
    )


def test_empty_table_gives_a_typed_empty_frame() -> None:
    frame = RunTable(maxlen=5).frame()
    assert frame.empty
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == COLUMNS


def test_table_keeps_only_the_last_maxlen_runs() -> None:
    table = RunTable(maxlen=3)
    for latency in (1.0, 2.0, 3.0, 4.0, 5.0):
        table.add(row(latency_s=latency))
    assert table.frame()["latency_s"].tolist() == [3.0, 4.0, 5.0]


def test_table_refuses_a_window_of_no_runs() -> None:
    with pytest.raises(ValueError, match="maxlen"):
        RunTable(maxlen=0)


def test_tokens_per_second_counts_time_after_the_first_token() -> None:
    table = RunTable(maxlen=5)
    table.add(row(latency_s=2.5, ttft_s=0.5, tokens=10))
    table.add(row(latency_s=2.0, ttft_s=None, tokens=0))  # no token ever arrived
    table.add(row(latency_s=0.5, ttft_s=0.5, tokens=1))  # no time after the first token
    frame = table.frame()
    assert frame["tokens_per_s"].iloc[0] == 5.0
    assert frame["tokens_per_s"].iloc[1:].isna().all()
    assert frame["ttft_s"].isna().tolist() == [False, True, False]
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == COLUMNS


def test_summary_gives_percentiles_and_skips_missing_ttft() -> None:
    table = RunTable(maxlen=20)
    for latency in range(1, 11):
        table.add(
            row(latency_s=float(latency), ttft_s=None if latency > 5 else latency / 10)
        )
    figures = summary(table.frame())
    assert figures["latency_p50"] == pytest.approx(5.5)
    assert figures["latency_p95"] == pytest.approx(9.55)
    assert figures["ttft_p50"] == pytest.approx(0.3)
    assert figures["ttft_p90"] == pytest.approx(0.46)


def test_summary_of_no_runs_is_none_everywhere() -> None:
    figures = summary(RunTable(maxlen=5).frame())
    assert figures and all(value is None for value in figures.values())


def status_of(report: pd.DataFrame, figure: str) -> tuple[str, str, str]:
    found = report.loc[report["figure"] == figure, ["value", "target", "status"]]
    return tuple(found.iloc[0])


def test_targets_met_and_missed() -> None:
    report = targets(
        {"ttft_p50": 0.42, "ttft_p90": 0.8, "latency_p50": 1.2, "latency_p95": 2.5}
    )
    assert report["figure"].tolist() == [
        "TTFT p50",
        "TTFT p90",
        "latency p50",
        "latency p95",
    ]
    assert status_of(report, "TTFT p50") == ("0.42 s", "", "")
    assert status_of(report, "TTFT p90") == ("0.8 s", "< 1 s", "met")
    assert status_of(report, "latency p95") == ("2.5 s", "< 2 s", "missed")


def test_a_figure_on_the_bound_misses_it() -> None:
    report = targets({"ttft_p90": 0.999, "latency_p95": 2.0})
    assert status_of(report, "TTFT p90") == ("0.999 s", "< 1 s", "met")
    assert status_of(report, "latency p95") == ("2 s", "< 2 s", "missed")


def test_targets_without_runs_say_no_data() -> None:
    report = targets(summary(RunTable(maxlen=5).frame()))
    assert status_of(report, "TTFT p90") == ("—", "< 1 s", "no data")
    assert status_of(report, "latency p95") == ("—", "< 2 s", "no data")


def test_charts_are_sent_only_when_a_run_has_finished_since_they_were_drawn():
    import gradio as gr
    from prometheus_client import CollectorRegistry

    from ui.observability import ObservabilityFeed

    class Ready:
        status, components = "warming up", None

    table = RunTable(maxlen=2)
    feed = ObservabilityFeed(Ready(), table, CollectorRegistry())
    first = feed.figures(drawn=None)
    again = feed.figures(drawn=first[-1])
    table.add(RunRow(time=datetime(2026, 1, 1), ttft_s=0.1, latency_s=1.0, tokens=3, tool_calls=1, status="completed"))
    after_run = feed.figures(drawn=again[-1])

    assert not isinstance(first[1], type(gr.skip())) and isinstance(again[1], type(gr.skip()))
    assert len(after_run[1]) == 1 and after_run[-1] == 1


def test_every_page_shares_one_computation_per_interval():
    from prometheus_client import CollectorRegistry

    from metrics.registry import AgentMetrics
    from ui.observability import ObservabilityFeed

    class Ready:
        status, components = "warming up", None

    registry, now = CollectorRegistry(), [100.0]
    metrics = AgentMetrics(registry, tools=("search_knowledge_base",))
    feed = ObservabilityFeed(Ready(), RunTable(maxlen=2), registry, interval_s=1.0, clock=lambda: now[0])
    walks = []
    real_collect = registry.collect
    registry.collect = lambda: walks.append(1) or real_collect()

    pages = [feed.figures(drawn=None) for _ in range(20)]  # 20 pages tick within one interval
    assert len(walks) == 1 and all(page[3] == pages[0][3] for page in pages)
    metrics.requests.inc()
    now[0] += 1.0
    later = feed.figures(drawn=None)
    assert "**Requests** 1" in later[3] and len(walks) == 2


def test_a_page_watcher_sends_its_figures_then_only_changes_and_ends_with_its_lifetime():
    import asyncio

    import gradio as gr
    from prometheus_client import CollectorRegistry

    from ui.observability import ObservabilityFeed

    class Ready:
        status, components = "warming up", None

    table = RunTable(maxlen=5)
    feed = ObservabilityFeed(Ready(), table, CollectorRegistry(), interval_s=0.01)
    skip = type(gr.skip())

    async def watch() -> list[tuple]:
        sent = []
        async for figures in feed.watch(drawn=None, lifetime_s=0.3):
            sent.append(figures)
            if len(sent) == 1:  # a run finishes while the page watches
                table.add(RunRow(time=datetime(2026, 1, 1), ttft_s=0.1, latency_s=1.0, tokens=3,
                                 tool_calls=1, status="completed"))
        return sent

    sent = asyncio.run(asyncio.wait_for(watch(), 5))
    first, after_run = sent[0], sent[1]
    assert not isinstance(first[0], skip) and not isinstance(first[1], skip)  # everything, at once
    assert isinstance(after_run[0], skip) and isinstance(after_run[3], skip)  # badge, counters unchanged
    assert len(after_run[1]) == 1 and after_run[-1] == 1  # the new run's charts
    assert len(sent) == 2  # nothing else changed in 0.3 s: nothing else was sent, and the watcher ended


def test_the_charts_start_from_the_stored_runs_after_a_restart(serve_glassbox, scripted_model):
    import httpx

    first = serve_glassbox()
    asked = [httpx.post(f"{first.url}/api/chat", json={"message": f"Question {i}?"}, timeout=30).json()["run_id"]
             for i in range(3)]
    first.server.stop()

    again = serve_glassbox()  # the same state dir: a restart
    frame = again.glassbox.table.frame()
    assert list(frame["run"]) == asked and list(frame["question"]) == ["Question 0?", "Question 1?", "Question 2?"]
    assert frame["ttft_s"].notna().all() and again.glassbox.table.runs_recorded == 3


def test_a_point_selected_on_a_chart_names_its_run():
    from datetime import datetime

    from metrics.table import RunRow, RunTable
    from ui.observability import run_in

    table = RunTable(10)
    for minute, run in ((0, "r-early"), (5, "r-late")):
        table.add(RunRow(datetime(2026, 11, 22, 10, minute), 0.2, 0.5, 5, 1, "completed", "Q?", run))
    import pandas as pd

    at = pd.Timestamp(datetime(2026, 11, 22, 10, 5)).value / 1e9  # the chart's seconds, as the frame holds them
    assert run_in(table, [at - 0.5, at + 0.5]) == "r-late"
    assert run_in(table, ["2026-11-22T09:59:00", "2026-11-22T10:01:00"]) == "r-early"
    assert run_in(table, [at + 60, at + 120]) == "r-late"  # beside a point: the nearest
    assert run_in(RunTable(3), [at, at + 1]) is None
    assert run_in(table, "nonsense") is None and run_in(table, ["x", "y"]) is None


def test_a_replayed_run_is_drawn_beside_the_recorded_ones_but_not_recorded() -> None:
    from datetime import datetime

    from chat.events import RunEnded
    from metrics.table import RunRow, RunTable
    from ui.replay import charts_with_replay

    table = RunTable(10)
    table.add(RunRow(datetime(2026, 1, 1, 12), 0.2, 1.0, 5, 0, "completed", "first?", "r1"))
    ended = RunEnded(run_id="r2", thread_id="t", at=0.0, status="completed", answer="Yes.", latency_s=2.0, ttft_s=0.4)
    drawn = charts_with_replay(table.frame(), ended, "again?")
    assert list(drawn["run"]) == ["r1", "r2"] and list(drawn["ttft_s"]) == [0.2, 0.4]
    assert drawn["question"].iloc[-1] == "⏯ replay: again?" and len(table) == 1 and table.runs_recorded == 1
    assert list(charts_with_replay(RunTable(10).frame(), ended, "q")["run"]) == ["r2"]
