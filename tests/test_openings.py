"""How the local model's answer opens (chat/openings.py): "No" where its facts deny a yes, else the fact's
first words. Without the model."""

from __future__ import annotations

import numpy as np
import pytest

from chat.config import Settings
from chat.grounding import yes_is_denied
from chat.openings import FACT_OPENING_WORDS, answer_opening, fact_opening
from chat.prompts import system_prompt

EASTSIDE = "Eastside Branch: The Eastside Branch is closed on Sundays and Mondays all year round."
HEADPHONES = "Change of mind: Opened headphones and earbuds cannot be returned for a change of mind, for hygiene reasons."
NO = 7


def tokenize(text: bytes) -> list[int]:
    return [NO] if text == b"No" else [1, 2]


def forced(rule, steps: int) -> list[int]:
    """Return the tokens the rule leaves the model, step by step, from scores that favour token 0."""
    chosen = []
    for _ in range(steps):
        scores = rule(np.array(chosen or [0]), np.array([9.0, 1.0, 0.5, 0.1, 0.0, 2.0, 3.0, -1.0, 4.0]))
        chosen.append(int(np.argmax(scores)))
    return chosen


def chat(question: str, *facts: str) -> list[dict]:
    return [{"role": "system", "content": system_prompt(list(facts))}, {"role": "user", "content": question}]


@pytest.mark.parametrize(("question", "fact", "denied"), [
    ("Is the Eastside Branch open on Mondays?", EASTSIDE, True),
    ("Can I return opened headphones?", HEADPHONES, True),
    ("Is the Eastside Branch open on Tuesdays?", EASTSIDE, False),  # the fact says nothing against it
    ("Can I return opened headphones if they are faulty?", HEADPHONES, False),  # a case the denial may not cover
    ("Can I return opened headphones or earbuds?", HEADPHONES, False),  # a choice, not a yes/no
    ("Can't I return opened headphones?", HEADPHONES, False),  # "no" would agree, "yes" deny: no reading
    ("How long is the Eastside Branch closed?", EASTSIDE, False),  # no yes/no question
])
def test_a_yes_is_denied_only_where_the_fact_says_the_question_s_statement_is_false(question, fact, denied):
    assert yes_is_denied(question, [fact]) is denied


def test_the_answer_opens_with_no_where_a_yes_is_denied():
    rule = answer_opening(chat("Is the Eastside Branch open on Mondays?", EASTSIDE), tokenize, from_fact=False)
    first = rule(np.array([1, 2, 3]), np.array([5.0, 1.0, 0.5, 0.1, 0.0, 2.0, 3.0, -1.0, 4.0]))
    assert int(np.argmax(first)) == NO and np.isneginf(np.delete(first, NO)).all()
    later = np.array([5.0, 1.0, 0.5, 0.1, 0.0, 2.0, 3.0, -1.0, 4.0])
    assert (rule(np.array([1, 2, 3, NO]), later.copy()) == later).all()  # the rest is the model's


@pytest.mark.parametrize("payload", [
    chat("Is the Eastside Branch open on Tuesdays?", EASTSIDE),  # not denied
    chat("Is the Eastside Branch open on Mondays?"),  # no facts
    [{"role": "user", "content": "Is the Eastside Branch open on Mondays?"}],  # no system prompt
    chat("Is the Eastside Branch open on Mondays?", EASTSIDE) + [{"role": "tool", "content": "x"}],
])
def test_no_rule_where_nothing_denies_a_yes(payload):
    assert answer_opening(payload, tokenize, from_fact=False) is None


def test_a_no_of_two_tokens_is_not_forced_half_written():
    two_tokens = lambda text: [3, 4]  # noqa: E731
    assert answer_opening(chat("Is the Eastside Branch open on Mondays?", EASTSIDE), two_tokens, from_fact=False) is None
    # The fact's words open it instead.
    assert answer_opening(chat("Is the Eastside Branch open on Mondays?", EASTSIDE), two_tokens).words == \
        "The Eastside Branch is"


def test_hostile_questions_and_facts_give_no_rule_and_no_error():
    for question, fact in (("\ud800" * 10_000 + "?", "\x00" * 100), ("?" * 100_000, "<fact>" * 1000)):
        assert answer_opening(chat(question, fact), tokenize, from_fact=False) is None


@pytest.mark.parametrize(("value", "on"), [("", True), ("1", True), ("0", False)])
def test_the_setting_reads_as_a_switch(value: str, on: bool) -> None:
    assert Settings.from_env({"LOCAL_NO_DENIED_YES": value}).local_no_denied_yes is on


@pytest.mark.parametrize(("fact", "opening"), [
    ("Whitening: An in-chair whitening session takes 90 minutes and costs $350.", "An in-chair whitening session"),
    ("Cancelling or rescheduling: Please give us at least 48 hours' notice.", "Please give us at"),
    ("Payment methods: Your card is charged only when your order ships.", "Your card is charged"),
    ("A line with no heading at all.", "A line with no"),  # no heading to leave out
    ("Too many words before the colon to be a heading: this one.", "Too many words before"),
    ("Short: two", "two"),  # fewer words than the opening takes
    ("Heading only:", "Heading only:"),  # nothing after the heading: the whole of it
])
def test_the_opening_is_the_facts_first_words_after_its_heading(fact: str, opening: str) -> None:
    assert fact_opening(fact) == opening and len(opening.split()) <= FACT_OPENING_WORDS


def test_the_answer_opens_with_the_facts_tokens_then_the_model_goes_on():
    rule = answer_opening(chat("How much does whitening in the chair cost?", "Whitening: An in-chair session."),
                          lambda text: [5, 8] if text == b"An in-chair session." else [], say_no=False)
    assert rule.words == "An in-chair session."
    assert forced(rule, 3) == [5, 8, 0]  # the fact's tokens even against the model's scores, then its own choice


def test_a_denied_yes_opens_with_no_rather_than_the_fact():
    rule = answer_opening(chat("Is the Eastside Branch open on Mondays?", EASTSIDE), tokenize)
    assert rule.words == "No" and forced(rule, 2) == [NO, 0]


@pytest.mark.parametrize("payload", [
    chat("How long is it open?"),  # no facts
    [{"role": "user", "content": "How long is it open?"}],  # no system prompt
    chat("How long is it open?", EASTSIDE) + [{"role": "tool", "content": "x"}],  # a tool's result, not the user
])
def test_no_fact_opening_without_a_fact_to_open_from(payload):
    assert answer_opening(payload, tokenize, say_no=False) is None


def test_the_fact_opening_reads_as_a_switch() -> None:
    assert Settings.from_env({}).local_fact_opening is True
    assert Settings.from_env({"LOCAL_FACT_OPENING": "0"}).local_fact_opening is False
