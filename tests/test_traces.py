"""The trace store: threads, runs and events, across restarts and crashes, in SQLite and in Postgres."""

from __future__ import annotations

import threading

import pytest

from auth.callers import LOCAL
from chat.events import ErrorOccurred, RetrievalHits, RunEnded, RunQueued, RunStarted, Token
from rag.types import Hit
from tests.conftest import fresh_database
from traces.schema import SCHEMA_VERSION
from traces.store import RunQuery, TraceStore


def run_events(run: str, thread: str = "t1", message: str = "How long can I return a faulty item?",
               tokens: tuple[str, ...] = ("Within ", "45 days."), end: str | None = "completed") -> list:
    ids = {"run_id": run, "thread_id": thread}
    events = [
        RunQueued(**ids, at=1.0, message=message),
        RunStarted(**ids, at=1.1, message=message, model="m"),
        RetrievalHits(**ids, at=1.2, call_id="c", query=message, hits=(Hit("returns.md", "abc", 0.8, "45 days."),)),
        *[Token(**ids, at=2.0 + i, text=t) for i, t in enumerate(tokens)],
    ]
    if end == "failed":
        events.append(ErrorOccurred(**ids, at=3.0, kind="model", message="boom"))
    if end:
        events.append(RunEnded(**ids, at=4.0, status=end, answer="".join(tokens).strip(), latency_s=3.0,
                               ttft_s=1.0, input_tokens=7, output_tokens=len(tokens)))
    return events


@pytest.fixture(params=["sqlite", "postgres"])
def path(request, tmp_path):
    """Where the store lives: a SQLite file, or a fresh Postgres database (DATABASE_URL)."""
    if request.param == "sqlite":
        return tmp_path / "traces.sqlite3"
    return fresh_database(request.getfixturevalue("postgres_server"))


def schema_version(store: TraceStore, set_to: int | None = None) -> int:
    db = store.connect()
    try:
        with db:
            if set_to is not None:
                db.execute("UPDATE schema_version SET version = ?", (set_to,))
            return db.execute("SELECT version FROM schema_version").fetchone()[0]
    finally:
        db.close()


def store_with(path, *event_lists) -> TraceStore:
    store = TraceStore(path)
    for events in event_lists:
        for event in events:
            store.record(event)
    assert store.flush()
    return store


def test_a_run_is_stored_with_its_thread_and_ordered_events(path):
    store = store_with(path, run_events("r1", message="  How long can I   return a faulty item?"))

    (thread,) = store.list_threads(LOCAL)
    assert thread["id"] == "t1" and thread["title"] == "How long can I return a faulty item?"
    run = store.get_run(LOCAL, "r1")
    assert run["status"] == "completed" and run["answer"] == "Within 45 days." and run["model"] == "m"
    assert (run["ttft_s"], run["latency_s"], run["input_tokens"], run["output_tokens"]) == (1.0, 3.0, 7, 2)
    assert [e["type"] for e in run["events"]] == ["run_queued", "run_start", "retrieval", "token", "token", "run_end"]
    assert run["events"][2]["hits"][0] == {"source": "returns.md", "chunk_id": "abc", "score": 0.8, "text": "45 days."}
    assert store.run_events(LOCAL, "r1")[2].hits[0].source == "returns.md"  # read back as event objects
    assert store.thread_messages(LOCAL, "t1") == [
        {"role": "user", "content": "  How long can I   return a faulty item?", "run_id": "r1"},
        {"role": "assistant", "content": "Within 45 days.", "run_id": "r1", "status": "completed", "error": None},
    ]


def test_a_failed_run_keeps_its_error_and_partial_answer(path):
    store = store_with(path, run_events("r1", tokens=("Faulty ",), end="failed"))
    run = store.get_run(LOCAL, "r1")
    assert run["status"] == "failed" and run["error"] == "model: boom" and run["answer"] == "Faulty"


