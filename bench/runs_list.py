"""How fast the Traces tab's runs list opens with 10,000 stored runs, for each way it filters and sorts.

    python -m bench.runs_list              # 10,000 runs, SQLite
    python -m bench.runs_list --runs 100000
    python -m bench.runs_list --runs 100000 --database-url postgresql://...   # an empty Postgres database

The runs are written straight into a fresh trace store (its own schema and migrations), each with a
thread, a message, an answer and its figures. Each query is what the tab and GET /api/runs send for
one page of 25. Target (issue 8): the list opens in at most 300 ms. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from auth.access import ADMIN
from traces.store import RunQuery, TraceStore

TARGET_MS = 300.0
WORDS = "return refund shipping Canada warranty order account payment faulty headphones label".split()


def fill(store: TraceStore, runs: int) -> None:
    """Write `runs` finished runs in 1,000 threads, spread over the last 30 days."""
    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(days=30)
    with store.writing() as db:  # a benchmark filling the store directly
        for thread in range(1000):
            at = (start + timedelta(minutes=thread * 40)).isoformat(timespec="milliseconds")
            db.execute("INSERT INTO threads (id, title, created_at, updated_at, owner) VALUES (?, ?, ?, ?, 'local')",
                       (f"t{thread}", f"Thread {thread}", at, at))
        for run in range(runs):
            at = (start + timedelta(seconds=run * 259)).isoformat(timespec="milliseconds")
            words = " ".join(rng.choice(WORDS) for _ in range(8))
            ttft = rng.uniform(0.05, 2.0)
            db.execute(
                "INSERT INTO runs (id, thread_id, status, message, answer, model, ttft_s, latency_s, input_tokens, "
                "output_tokens, created_at, updated_at, knowledge_base, grounding, ttft_breakdown, tool_calls) "
                "VALUES (?, ?, ?, ?, ?, 'scripted', ?, ?, 80, 30, ?, ?, ?, ?, ?, 1)",
                (f"r{run:06d}", f"t{run % 1000}", rng.choice(["completed"] * 8 + ["failed", "cancelled"]),
                 f"Question {run}: {words}?", f"Answer {run}: {words}.", ttft, ttft + rng.uniform(0.2, 3.0), at, at,
                 rng.choice(["sample", "docs"]), rng.choice(["grounded", "unsupported", "no_sources"]),
                 json.dumps({"queue": 0.001, "retrieval": 0.02, "prompt": 0.004, "model": ttft - 0.03, "delivery": 0.001})))


def timed_ms(store: TraceStore, query: RunQuery, rounds: int = 20) -> list[float]:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        store.find_runs(ADMIN, query)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--database-url", help="an empty Postgres database (DATABASE_URL); default: a new SQLite file")
    args = parser.parse_args(argv)
    store = TraceStore(args.database_url or Path(tempfile.mkdtemp(prefix="glassbox-runs-")) / "traces.sqlite3")
    started = time.perf_counter()
    fill(store, args.runs)
    print(f"{args.runs:,} runs written in {time.perf_counter() - started:.1f} s")
    page = 26  # one page of 25, and one more to know whether there is a next page
    queries = {
        "newest first (the tab opening)": RunQuery(limit=page),
        "text in message or answer": RunQuery(q="Canada warranty", limit=page),
        "status failed": RunQuery(status="failed", limit=page),
        "slowest TTFT first": RunQuery(order="slowest_ttft", limit=page),
        "TTFT at least 1.5 s, knowledge base docs": RunQuery(min_ttft_s=1.5, knowledge_base="docs", limit=page),
        "the last page (offset near the end)": RunQuery(offset=max(0, args.runs - 25), limit=page),
    }
    print(f"{'query':44}{'p50 ms':>9}{'max ms':>9}")
    worst = 0.0
    for label, query in queries.items():
        timings = timed_ms(store, query)
        worst = max(worst, statistics.median(timings))
        print(f"{label:44}{statistics.median(timings):>9.1f}{max(timings):>9.1f}")
    print(f"slowest p50: {worst:.1f} ms  target <= {TARGET_MS:g} ms  {'met' if worst <= TARGET_MS else 'NOT met'}")
    store.close()


if __name__ == "__main__":
    main()
