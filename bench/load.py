"""Load: Glassbox's time to first token beside a bare Gradio relay, many streams at once.

    python -m bench.load                                  # --concurrency 1,10,25,50, 2 batches
    python -m bench.load --concurrency 25 --profile       # also py-spy the app (pip install py-spy)

Clients are plain HTTP on one asyncio loop: /ask through Gradio's call API (what gradio_client
uses underneath), the API through its SSE stream. The scripted OpenAI-compatible model (50 ms to its first token, then 10 ms a token, 60 tokens),
Glassbox (`python app.py`) and the relay (`bench.bare_relay`) each run in their own process, as
they would in production; the clients run here. Each batch sends N requests at once to each
path in turn, so drifts in machine load hit all paths alike. Then 20 idle pages are opened in
headless Chromium (each holds the page's observability watcher open) and single /ask calls are
timed beside the relay, after a pause that lets the pages finish redrawing the last run's charts.
The questions differ per request, so no cache or batch shares one query's work. Figures, not
assertions: nothing here fails a build.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from bench.run import REPO, free_port, percentile

REPLY = " ".join(f"word{i}" for i in range(60))  # 60 tokens
QUESTION = "How long can I return a faulty item?"


def question(index: int) -> str:
    """A different question per request, so no cache or batch shares one query's work."""
    return f"{QUESTION} It is order {index}."
TARGETS_MS = {"/ask": 250.0, "/api/chat/stream": 250.0}  # at TARGET_STREAMS
TARGET_STREAMS = 25
IDLE_TARGET_MS = 50.0
IDLE_SETTLE_S = 1.5
OURS = ("",)  # Glassbox's /ask: message, thread id, knowledge base ("" = the default)


@contextmanager
def process(args: list[str], env: dict[str, str], ready_url: str, log: Path, timeout_s: float = 120.0):
    """Run a server process until the block ends; wait until `ready_url` answers 200."""
    with log.open("w") as sink:
        proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, **env}, stdout=sink, stderr=sink)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(ready_url, timeout=timeout_s).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def beside_a_relay(stack: ExitStack, work: Path, ttft_s: float, reply: str) -> tuple[str, str, subprocess.Popen]:
    """Start the scripted model, Glassbox on it and the bare relay on it, each its own process, for
    as long as `stack` lasts; return Glassbox's and the relay's URLs, and Glassbox's process."""
    ports = {name: free_port() for name in ("model", "glassbox", "relay")}
    base = f"http://127.0.0.1:{ports['model']}/v1"
    ours, relay = f"http://127.0.0.1:{ports['glassbox']}", f"http://127.0.0.1:{ports['relay']}"
    py = sys.executable
    stack.enter_context(process(
        [py, "-m", "bench.scripted_openai", "--port", str(ports["model"]), "--ttft", str(ttft_s),
         "--interval", "0.01", "--reply", reply], {}, f"{base}/models", work / "model.log"))
    app = stack.enter_context(process(
        [py, "app.py"], {"OPENAI_BASE_URL": base, "OPENAI_MODEL": "scripted", "APP_STATE_DIR": str(work / "state"),
                         "GRADIO_SERVER_PORT": str(ports["glassbox"]), "AUTH_MODE": "local"},
        f"{ours}/api/prewarm", work / "glassbox.log"))
    stack.enter_context(process(
        [py, "-m", "bench.bare_relay", "--base-url", base, "--port", str(ports["relay"])], {},
        relay, work / "relay.log"))
    return ours, relay, app


async def ask_ttft(client: httpx.AsyncClient, url: str, thread_id: str, index: int = 0,
                   extra: tuple[str, ...] = ()) -> float:
    """Return seconds to the first partial answer through /ask (Gradio's HTTP call API, as
    gradio_client uses it); raise on a failed call."""
    started = time.perf_counter()
    call = await client.post(f"{url}/gradio_api/call/ask", json={"data": [question(index), thread_id, *extra]}, timeout=120)
    call.raise_for_status()
    first = None
    async with client.stream("GET", f"{url}/gradio_api/call/ask/{call.json()['event_id']}", timeout=120) as stream:
        event = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
                if event == "error":
                    raise RuntimeError("the call failed")
            elif line.startswith("data: ") and event in ("generating", "complete") and first is None:
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError("no output")
    return first


async def sse_ttft(client: httpx.AsyncClient, url: str, index: int = 0) -> float:
    """Return seconds to the first token event through /api/chat/stream."""
    started = time.perf_counter()
    first = None
    body = {"message": question(index), "events": ["token"]}
    async with client.stream("POST", f"{url}/api/chat/stream", json=body, timeout=120) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if first is None and line.startswith("data: ") and '"token"' in line:
                first = time.perf_counter() - started
            if '"type": "error"' in line:
                raise RuntimeError(line)
    if first is None:
        raise RuntimeError("no token")
    return first


def ask_batch(url: str, n: int, label: str, extra: tuple[str, ...] = ()) -> tuple[list[float], int]:
    """Send n /ask calls at once; return TTFTs and the error count. Glassbox's /ask takes a third
    input, the knowledge base (`extra=("",)`: the default); the relay's takes two."""
    return _at_once(lambda client, i: ask_ttft(client, url, f"{label}-{i}-{time.monotonic_ns()}", i, extra), n)


def sse_batch(url: str, n: int) -> tuple[list[float], int]:
    """Send n SSE chats at once; return TTFTs and the error count."""
    return _at_once(lambda client, i: sse_ttft(client, url, i), n)


def _at_once(request, n: int) -> tuple[list[float], int]:
    async def run() -> list:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=2 * n + 5)) as client:
            return await asyncio.gather(*(request(client, i) for i in range(n)), return_exceptions=True)

    with ThreadPoolExecutor(1) as pool:  # a loop of its own: Playwright's sync API runs one here
        results = pool.submit(asyncio.run, run()).result()
    ok = [r for r in results if isinstance(r, float)]
    return ok, len(results) - len(ok)


