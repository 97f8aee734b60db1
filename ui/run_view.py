"""How one run reads in the Traces tab: its summary, a span's detail, two runs compared. Pure: data in, text out."""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

from chat.spans import Span
from ui.render import inert


def run_summary(run: dict[str, Any], spans: list[Span] = ()) -> str:
    phases = run.get("ttft_breakdown") or {}
    broken = " · ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in phases.items())
    agent, tokens = first_token_agent(spans), run.get("output_tokens") or 0
    broken += f" · first token from the {inert(agent)} agent" if broken and agent else ""
    return (f"**{inert(run['message'][:200])}**  \n"
            f"run `{run['id']}` · thread `{run['thread_id']}` · {run['status']} · {inert(run.get('model') or '')} · "
            f"knowledge base {inert(run.get('knowledge_base') or '–')} · grounding {run.get('grounding') or '–'}  \n"
            f"TTFT {ms(run['ttft_s'])} ms · latency {ms(run['latency_s'])} ms · "
            f"{tokens} token{'' if tokens == 1 else 's'}" + (f"  \nTTFT phases: {broken}" if broken else "")
            + (f"  \n📥 {inert(run['origin'])}: a copy of a run from another Glassbox" if run.get("origin") else ""))

def first_token_agent(spans: list[Span]) -> str:
    """The team agent whose span holds the run's first token; "" for a single agent's run."""
    first = min(((s.token_times()[0], s) for s in spans if s.token_times()),
                key=lambda pair: pair[0], default=None)
    by_id = {s.span_id: s for s in spans}
    span = first[1] if first else None
    while span is not None and span.kind != "agent":
        span = by_id.get(span.parent_span_id)
    return span.name if span is not None else ""


def first_token_ns(spans: list[Span]) -> int | None:
    times = [t for s in spans for t in s.token_times()]
    return min(times) if times else None

def span_json(span: Span) -> dict[str, Any]:
    """A span as the JSON view shows it; a model span's token times become the gaps between tokens."""
    detail = span.to_dict()
    times = span.token_times()
    if times and len(times) > 1:
        gaps = [(b - a) / 1e6 for a, b in zip(times, times[1:])]
        detail["attributes"]["inter_token_ms"] = {"p50": round(statistics.median(gaps), 2),
                                                  "max": round(max(gaps), 2), "gaps": [round(g, 2) for g in gaps[:200]]}
    return detail

def comparison_markdown(ids: list[str], result: dict[str, Any]) -> str:
    a, b = (f"`{i[:8]}`" for i in ids)
    words = " ".join(f"~~{inert(p['a'])}~~" if "a" in p else f"**{inert(p['b'])}**" if "b" in p else inert(p["same"])
                     for p in result["answer"])
    lines = [f"#### {a} against {b}", f"**Answer** (struck: only in {a}; bold: only in {b})\n\n{words or '–'}",
             "**Config that differs**", table(["key", a, b], [[c["key"], c["a"], c["b"]] for c in result["config"]])
             if result["config"] else "Nothing: the same config.",
             "**Timings (ms)**", table(["span", a, b], [[t["span"], t["a_ms"], t["b_ms"]] for t in result["timings"]]),
             "**Retrieval**", table(["source", "chunk", a, b, "delta"], [[r["source"], r["chunk_id"][:8], r["a"], r["b"],
                                                                           r["delta"]] for r in result["retrieval"]])
             if result["retrieval"] else "Neither run retrieved anything.",
             "**Tokens**", table(["", a, b], [[kind, (result["tokens"]["a"] or {}).get(kind),
                                                 (result["tokens"]["b"] or {}).get(kind)] for kind in ("input", "output")])]
    return "\n\n".join(lines)

def table(headers: list[str], rows: list[list[Any]]) -> str:
    cell = lambda value: "–" if value is None else inert(" ".join(str(value).split())).replace("|", "\\|")[:120]  # noqa: E731
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
                     + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])

def when(created_at: str) -> str:
    try:
        return datetime.fromisoformat(created_at).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return str(created_at)[:19]

def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
