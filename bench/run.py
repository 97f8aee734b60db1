"""Print Glassbox's speed, quality and memory figures next to their targets.

    python -m bench.run            # everything, ~2-3 minutes on 2 cores
    python -m bench.run --quick    # fewer repetitions

Figures, not assertions: these machines are noisy, so the numbers are printed for people
(and the README), never checked in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gradio_client import Client

REPO = Path(__file__).resolve().parent.parent
EVAL_SET = REPO / "data" / "kb" / "eval.jsonl"
SCRIPTED_TTFT_S = 0.3


def percentile(values: list[float], p: float) -> float:
    """Return the p-th percentile (linear interpolation) of `values`."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_to_ready(state_dir: str | None = None) -> tuple[float, float]:
    """Start `python app.py` on `state_dir` (default: a fresh one); return (seconds to ready, peak RSS
    MB after one answer). A restart on the same state dir finds MiniLM's ONNX graph exported already."""
    port = free_port()
    env = {**os.environ, "APP_STATE_DIR": state_dir or tempfile.mkdtemp(prefix="glassbox-bench-"),
           "GRADIO_SERVER_PORT": str(port), "LLM_PROVIDER": "local"}
    log = Path(env["APP_STATE_DIR"]) / "app.log"
    started = time.monotonic()
    with log.open("w") as sink:  # a file, not a pipe: an unread pipe would block the app's logging
        app = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stderr=sink)
    try:
        while '"message": "ready"' not in log.read_text():
            if app.poll() is not None or '"warm-up failed"' in log.read_text():
                raise RuntimeError(f"app.py did not get ready:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        ready = time.monotonic() - started
        client = Client(f"http://127.0.0.1:{port}", verbose=False)
        client.predict("How long can I return a faulty item?", "bench", api_name="/ask")
        client.close()
        peak = _peak_rss_mb(app.pid)
    finally:
        app.terminate()
        app.wait(timeout=10)
    return ready, peak


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def local_quality() -> dict[str, float]:
    """Answer the evaluation set with the local model; return correctness, TTFT and speed."""
    from chat.components import load_components
    from chat.config import Settings
    from chat.service import AgentService
    from evals.sets import passes

    settings = Settings(state_dir=Path(tempfile.mkdtemp(prefix="glassbox-bench-")), llm_provider="local")
    components = load_components(settings)
    service = AgentService(lambda: components)
    service.warm_up()
    questions = [json.loads(line) for line in EVAL_SET.read_text().splitlines() if line.strip()]
    correct, ttfts, speeds, misses = 0, [], [], []
    for index, item in enumerate(questions):
        end = [e async for e in service.stream(item["question"], f"eval-{index}")][-1]
        if passes(end.answer, item["expected"]):  # the evaluation runs' own verdict (evals/sets.py)
            correct += 1
        else:
            misses.append(f"  missed: {item['question']} -> {end.answer[:100]!r}")
        if end.ttft_s is not None:
            ttfts.append(end.ttft_s)
            if end.latency_s > end.ttft_s:
                speeds.append(end.output_tokens / (end.latency_s - end.ttft_s))
    retrieval_ms = _retrieval_ms(components, questions)
    print("\n".join(misses))
    return {"correct": correct, "total": len(questions), "ttft_p50": percentile(ttfts, 50),
            "ttft_p95": percentile(ttfts, 95), "tokens_per_s": statistics.median(speeds),
            "retrieval_p50_ms": percentile(retrieval_ms, 50)}


def _retrieval_ms(components, questions: list[dict]) -> list[float]:
    search = next(t for t in components.tools if t.name == "search_knowledge_base")
    timings = []
    for _ in range(3):
        for item in questions:
            started = time.perf_counter()
            search.invoke({"query": item["question"]})
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def ttft_against_bare_relay(rounds: int) -> tuple[float, float]:
    """Return TTFT p50 (s) of Glassbox and of a bare Gradio relay over the same scripted server."""
    from app import build_app, build_glassbox
    from bench.bare_relay import build_relay
    from bench.scripted_openai import Script, ScriptedServer
    from bench.serving import BackgroundServer
    from chat.config import Settings

    reply = Script(reply="Faulty items can be returned within 45 days.", ttft_s=SCRIPTED_TTFT_S, token_interval_s=0.01)
    with ScriptedServer(reply) as upstream:
        settings = Settings.from_env({"OPENAI_BASE_URL": upstream.base_url, "OPENAI_MODEL": "scripted",
                                      "APP_STATE_DIR": tempfile.mkdtemp(prefix="glassbox-bench-")})
        glassbox = build_glassbox(settings)
        glassbox.service.warm_up()
        relay_app = build_relay(upstream.base_url, "scripted")
        with BackgroundServer(build_app(glassbox)) as ours, BackgroundServer(_mounted(relay_app)) as relay:
            clients = {"glassbox": Client(ours.url, verbose=False), "relay": Client(relay.url, verbose=False)}
            for client in clients.values():  # warm both paths once
                _first_output_s(client, "warm-up")
            timings = {name: [] for name in clients}
            for index in range(rounds):  # alternate, so drifts in machine load hit both alike
                for name, client in clients.items():
                    timings[name].append(_first_output_s(client, f"{name}-{index}"))
            for client in clients.values():
                client.close()  # end its event stream, so the servers stop cleanly
    return percentile(timings["glassbox"], 50), percentile(timings["relay"], 50)


async def trace_store_cost(rounds: int) -> tuple[float, float]:
    """Return TTFT p50 (s) without and with the trace store, same scripted model, runs alternated."""
    from bench.scripted_openai import Script, ScriptedServer
    from chat.components import Components
    from chat.config import Settings
    from chat.models import build_chat_model
    from chat.service import AgentService
    from chat.tickets import TicketStore
    from chat.tools import build_tools
    from traces.store import TraceStore

    state = Path(tempfile.mkdtemp(prefix="glassbox-bench-"))
    reply = Script(reply="Faulty items can be returned within 45 days.", ttft_s=0.05, token_interval_s=0.002)
    with ScriptedServer(reply) as upstream:
        model, name = build_chat_model(Settings.from_env({"OPENAI_BASE_URL": upstream.base_url}))
        tools = build_tools(lambda _name: _OneFact(), TicketStore(state / "tickets.sqlite3"), top_k=1)
        traces = TraceStore(state / "traces.sqlite3")
        plain = AgentService(lambda: Components(model, name, tools))
        stored = AgentService(lambda: Components(model, name, tools), listeners=[traces.record],
                              persisted=lambda run_id: asyncio.to_thread(traces.flush, run_id))
        timings: dict[str, list[float]] = {"without": [], "with": []}
        for service in (plain, stored):
            service.warm_up()
        for index in range(rounds):
            for label, service in (("without", plain), ("with", stored)):
                end = [e async for e in service.stream("How long can I return a faulty item?", f"{label}-{index}")][-1]
                timings[label].append(end.ttft_s)
        traces.close()
    return percentile(timings["without"], 50), percentile(timings["with"], 50)


class _OneFact:
    """One relevant sentence, so the model is asked (with none, the answer is "not covered", unasked)."""

    def search(self, query: str, k: int) -> list:
        from rag.types import Hit

        return [Hit("returns.md", "c1", 0.9, "Faulty items can be returned within 45 days.")]


def _mounted(demo):
    import gradio as gr
    from fastapi import FastAPI

    return gr.mount_gradio_app(FastAPI(), demo, path="/")


def _first_output_s(client: Client, thread_id: str) -> float:
    started = time.perf_counter()
    job = client.submit("How long can I return a faulty item?", thread_id, api_name="/ask")
    for _ in job:
        first = time.perf_counter() - started
        break
    job.result()
    return first


def report(rows: list[tuple[str, str, str, bool]]) -> None:
    """Print figures beside their targets."""
    width = max(len(name) for name, *_ in rows)
    for name, value, target, met in rows:
        print(f"{name:<{width}}  {value:>14}  target {target:<12} {'met' if met else 'MISSED'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Glassbox benchmark")
    parser.add_argument("--quick", action="store_true", help="fewer TTFT rounds")
    args = parser.parse_args(argv)
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))

    state_dir = tempfile.mkdtemp(prefix="glassbox-bench-")
    ready_s, peak_mb = start_to_ready(state_dir)
    restart_s, restart_mb = start_to_ready(state_dir)
    quality = asyncio.run(local_quality())
    ours, relay = ttft_against_bare_relay(rounds=5 if args.quick else 15)
    ratio = ours / relay
    without_store, with_store = asyncio.run(trace_store_cost(rounds=10 if args.quick else 40))
    report([
        ("start to ready", f"{ready_s:.1f} s", "< 15 s", ready_s < 15),
        ("restart to ready (same state dir)", f"{restart_s:.1f} s", "(shown)", True),
        ("local answers correct", f"{quality['correct']}/{quality['total']}", ">= 3/4",
         quality["correct"] * 4 >= quality["total"] * 3),
        ("local TTFT p50", f"{quality['ttft_p50']:.2f} s", "< 1 s", quality["ttft_p50"] < 1),
        ("local TTFT p95", f"{quality['ttft_p95']:.2f} s", "(shown)", True),
        ("local tokens/s (median)", f"{quality['tokens_per_s']:.0f}", "(shown)", True),
        ("retrieval p50", f"{quality['retrieval_p50_ms']:.1f} ms", "< 30 ms", quality["retrieval_p50_ms"] < 30),
        ("peak memory (app)", f"{peak_mb:.0f} MB", "< 2048 MB", peak_mb < 2048),
        ("peak memory (app, restarted)", f"{restart_mb:.0f} MB", "(shown)", True),
        (f"TTFT p50 glassbox / relay ({SCRIPTED_TTFT_S}s upstream)", f"{ours:.3f}/{relay:.3f} = {ratio:.2f}",
         "<= 1.3", ratio <= 1.3),
        ("TTFT p50 without / with trace store", f"{without_store * 1000:.1f}/{with_store * 1000:.1f} ms",
         "(shown)", True),
    ])


if __name__ == "__main__":
    main()
