"""Many streams on one replica against two, sharing one Postgres database: TTFT and throughput.

    python -m bench.replicas --database-url postgresql://glassbox:change-me@127.0.0.1:5432/bench
    python -m bench.replicas --database-url ... --replicas 1,2,3 --concurrency 50 --batches 3

The database must exist and may be empty (the replicas migrate it). The scripted OpenAI-compatible
model (50 ms to its first token, then 10 ms a token, 60 tokens) runs in its own process; each
replica is a `python app.py` with its own state dir and embedded Chroma, all on the one database.
Each batch sends `--concurrency` SSE chats at once through /api/chat/stream, spread over the
replicas in turn, as a load balancer would. Throughput is answers finished per second of a batch.
Figures, not assertions. On a 2-core machine the replicas share the same two cores: a second
replica adds processes, not CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.load import REPLY, process, sse_ttft
from bench.run import free_port, percentile


def start_fleet(stack: ExitStack, work: Path, replicas: int, database_url: str, model: str) -> list[str]:
    """Start `replicas` Glassboxes on the one database, for as long as `stack` lasts; return their URLs."""
    urls = []
    for index in range(replicas):
        port = free_port()
        env = {"OPENAI_BASE_URL": model, "OPENAI_MODEL": "scripted", "AUTH_MODE": "local",
               "APP_STATE_DIR": str(work / f"replica-{replicas}-{index}"), "GRADIO_SERVER_PORT": str(port),
               "DATABASE_URL": database_url}
        url = f"http://127.0.0.1:{port}"
        stack.enter_context(process([sys.executable, "app.py"], env, f"{url}/api/prewarm",
                                    work / f"replica-{replicas}-{index}.log"))
        urls.append(url)
    return urls


def batch(urls: list[str], n: int) -> tuple[list[float], int, float]:
    """Send n streams at once, round-robin over `urls`; return TTFTs, errors and the batch's seconds."""
    async def run() -> tuple[list, float]:
        started = time.perf_counter()
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=2 * n + 5)) as client:
            results = await asyncio.gather(*(sse_ttft(client, urls[i % len(urls)], i) for i in range(n)),
                                           return_exceptions=True)
        return results, time.perf_counter() - started

    results, seconds = asyncio.run(run())
    ok = [r for r in results if isinstance(r, float)]
    return ok, len(results) - len(ok), seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="an existing Postgres database the replicas share")
    parser.add_argument("--replicas", default="1,2", help="replica counts to compare (default 1,2)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="glassbox-replicas-"))
    print(f"{args.concurrency} streams at once, {args.batches} batches; logs in {work}")
    print(f"{'replicas':>8}{'TTFT p50 ms':>13}{'TTFT p95 ms':>13}{'answers/s':>11}{'errors':>8}")
    with ExitStack() as models:
        port = free_port()
        model = f"http://127.0.0.1:{port}/v1"
        models.enter_context(process(
            [sys.executable, "-m", "bench.scripted_openai", "--port", str(port), "--ttft", "0.05", "--interval",
             "0.01", "--reply", REPLY], {}, f"{model}/models", work / "model.log"))
        for count in (int(c) for c in args.replicas.split(",")):
            with ExitStack() as fleet:
                urls = start_fleet(fleet, work, count, args.database_url, model)
                batch(urls, min(4, args.concurrency))  # warm: the graph compiles on each replica's first run
                ttfts, errors, rates = [], 0, []
                for _ in range(args.batches):
                    ok, failed, seconds = batch(urls, args.concurrency)
                    ttfts += ok
                    errors += failed
                    rates.append(len(ok) / seconds)
                print(f"{count:>8}{percentile(ttfts, 50) * 1000:>13.0f}{percentile(ttfts, 95) * 1000:>13.0f}"
                      f"{statistics.median(rates):>11.1f}{errors:>8}")


if __name__ == "__main__":
    main()
