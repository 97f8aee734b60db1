"""Glassbox's time to first token beside a bare Gradio relay, and where Glassbox's share goes.

    python -m bench.ttft                  # 40 interleaved requests each, 50 ms upstream TTFT
    python -m bench.ttft --rounds 100

The scripted OpenAI-compatible model (50 ms to its first chunk), Glassbox (`python app.py`) and the
relay (`bench.bare_relay`) run as separate processes. Requests go one at a time through /ask
(Gradio's call API, as gradio_client uses it), alternating between the two, so drifts in machine
load hit both alike. Then Glassbox's own `ttft_breakdown` of the same runs says where its time went.
Target (issue 8): Glassbox's mean TTFT within 1.1x the relay's. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.load import OURS, ask_ttft, beside_a_relay
from bench.run import percentile

TARGET_RATIO = 1.1
PHASES = ("queue", "retrieval", "prompt", "model", "delivery")


async def interleaved(ours: str, relay: str, rounds: int) -> dict[str, list[float]]:
    """Time `rounds` requests to each, one at a time, alternating."""
    timings: dict[str, list[float]] = {"glassbox": [], "relay": []}
    async with httpx.AsyncClient() as client:
        await ask_ttft(client, ours, "warm", 0, OURS)
        await ask_ttft(client, relay, "warm", 0)
        for index in range(rounds):
            timings["glassbox"].append(await ask_ttft(client, ours, f"ours-{index}", index, OURS))
            timings["relay"].append(await ask_ttft(client, relay, f"relay-{index}", index))
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--ttft", type=float, default=0.05, help="the scripted model's time to first chunk")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="glassbox-ttft-"))
    with ExitStack() as stack:
        ours, relay, _ = beside_a_relay(stack, work, args.ttft, " ".join(f"word{i}" for i in range(20)))
        timings = asyncio.run(interleaved(ours, relay, args.rounds))
        runs = httpx.get(f"{ours}/api/runs", params={"limit": args.rounds}, timeout=30).json()["runs"]

    print(f"{args.rounds} requests each through /ask, {args.ttft * 1000:.0f} ms upstream TTFT")
    print(f"{'':10}{'mean ms':>10}{'p50 ms':>10}{'p95 ms':>10}")
    for name, values in timings.items():
        print(f"{name:10}{statistics.mean(values) * 1000:>10.1f}{percentile(values, 50) * 1000:>10.1f}"
              f"{percentile(values, 95) * 1000:>10.1f}")
    ratio = statistics.mean(timings["glassbox"]) / statistics.mean(timings["relay"])
    extra = (statistics.mean(timings["glassbox"]) - statistics.mean(timings["relay"])) * 1000
    print(f"Glassbox / relay (mean): {ratio:.3f}x, +{extra:.1f} ms  target <= {TARGET_RATIO}x  "
          f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}")
    broken = [run["ttft_breakdown"] for run in runs if run.get("ttft_breakdown")]
    if broken:
        print("Glassbox's TTFT breakdown (mean ms over its runs): " + ", ".join(
            f"{phase} {statistics.mean(b.get(phase, 0) for b in broken) * 1000:.1f}" for phase in PHASES))


if __name__ == "__main__":
    main()