def test_everything_survives_a_restart_and_the_schema_version_is_stored(path):
    store_with(path, run_events("r1"), run_events("r2", thread="t2")).close()

    reopened = TraceStore(path)
    assert reopened.schema_was == SCHEMA_VERSION and reopened.interrupted == 0
    assert {t["id"] for t in reopened.list_threads(LOCAL)} == {"t1", "t2"}
    assert len(reopened.get_run(LOCAL, "r2")["events"]) == 6
    assert schema_version(reopened) == SCHEMA_VERSION


def test_runs_left_unfinished_by_a_crash_become_interrupted_with_their_partial_answer(path):
    store_with(path, run_events("r1", tokens=("Faulty ", "items "), end=None))  # no close: a crash

    reopened = TraceStore(path)
    run = reopened.get_run(LOCAL, "r1")
    assert reopened.interrupted == 1
    assert run["status"] == "interrupted" and run["answer"] == "Faulty items"
    assert len(run["events"]) == 5  # every event written before the crash is still there


def test_concurrent_runs_keep_their_events_whole_and_in_order(path):
    store = TraceStore(path)
    runs = {f"r{i}": run_events(f"r{i}", thread=f"t{i}", tokens=tuple(f"w{j} " for j in range(50)))
            for i in range(6)}

    def produce(events):
        for event in events:
            store.record(event)

    threads = [threading.Thread(target=produce, args=(events,)) for events in runs.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.flush()

    for run_id, events in runs.items():
        stored = store.get_run(LOCAL, run_id)["events"]
        assert [e["type"] for e in stored] == [e.type for e in events]
        assert [e.get("text") for e in stored if e["type"] == "token"] == [f"w{j} " for j in range(50)]


def test_rename_and_soft_and_hard_delete(path):
    store = store_with(path, run_events("r1"), run_events("r2", thread="t2"))

    assert store.rename_thread(LOCAL, "t1", "Returns question") and store.get_thread(LOCAL, "t1")["title"] == "Returns question"
    assert not store.rename_thread(LOCAL, "nope", "x")
    assert store.delete_thread(LOCAL, "t1")
    assert store.get_thread(LOCAL, "t1") is None and [t["id"] for t in store.list_threads(LOCAL)] == ["t2"]
    assert store.get_run(LOCAL, "r1") is not None  # soft: the rows stay
    assert {t["id"]: t["deleted"] for t in store.list_threads(LOCAL, include_deleted=True)} == {"t1": True, "t2": False}
    assert store.delete_thread(LOCAL, "t2", hard=True)
    assert store.get_run(LOCAL, "r2") is None and store.list_runs(LOCAL, "t2") == []
    assert not store.delete_thread(LOCAL, "t2", hard=True)


def test_a_store_from_a_newer_glassbox_is_refused_with_a_clear_message(path):
    store = TraceStore(path)
    schema_version(store, set_to=99)
    store.close()
    with pytest.raises(RuntimeError, match="newer than this Glassbox"):
        TraceStore(path)


def test_the_models_offered_as_a_filter_are_those_of_the_callers_runs(path):
    from auth.callers import Caller

    mine, theirs = Caller("visitor:me"), Caller("visitor:them")
    store = TraceStore(path)
    for caller, thread in ((mine, "t-mine"), (theirs, "t-theirs")):
        store.claim_thread(caller, thread, "Hello?", "sample")
    for run, thread, model in (("r1", "t-mine", "model-a"), ("r2", "t-mine", "model-a"), ("r3", "t-theirs", "model-b")):
        for event in run_events(run, thread):
            store.record(event if not isinstance(event, RunStarted) else RunStarted(
                run_id=run, thread_id=thread, at=event.at, message=event.message, model=model))
    assert store.flush()

    assert store.models(mine) == ["model-a"] and store.models(theirs) == ["model-b"]
    assert store.models(LOCAL) == ["model-a", "model-b"]  # the admin's filter offers everyone's


def test_a_filter_with_a_lone_surrogate_finds_nothing_instead_of_failing(path):
    store = store_with(path, run_events("r1"))
    query = dict(thread_id="t\ud800", q="\ud800 45", model="m\udfff", knowledge_base="kb\x00")

    assert store.find_runs(LOCAL, RunQuery(**query)) == []
    assert [r["id"] for r in store.find_runs(LOCAL, RunQuery(q="45 days"))] == ["r1"]
