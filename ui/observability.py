"""The observability panel's figures: the warm-up badge, charts, counters and targets."""

from __future__ import annotations

from typing import Any

import gradio as gr
from prometheus_client import CollectorRegistry

from chat.service import AgentService
from metrics.counters import counters_markdown
from metrics.summary import summary, targets
from metrics.table import RunTable


def status_markdown(service: AgentService) -> str:
    """Return the warm-up badge: warming up, ready (with model and store size), or failed."""
    if service.status == "ready" and service.components:
        c = service.components
        return f"**● ready** · {c.model_name} · {c.knowledge_chunks} chunks · ready in {service.ready_after_s:.1f} s"
    if service.status == "warming up":
        return "**◌ warming up…** loading the model, embeddings and knowledge base"
    return f"**✖ {service.status}**"


def observe(
    service: AgentService, table: RunTable, registry: CollectorRegistry, drawn: int | None
) -> tuple[Any, ...]:
    """Return the badge, TTFT and latency chart data, counters, targets, and what is now drawn.

    Charts and targets are sent only when a run has finished since they were last drawn
    (`drawn`, from the session): redrawing unchanged charts every tick makes them flicker.
    """
    version = table.runs_recorded  # read before the frame, so a run added meanwhile is redrawn next tick
    if version == drawn:
        charts: tuple[Any, ...] = (gr.skip(), gr.skip(), gr.skip())
    else:
        frame = table.frame()
        completed = frame[frame["status"] == "completed"]
        charts = (frame, frame, targets(summary(completed)))
    return status_markdown(service), charts[0], charts[1], counters_markdown(registry), charts[2], version
