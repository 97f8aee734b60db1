"""A stored run played back with its original timing: no model is called, nothing is stored or counted.

The page's replay and POST /api/runs/{id}/replay both read the run's events through `paced`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from chat.events import Event

SPEEDS = {"1": 1.0, "5": 5.0, "instant": 0.0}
MAX_GAP_S = 5.0  # a long pause (a person deciding an approval) plays as at most this, before speed-up


async def paced(events: list[Event], speed: float) -> AsyncIterator[Event]:
    """Yield the events with the gaps they had, `speed` times faster (0: all at once)."""
    previous: float | None = None
    for event in events:
        at = event.ts / 1e9 if event.ts else event.at
        if previous is not None and speed > 0:
            await asyncio.sleep(min(max(at - previous, 0.0), MAX_GAP_S) / speed)
        previous = at
        yield event
