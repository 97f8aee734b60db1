"""The trace store never loses other runs' data, never stops writing, and always opens."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import ClassVar

from auth.callers import LOCAL
from chat.events import Event, RunEnded, Token, ToolEnded
from chat.text import clean_text, clean_value
from tests.test_traces import run_events
from traces.store import TraceStore

SURROGATE = "hi \ud800 there"


def test_clean_text_replaces_lone_surrogates_and_nul_and_keeps_the_rest():
    assert clean_text(SURROGATE) == "hi \ufffd there"
    assert clean_text("a\x00b") == "a\ufffdb"
    assert clean_text("naïve 😀 ok") == "naïve 😀 ok"
    assert clean_value({"q": ["\udfff", 1]}) == {"q": ["\ufffd", 1]}


def test_a_lone_surrogate_anywhere_is_stored_and_the_writer_keeps_going(tmp_path):
    """Finding 1: a surrogate in the message, a token or a tool result once killed the writer."""
    store = TraceStore(tmp_path / "t.sqlite3")
    bad = run_events("r1", message=SURROGATE, tokens=("a \udc00 b",))
    ids = {"run_id": "r1", "thread_id": "t1"}
    bad.insert(-1, ToolEnded(**ids, at=3.0, call_id="c", tool="x", output="out \ud800", duration_s=0.1))
    for event in [*bad, *run_events("r2", thread="t2")]:
        store.record(event)

    assert store.flush("r1") and store.flush("r2")
    assert store.get_run(LOCAL, "r1")["message"] == "hi \ufffd there"
    assert store.get_run(LOCAL, "r2")["status"] == "completed"
    assert store.list_threads(LOCAL, only=["t1"])[0]["title"] == "hi \ufffd there"
    store.close()


@dataclass(frozen=True, kw_only=True)
class Unstorable(Event):
    """An event whose payload cannot be serialised: a stand-in for any row that fails."""

    type: ClassVar[str] = "token"

    def to_dict(self) -> dict:
        raise ValueError("this row cannot be written")


def test_one_bad_row_costs_only_itself_and_flush_says_so(tmp_path):
    """Finding 2: one failing row once rolled back every concurrent run's events in its batch."""
    store = TraceStore(tmp_path / "t.sqlite3")
    good, bad = run_events("good", thread="tg"), run_events("bad", thread="tb")
    interleaved = [e for pair in zip(good, bad, strict=False) for e in pair]
    interleaved.insert(7, Unstorable(run_id="bad", thread_id="tb", at=2.5))
    for event in interleaved:
        store.record(event)

    assert store.flush("good") is True
    assert store.flush("bad") is False  # the truth: this run lost an event
    assert len(store.get_run(LOCAL, "good")["events"]) == len(good)
    stored_bad = store.get_run(LOCAL, "bad")
    assert len(stored_bad["events"]) == len(bad) and stored_bad["dropped_events"] == 1
    assert [e["type"] for e in store.get_run(LOCAL, "good")["events"]] == [e.type for e in good]
    store.record(Token(run_id="later", thread_id="tl", at=9.0, text="still writing"))
    assert store.flush()
    store.close()


def test_a_tiny_queue_applies_back_pressure_and_loses_nothing(tmp_path):
    store = TraceStore(tmp_path / "t.sqlite3", max_queue=2)
    events = run_events("r1", tokens=tuple(f"t{i} " for i in range(200)))
    for event in events:
        store.record(event)
    assert store.flush("r1")
    assert len(store.get_run(LOCAL, "r1")["events"]) == len(events)
    store.close()


def test_start_up_survives_stored_data_it_cannot_read(tmp_path):
    """Finding 1: a surrogate in a stored model output once made every start-up fail."""
    path = tmp_path / "t.sqlite3"
    store = TraceStore(path)
    for event in run_events("r1", end=None):
        store.record(event)
    store.flush()
    store.close()
    with sqlite3.connect(path) as db:  # what an older Glassbox could leave behind
        db.execute("INSERT INTO events (run_id, seq, type, at, payload) VALUES ('r1', 50, 'token', 9, ?)",
                   (json.dumps({"type": "token", "run_id": "r1", "thread_id": "t1", "at": 9, "text": "\ud800"}),))
        db.execute("INSERT INTO events (run_id, seq, type, at, payload) VALUES ('r1', 51, 'token', 9, '{not json')")

    reopened = TraceStore(path)
    run = reopened.get_run(LOCAL, "r1")
    assert reopened.interrupted == 1 and run["status"] == "interrupted"
    assert run["answer"].startswith("Within 45 days.") and run["events"][-1] == {"type": "unreadable", "seq": 51}
    assert run["events"][-2]["text"] == "\ufffd"  # read back clean
    assert len(reopened.run_events(LOCAL, "r1")) == len(run["events"]) - 1  # the unreadable one is skipped
    reopened.close()


def test_a_damaged_file_is_moved_aside_and_a_new_store_opens(tmp_path):
    path = tmp_path / "t.sqlite3"
    path.write_bytes(b"this is not a database" * 100)

    store = TraceStore(path)

    assert store.list_threads(LOCAL) == []
    assert [p.name for p in tmp_path.iterdir() if ".damaged-" in p.name]
    store.close()


def test_retention_keeps_the_newest_runs_and_gives_space_back(tmp_path):
    path = tmp_path / "t.sqlite3"
    store = TraceStore(path)
    for index in range(30):
        for event in run_events(f"r{index}", thread=f"t{index}", tokens=tuple("x" * 200 for _ in range(50))):
            store.record(event)
    store.flush()
    size_before = path.stat().st_size + (path.with_name(path.name + "-wal").stat().st_size)

    removed = store.prune(max_age_days=None, max_runs=5)

    assert len(removed) == 25 and {r["id"] for r in store.list_runs(LOCAL, limit=100)} == {f"r{i}" for i in range(25, 30)}
    assert store.prune(max_age_days=None, max_runs=5) == []
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert db.execute("SELECT COUNT(*) FROM events WHERE run_id = 'r0'").fetchone() == (0,)
    assert path.stat().st_size < size_before / 2
    assert store.prune(max_age_days=0.0001, max_runs=None) == []  # all just made: none old enough
    store.close()


def test_retention_never_removes_a_run_that_is_still_going(tmp_path):
    store = TraceStore(tmp_path / "t.sqlite3")
    for event in run_events("live", end=None) + run_events("done", thread="t2"):
        store.record(event)
    store.flush()
    store.prune(max_age_days=None, max_runs=1)
    assert store.get_run(LOCAL, "live") is not None
    store.close()


def test_run_end_after_a_lost_event_is_still_stored(tmp_path):
    store = TraceStore(tmp_path / "t.sqlite3")
    events = run_events("r1")
    events.insert(3, Unstorable(run_id="r1", thread_id="t1", at=2.0))
    for event in events:
        store.record(event)
    store.flush()
    assert isinstance(events[-1], RunEnded) and store.get_run(LOCAL, "r1")["status"] == "completed"
    store.close()
