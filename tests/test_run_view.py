"""The Traces tab's summary of one run (the tab itself: tests/test_browser.py)."""

from __future__ import annotations

import pytest

from ui.run_view import run_summary


@pytest.mark.parametrize(("tokens", "says"), [(1, "1 token"), (0, "0 tokens"), (20, "20 tokens")])
def test_the_summary_counts_tokens_in_words(tokens: int, says: str) -> None:
    run = {"id": "r1", "thread_id": "t1", "message": "hi", "status": "completed", "ttft_s": 0.01,
           "latency_s": 0.02, "output_tokens": tokens}

    assert f"ms · {says}" in run_summary(run)
