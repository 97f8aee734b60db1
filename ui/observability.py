"""The observability panel's figures: the warm-up badge, charts, counters and targets."""

from __future__ import annotations

import pandas as pd
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
    service: AgentService, table: RunTable, registry: CollectorRegistry
) -> tuple[str, pd.DataFrame, pd.DataFrame, str, pd.DataFrame]:
    """Return the badge, the TTFT and latency chart data, the counters and the targets table."""
    frame = table.frame()
    completed = frame[frame["status"] == "completed"]
    return status_markdown(service), frame, frame, counters_markdown(registry), targets(summary(completed))
