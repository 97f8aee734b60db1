"""What the team graph costs over the single agent, on the scripted OpenAI-compatible model.

    python -m bench.team                  # 30 questions each, 50 ms upstream TTFT, 20 tokens
    python -m bench.team --rounds 60 --ttft 0.2

One process: the scripted model (bench/scripted_openai.py) behind the real ChatOpenAI client, and one
AgentService answering the same question with AGENT_GRAPH=support and =team, alternating, so drifts
in machine load hit both alike. The team makes more model calls (the coordinator's routing call, the
specialists', the primary agent's synthesis), so it costs what those calls cost: this says how much.
Figures, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from bench.run import percentile
from bench.scripted_openai import Script, ScriptedServer

QUESTION = "How much is a refund of $120 - 15% for a faulty item?"


async def measure(base_url: str, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Answer QUESTION `rounds` times with each graph; return TTFT and latency (s) and who spoke first."""
    from chat.components import Components
    from chat.config import Settings
    from chat.models import build_chat_model
    from chat.service import AgentService
    from chat.tickets import TicketStore
    from chat.tools import build_tools
    from rag.types import Hit

    class Facts:
        def search(self, query: str, k: int) -> list[Hit]:
            return [Hit("returns.md", "c1", 0.9, "Faulty items can be returned within 45 days for a refund.")]

    settings = Settings.from_env({"OPENAI_BASE_URL": base_url, "OPENAI_MODEL": "scripted"})
    model, name = build_chat_model(settings)
    state = Path(tempfile.mkdtemp(prefix="glassbox-bench-team-"))
    tools = build_tools(lambda _name: Facts(), TicketStore(state / "tickets.sqlite3"), top_k=settings.rag_top_k)
    service = AgentService(lambda: Components(model, name, tools))
    service.warm_up()
    results: dict[str, dict[str, list[float]]] = {g: {"ttft": [], "latency": [], "calls": []} for g in ("support", "team")}
    for index in range(rounds + 1):
        for graph in ("support", "team"):
            events = [e async for e in service.stream(QUESTION, f"{graph}-{index}", agent_graph=graph)]
            end = events[-1]
            if index == 0 or end.status != "completed" or end.ttft_s is None:
                continue  # the first round warms the client's connections
            results[graph]["ttft"].append(end.ttft_s)
            results[graph]["latency"].append(end.latency_s)
            results[graph]["calls"].append(sum(e.type == "model_start" for e in events))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--ttft", type=float, default=0.05, help="the scripted model's time to first chunk")
    parser.add_argument("--tokens", type=int, default=20, help="tokens in each scripted reply")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between the scripted tokens")
    args = parser.parse_args(argv)
    script = Script(reply=" ".join(f"word{i}" for i in range(args.tokens)), ttft_s=args.ttft,
                    token_interval_s=args.interval)
    with ScriptedServer(script) as server:
        results = asyncio.run(measure(server.base_url, args.rounds))
    print(f"{args.rounds} answers per graph, scripted model: {args.ttft * 1000:.0f} ms to first chunk, "
          f"{args.tokens} tokens {args.interval * 1000:.0f} ms apart")
    print(f"{'graph':10}{'calls':>7}{'TTFT p50':>10}{'TTFT p95':>10}{'lat p50':>10}{'lat p95':>10}   (ms)")
    for graph, figures in results.items():
        print(f"{graph:10}{statistics.mean(figures['calls']):>7.1f}" + "".join(
            f"{percentile(figures[key], q) * 1000:>10.1f}" for key in ("ttft", "latency") for q in (50, 95)))
    for key, label in (("ttft", "TTFT"), ("latency", "latency")):
        extra = (percentile(results["team"][key], 50) - percentile(results["support"][key], 50)) * 1000
        ratio = percentile(results["team"][key], 50) / percentile(results["support"][key], 50)
        print(f"team over support, {label} p50: +{extra:.1f} ms ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
