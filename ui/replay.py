"""A stored run played back on the page: into the run view's own chat, or into the Chat tab's chat,
panel and charts. No model is called, nothing is stored, and the metrics count nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import gradio as gr
import pandas as pd

from chat.events import Event, RunEnded
from metrics.table import RunRow, frame_with
from traces.replay import SPEEDS, paced
from ui.activity import activity_html
from ui.panel import panel_html
from ui.render import TurnView, inert

REPLAY_SPEEDS = {"1×": "1", "5×": "5", "instant": "instant"}
FRAME_S = 0.05  # tokens are drawn at most this often, as in a live answer


@dataclass
class ReplayFrame:
    """What a replay shows at one moment: the chat's messages, the panel, and the run's end once played."""

    messages: list[gr.ChatMessage]
    panel: str
    events: list[Event]
    ended: RunEnded | None = None
    activity: str = ""  # a team run's "now working" line and progress bar (ui/activity.py)


async def replay_frames(run_id: str, events: list[Event], speed: str, level: str = "full trace"
                        ) -> AsyncIterator[ReplayFrame]:
    """Yield the run as it happened, labelled as a replay, at `speed` (a key of REPLAY_SPEEDS)."""
    opening = [gr.ChatMessage(role="assistant", content=f"⏯ **Replay** of run `{run_id[:8]}`, at {speed}: "
                              "no model is called, nothing is stored or counted.")]
    question = [gr.ChatMessage(role="user", content=inert(getattr(events[0], "message", "")))]
    view, last, ended = TurnView(), 0.0, None
    async for event in paced(events, SPEEDS[REPLAY_SPEEDS.get(speed, "1")]):
        view.add(event)
        ended = event if isinstance(event, RunEnded) else ended
        if event.type != "token" or time.monotonic() - last >= FRAME_S:
            last = time.monotonic()
            yield ReplayFrame(opening + question + view.messages(), panel_html(view.events, level), view.events,
                              activity=activity_html(view))
    yield ReplayFrame(opening + question + view.messages(), panel_html(view.events, level), view.events, ended,
                      activity_html(view))


def charts_with_replay(frame: pd.DataFrame, ended: RunEnded, question: str) -> pd.DataFrame:
    """The charts' runs with the replayed one added as a point of its own, marked in its tooltip."""
    return frame_with(frame, RunRow(datetime.now(), ended.ttft_s, ended.latency_s, ended.output_tokens,
                                    ended.tool_calls, ended.status, f"⏯ replay: {question}", ended.run_id))