def idle_pages(url: str, relay: str, pages: int, rounds: int) -> dict[str, list[float]]:
    """Time single /ask calls beside the relay, with `pages` idle Glassbox pages open (0 = none)."""
    timings: dict[str, list[float]] = {"glassbox": [], "relay": []}
    with ExitStack() as stack:
        if pages:
            from playwright.sync_api import sync_playwright

            browser = stack.enter_context(sync_playwright()).chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-background-timer-throttling", "--disable-renderer-backgrounding"])
            stack.callback(browser.close)
            for _ in range(pages):
                page = browser.new_context().new_page()
                page.goto(url)
                page.wait_for_selector("#gb-status:has-text('ready')", timeout=60_000)
            time.sleep(3)  # let every page's timer settle into its rhythm
        for index in range(rounds):
            # A pause first: each Glassbox run makes every open page redraw its charts once, and
            # the next call should meet idle pages, not 20 renderers drawing the last run.
            time.sleep(IDLE_SETTLE_S)
            timings["relay"] += ask_batch(relay, 1, "relay-idle")[0]
            timings["glassbox"] += ask_batch(url, 1, f"idle-{pages}-{index}", OURS)[0]
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Glassbox load benchmark")
    parser.add_argument("--concurrency", default="1,10,25,50", help="streams at once, comma-separated")
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--idle-pages", type=int, default=20)
    parser.add_argument("--idle-rounds", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="py-spy the app during the largest batch")
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.concurrency.split(",")]
    work = Path(tempfile.mkdtemp(prefix="glassbox-load-"))
    with ExitStack() as stack:
        ours_url, relay_url, app = beside_a_relay(stack, work, ttft_s=0.05, reply=REPLY)
        ask_batch(ours_url, 1, "warm", OURS)  # warm both paths once
        ask_batch(relay_url, 1, "warm")
        rows = run_levels(levels, args.batches, ours_url, relay_url, app.pid if args.profile else None, work)
        print_rows(rows)
        quiet = idle_pages(ours_url, relay_url, 0, args.idle_rounds)
        busy = idle_pages(ours_url, relay_url, args.idle_pages, args.idle_rounds) if args.idle_pages else quiet
    print_idle(quiet, busy, args.idle_pages)
    (REPO / "bench" / "results").mkdir(exist_ok=True)
    (REPO / "bench" / "results" / "load.json").write_text(json.dumps({"rows": rows, "idle": {"none": quiet, "pages": busy}}, indent=1))


def run_levels(levels: list[int], batches: int, ours: str, relay: str, profile_pid: int | None,
               work: Path) -> list[dict]:
    """Run every concurrency level on every path; return one row per (path, level)."""
    rows = []
    for n in levels:
        collected: dict[str, tuple[list[float], int]] = {key: ([], 0) for key in ("relay", "/ask", "/api/chat/stream")}
        spy = _py_spy(profile_pid, work, n) if profile_pid and n == max(levels) else None
        for _ in range(batches):
            for key in collected:
                times, errors = (sse_batch(ours, n) if key == "/api/chat/stream"
                                 else ask_batch(relay, n, "relay") if key == "relay" else ask_batch(ours, n, "ask", OURS))
                collected[key] = (collected[key][0] + times, collected[key][1] + errors)
        if spy:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            spy.wait(60)
        relay_p95 = percentile(collected["relay"][0], 95)
        for key, (times, errors) in collected.items():
            rows.append({"path": key, "streams": n, "errors": errors, "p50_ms": percentile(times, 50) * 1000,
                         "p95_ms": percentile(times, 95) * 1000, "above_relay_p95_ms": (percentile(times, 95) - relay_p95) * 1000})
    return rows


def _py_spy(pid: int, work: Path, n: int) -> subprocess.Popen | None:
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy is not installed (pip install py-spy); profiling skipped")
        return None
    out = REPO / "bench" / "results" / f"profile-{n}-streams.speedscope.json"
    out.parent.mkdir(exist_ok=True)
    print(f"profiling the app into {out}")
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "speedscope", "--output", str(out),
                             "--rate", "200", "--subprocesses"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def print_rows(rows: list[dict]) -> None:
    print(f"{'path':<18} {'streams':>7} {'errors':>6} {'TTFT p50':>9} {'p95':>8} {'p95 - relay':>12}  target")
    for row in rows:
        target = TARGETS_MS.get(row["path"]) if row["streams"] == TARGET_STREAMS else None
        verdict = "" if target is None else f"<= {target:.0f} ms {'met' if row['above_relay_p95_ms'] <= target and not row['errors'] else 'MISSED'}"
        print(f"{row['path']:<18} {row['streams']:>7} {row['errors']:>6} {row['p50_ms']:>7.0f}ms {row['p95_ms']:>6.0f}ms "
              f"{row['above_relay_p95_ms']:>10.0f}ms  {verdict}")
    sys.stdout.flush()


def print_idle(quiet: dict, busy: dict, pages: int) -> None:
    for label, timings in (("no idle pages", quiet), (f"{pages} idle pages", busy)):
        ours, relay = percentile(timings["glassbox"], 95) * 1000, percentile(timings["relay"], 95) * 1000
        verdict = f"<= {IDLE_TARGET_MS:.0f} ms {'met' if ours - relay <= IDLE_TARGET_MS else 'MISSED'}" if timings is busy and pages else ""
        print(f"/ask, 1 stream, {label:<15} p95 {ours:.0f} ms vs relay {relay:.0f} ms: {ours - relay:+.0f} ms  {verdict}")


if __name__ == "__main__":
    main()
