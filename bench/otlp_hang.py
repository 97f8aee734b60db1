"""Glassbox's time to first token when its OTLP collector is dead: none set, one that hangs, a closed port.

    python -m bench.otlp_hang                 # 40 interleaved requests each
    python -m bench.otlp_hang --rounds 100

Three Glassboxes (`python app.py`), each beside its own scripted model and bare relay
(`bench.load.beside_a_relay`, 50 ms upstream TTFT): one without OTEL_EXPORTER_OTLP_ENDPOINT, one
pointed at a collector that accepts connections and never answers, one at a port nobody listens on.
Batches go out every 200 ms (OTEL_BSP_SCHEDULE_DELAY; the default is 5 s) so exports hang while the
timed requests run, not after them. Requests go one at a time through /ask, alternating between the
three, so drifts in machine load hit all alike; the first relay's figures are there for scale. Then
each Glassbox is stopped, and timed: a dead collector must not hold up the exit either. Figures, not
assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from unittest.mock import patch

import httpx

from bench.load import OURS, ask_ttft, beside_a_relay
from bench.run import free_port, percentile

SCHEDULE_DELAY_MS = "200"


class HangingCollector:
    """A TCP port on 127.0.0.1 that accepts every connection and never answers; counts the connections."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._held: list[socket.socket] = []  # held open, unread: the exporter waits for its timeout
        threading.Thread(target=self._accept_forever, name="hanging-collector", daemon=True).start()

    @property
    def connections(self) -> int:
        return len(self._held)

    def _accept_forever(self) -> None:
        while True:
            try:
                self._held.append(self._server.accept()[0])
            except OSError:  # closed
                return

    def close(self) -> None:
        self._server.close()
        for held in self._held:
            held.close()


def slug(name: str) -> str:
    """A configuration's name as a thread id and folder name."""
    return name.replace(" ", "-")


async def interleaved(apps: dict[str, str], rounds: int) -> dict[str, list[float]]:
    """Time `rounds` requests to each app, one at a time, in turn."""
    timings: dict[str, list[float]] = {name: [] for name in apps}
    async with httpx.AsyncClient() as client:
        for name, url in apps.items():
            await ask_ttft(client, url, f"warm-{slug(name)}", 0, OURS if name != "relay" else ())
        for index in range(rounds):
            for name, url in apps.items():
                extra = OURS if name != "relay" else ()
                timings[name].append(await ask_ttft(client, url, f"{slug(name)}-{index}", index, extra))
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--ttft", type=float, default=0.05, help="the scripted model's time to first chunk")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="glassbox-otlp-hang-"))
    reply = " ".join(f"word{i}" for i in range(20))
    hanging = HangingCollector()
    collectors = {"no collector": "", "hanging": hanging.url, "closed port": f"http://127.0.0.1:{free_port()}"}
    stacks = {name: ExitStack() for name in collectors}
    apps: dict[str, str] = {}
    scale = ""  # the first relay's URL
    try:
        for name, endpoint in collectors.items():
            folder = work / slug(name)
            folder.mkdir()
            # beside_a_relay starts its processes with this process's environment, plus its own.
            with patch.dict(os.environ, {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                                         "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
                                         "OTEL_BSP_SCHEDULE_DELAY": SCHEDULE_DELAY_MS}):
                apps[name], relay, _ = beside_a_relay(stacks[name], folder, args.ttft, reply)
            scale = scale or relay
        timings = asyncio.run(interleaved(apps | {"relay": scale}, args.rounds))
    finally:
        stopping = {}
        for name, stack in stacks.items():
            started = time.perf_counter()
            stack.close()
            stopping[name] = time.perf_counter() - started
        hanging.close()

    print(f"{args.rounds} requests each through /ask, {args.ttft * 1000:.0f} ms upstream TTFT, "
          f"batches every {SCHEDULE_DELAY_MS} ms")
    print(f"{'':14}{'mean ms':>10}{'p50 ms':>10}{'p95 ms':>10}{'stop s':>10}")
    for name, values in timings.items():
        stop = f"{stopping[name]:>10.2f}" if name in stopping else ""
        print(f"{name:14}{statistics.mean(values) * 1000:>10.1f}{percentile(values, 50) * 1000:>10.1f}"
              f"{percentile(values, 95) * 1000:>10.1f}{stop}")
    print(f"connections to the hanging collector: {hanging.connections}")
    if not hanging.connections:
        print("The app sent it nothing: is the live export wired into app.py (traces/live_otlp.py)?")


if __name__ == "__main__":
    main()
