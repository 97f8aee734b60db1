"""Fitting a conversation into the local model's context window."""

from __future__ import annotations

import pytest

from chat.local_model import ContextTooSmall, fit_to_context

TURNS = [{"role": r, "content": c} for r, c in
         [("system", "facts"), ("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2"), ("user", "q3")]]


def test_everything_is_kept_when_it_fits():
    payload, total = fit_to_context(TURNS, [10] * 6, budget=60)
    assert payload == TURNS and total == 60


def test_the_oldest_turns_go_first_and_the_system_prompt_and_question_stay():
    payload, total = fit_to_context(TURNS, [10] * 6, budget=35)
    assert [m["content"] for m in payload] == ["facts", "a2", "q3"] and total == 30


def test_a_message_too_long_for_the_context_says_so():
    with pytest.raises(ContextTooSmall, match="shorter message or raise LOCAL_N_CTX"):
        fit_to_context(TURNS, [10, 10, 10, 10, 10, 500], budget=100)
