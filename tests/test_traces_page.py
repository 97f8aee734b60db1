"""The Traces tab's filters, as the store query they become (the page itself: tests/test_browser.py)."""

from __future__ import annotations

import pytest

from ui import traces_page
from ui.traces_page import ANY, _query


def filters(**chosen) -> tuple:
    """The tab's filters in the order its handlers take them, each unset unless chosen."""
    names = ("status", "text", "thread", "model", "knowledge", "min_ttft", "min_latency", "since", "until",
             "noted", "order")
    unset = {"status": ANY, "model": ANY, "knowledge": ANY, "noted": ANY, "order": "newest first"}
    return tuple(chosen.get(name, unset.get(name)) for name in names)


def test_unset_filters_find_everything_newest_first() -> None:
    query = _query(filters(), 0, 26)

    assert query.where() == ("", []) and query.order == "newest" and (query.limit, query.offset) == (26, 0)


def test_each_filter_of_the_tab_becomes_its_condition() -> None:
    query = _query(filters(status="failed", text="  canada ", thread=" t-1 ", model="scripted", knowledge="bikes",
                           min_ttft=250, min_latency=1500, since="2026-11-01", until="2026-11-02 13:30:00+01:00",
                           noted="with notes", order="slowest first"), 25, 26)

    assert (query.status, query.q, query.thread_id, query.model, query.knowledge_base) == (
        "failed", "canada", "t-1", "scripted", "bikes")
    assert (query.min_ttft_s, query.min_latency_s) == (0.25, 1.5)
    # As the store writes created_at, in UTC, so they compare as text.
    assert (query.since, query.until) == ("2026-11-01T00:00:00.000+00:00", "2026-11-02T12:30:00.000+00:00")
    assert (query.note, query.order, query.offset) == ("any", "slowest", 25)


@pytest.mark.parametrize("text", ["yesterday", "2026-13-45", "9" * 50, "2026-11-23\x00", "<script>"])
def test_a_time_that_cannot_be_read_sets_no_bound(text: str) -> None:
    query = _query(filters(since=text, until=text), 0, 26)

    assert query.since is None and query.until is None


def test_an_unreadable_time_is_named_in_our_words_and_a_readable_one_is_not(monkeypatch) -> None:
    said = []
    monkeypatch.setattr(traces_page.gr, "Warning", said.append)

    traces_page._warn_of_unread_times(filters(since="yesterday", until="2026-11-02 13:30"))
    traces_page._warn_of_unread_times(filters(since="", until=None))

    assert said == ["From: write a time as 2026-11-23 14:30 (UTC), or leave it empty. Runs were found without "
                    "that bound."]


@pytest.mark.parametrize(("stored", "shown"), [("no_sources", "no sources"), ("awaiting_approval", "awaiting approval"),
                                              ("grounded", "grounded"), ("", "")])
def test_a_status_or_verdict_shows_as_words_a_narrow_cell_can_break_between(stored: str, shown: str) -> None:
    assert traces_page._words(stored) == shown
