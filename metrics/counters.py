"""Read the running totals back from the registry, for the observability panel."""

from __future__ import annotations

from prometheus_client import CollectorRegistry


def counter_totals(registry: CollectorRegistry) -> dict[str, float]:
    """Return requests, errors, tool calls (summed over labels) and active streams."""
    totals = {"requests": 0.0, "errors": 0.0, "tool_calls": 0.0, "active_streams": 0.0}
    names = {
        "agent_requests_total": "requests",
        "agent_errors_total": "errors",
        "agent_tool_invocations_total": "tool_calls",
        "agent_active_streams": "active_streams",
    }
    for family in registry.collect():
        for sample in family.samples:
            if sample.name in names:
                totals[names[sample.name]] += sample.value
    return totals


def counters_markdown(registry: CollectorRegistry) -> str:
    """Return the totals as one Markdown line."""
    t = counter_totals(registry)
    return (f"**Requests** {t['requests']:.0f} · **Errors** {t['errors']:.0f} · "
            f"**Tool calls** {t['tool_calls']:.0f} · **Active streams** {t['active_streams']:.0f}")
