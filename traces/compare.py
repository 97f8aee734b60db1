"""Two runs side by side: what differed in their config, answers, timings, retrievals and tokens.

Pure: two runs' events in, one JSON-ready comparison out, for GET /api/runs/compare and the
Traces tab alike.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from chat.events import Event, RetrievalHits, RunEnded, RunStarted
from chat.spans import span_tree

_WORDS = re.compile(r"\S+")


def compare_runs(a: list[Event], b: list[Event]) -> dict[str, Any]:
    """Compare run `a` with run `b` (each its events, in order)."""
    return {
        "config": config_diff(_config(a), _config(b)),
        "answer": answer_diff(_end(a).answer if _end(a) else "", _end(b).answer if _end(b) else ""),
        "timings": _timings(a, b),
        "retrieval": retrieval_diff(a, b),
        "tokens": {side: {"input": end.input_tokens, "output": end.output_tokens} if end else None
                   for side, end in (("a", _end(a)), ("b", _end(b)))},
    }


def config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Every config key whose value differs, flattened ("parameters.top_k")."""
    flat_a, flat_b = _flatten(a), _flatten(b)
    return [{"key": key, "a": flat_a.get(key), "b": flat_b.get(key)}
            for key in sorted(set(flat_a) | set(flat_b)) if flat_a.get(key) != flat_b.get(key)]


def answer_diff(a: str, b: str) -> list[dict[str, str]]:
    """The answers word by word: runs of words both share, and what each has alone."""
    words_a, words_b = _WORDS.findall(a), _WORDS.findall(b)
    parts: list[dict[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=words_a, b=words_b, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append({"same": " ".join(words_a[i1:i2])})
        else:
            if i2 > i1:
                parts.append({"a": " ".join(words_a[i1:i2])})
            if j2 > j1:
                parts.append({"b": " ".join(words_b[j1:j2])})
    return parts


def retrieval_diff(a: list[Event], b: list[Event]) -> list[dict[str, Any]]:
    """Each chunk either run retrieved: its source, which runs got it, and its scores (and their delta)."""
    hits_a, hits_b = _hits(a), _hits(b)
    rows = []
    for chunk_id in sorted(set(hits_a) | set(hits_b), key=lambda c: -max(hits_a.get(c, (0, ""))[0],
                                                                       hits_b.get(c, (0, ""))[0])):
        score_a, score_b = hits_a.get(chunk_id, (None, ""))[0], hits_b.get(chunk_id, (None, ""))[0]
        source = (hits_a.get(chunk_id) or hits_b.get(chunk_id))[1]
        rows.append({"chunk_id": chunk_id, "source": source, "a": score_a, "b": score_b,
                     "delta": None if score_a is None or score_b is None else round(score_b - score_a, 4)})
    return rows


def _timings(a: list[Event], b: list[Event]) -> list[dict[str, Any]]:
    """Each span name's duration in each run (the first of a name, then #2, #3 ...), in ms."""
    def durations(events: list[Event]) -> dict[str, float]:
        found: dict[str, float] = {}
        for span in span_tree(events):
            key, n = f"{span.kind}: {span.name}", 2
            while key in found:
                key, n = f"{span.kind}: {span.name} #{n}", n + 1
            found[key] = round((span.end_ns - span.start_ns) / 1e6, 3)
        return found

    da, db = durations(a), durations(b)
    rows = [{"span": key, "a_ms": da.get(key), "b_ms": db.get(key)} for key in dict.fromkeys([*da, *db])]
    ttft = [None if end is None or end.ttft_s is None else round(end.ttft_s * 1000, 3) for end in (_end(a), _end(b))]
    return [{"span": "ttft", "a_ms": ttft[0], "b_ms": ttft[1]}, *rows]


def _config(events: list[Event]) -> dict[str, Any]:
    start = next((e for e in events if isinstance(e, RunStarted)), None)
    if start is None:
        return {}
    return {"model": start.model, "knowledge_base": start.knowledge_base,
            "knowledge_fingerprint": start.knowledge_fingerprint, **start.config}


def _end(events: list[Event]) -> RunEnded | None:
    return next((e for e in reversed(events) if isinstance(e, RunEnded)), None)


def _hits(events: list[Event]) -> dict[str, tuple[float, str]]:
    hits: dict[str, tuple[float, str]] = {}
    for event in events:
        if isinstance(event, RetrievalHits):
            for hit in event.hits:
                if hit.chunk_id not in hits or hit.score > hits[hit.chunk_id][0]:
                    hits[hit.chunk_id] = (hit.score, hit.source)
    return hits


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
