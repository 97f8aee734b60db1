"""Gradio sessions that copy a component's configuration when the session first uses it.

Gradio 6 starts every new session (a page load, or a `/gradio_api/call/ask` call without a
`session_hash`) by rendering the configuration of every component on the page
(`SessionState.config_values`), ~0.1 ms each: 17 ms for this page's 188 components, on the event
loop, for each new caller. The snapshot is read whole only to make a deep link
(`/gradio_api/deep_link`, `gr.DeepLinkButton`, which this page does not use); everything else
reads or updates one component at a time and already fills in a missing one. So the session
starts empty, fills in a component when an event touches it, and completes the snapshot if a deep
link is ever asked for: the same data, computed when needed (bench/load.py, README "Load").
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from copy import copy
from typing import Any

import gradio.state_holder
from gradio.state_holder import SessionState


class LazySessionState(SessionState):
    """A Gradio session whose per-component configurations are made on first use."""

    def __init__(self, blocks: gradio.Blocks) -> None:
        # SessionState.__init__ without its eager snapshot; tests/test_sessions.py checks that the
        # fields stay those of Gradio's own, so an upgrade that adds one fails there, not in use.
        self.blocks_config = copy(blocks.default_config)
        self.config_values: dict[int, dict] = {}
        self.state_data: dict[int, Any] = {}
        self._state_ttl: dict[int, tuple] = {}
        self.is_closed = False
        self.STATE_TTL_WHEN_CLOSED = 1 if os.getenv("GRADIO_IS_E2E_TEST", None) else 3600
        self._page_blocks = blocks.blocks

    @property
    def components(self) -> Iterator[dict]:
        """Every component's configuration, as Gradio's eager snapshot would have it (deep links)."""
        for key, block in self.blocks_config.blocks.items():
            if key in self._page_blocks and key not in self.config_values:
                self.config_values[key] = self.blocks_config.config_for_block(key, [], block)
        yield from super().components


def use_lazy_sessions() -> None:
    """Make Gradio's session store start new sessions lazily (idempotent)."""
    gradio.state_holder.SessionState = LazySessionState
