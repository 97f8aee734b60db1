"""Plain types shared by the knowledge base and the agent's events."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hit:
    """One chunk returned by a knowledge-base search."""

    source: str  # file name the chunk came from, e.g. "returns.md"
    chunk_id: str  # content-derived id, stable across re-ingests
    score: float  # similarity in [0, 1], higher is closer
    text: str
