"""An evaluation's figures, and two evaluations side by side: pure functions of stored items."""

from __future__ import annotations

from typing import Any

from traces.compare import config_diff

FIGURES = ("accuracy", "grounding_rate", "ttft_p50_s", "ttft_p95_s", "latency_p50_s", "latency_p95_s")


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (0 < share <= 1), or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(share * 1000) * len(ordered) // 1000))  # ceil, without float surprises
    return ordered[min(rank, len(ordered)) - 1]


def summarize(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, grounding rate and TTFT / latency p50 and p95 over the questions answered so far.

    Grounding rate: of the answers the check could judge (grounded or unsupported), the share it found grounded.
    """
    done = [item for item in items if item.get("passed") is not None]
    judged = [item for item in done if item.get("grounding") in ("grounded", "unsupported")]
    ttft = [item["ttft_s"] for item in done if item.get("ttft_s") is not None]
    latency = [item["latency_s"] for item in done if item.get("latency_s") is not None]
    passed = sum(1 for item in done if item["passed"])
    return {
        "total": len(items), "done": len(done), "passed": passed,
        "accuracy": passed / len(done) if done else None,
        "grounding_rate": (sum(1 for item in judged if item["grounding"] == "grounded") / len(judged)
                           if judged else None),
        "ttft_p50_s": percentile(ttft, 0.5), "ttft_p95_s": percentile(ttft, 0.95),
        "latency_p50_s": percentile(latency, 0.5), "latency_p95_s": percentile(latency, 0.95),
    }


def with_summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    """An evaluation as the API and the page show it: its figures beside its questions."""
    counts = ("total", "done", "passed")
    return {**{k: v for k, v in evaluation.items() if k not in counts}, "summary": summarize(evaluation["items"])}


def compare_evals(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two evaluations side by side: figures and their change, settings that differ, each question's verdicts."""
    sa, sb = summarize(a["items"]), summarize(b["items"])
    figures = [{"figure": name, "a": sa[name], "b": sb[name],
                "change": None if sa[name] is None or sb[name] is None else sb[name] - sa[name]} for name in FIGURES]
    by_question = {item["question"]: item for item in b["items"]}
    questions = []
    for item in a["items"]:
        other = by_question.pop(item["question"], None)
        questions.append(_row(item, other))
    questions += [_row(None, other) for other in by_question.values()]
    return {"a": _head(a), "b": _head(b), "figures": figures, "settings": config_diff(a.get("config") or {},
                                                                                      b.get("config") or {}),
            "questions": questions,
            "fixed": sum(1 for q in questions if q["a"] is False and q["b"] is True),
            "broken": sum(1 for q in questions if q["a"] is True and q["b"] is False)}


def _head(evaluation: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "name", "knowledge_base", "set_name", "status", "created_at")
    return {key: evaluation.get(key) for key in keys}


def _row(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    either = a or b or {}
    return {"question": either.get("question"), "a": a.get("passed") if a else None,
            "b": b.get("passed") if b else None, "a_run": a.get("run_id") if a else None,
            "b_run": b.get("run_id") if b else None}
