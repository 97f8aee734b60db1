"""The local model writes only the numbers its prompt gives: the logits processor, on a toy vocabulary."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from chat.config import Settings, SettingsError
from chat.given_numbers import GivenNumbersOnly, NumberVocabulary, given_numbers

# A toy vocabulary: single characters, two multi-digit tokens and sentence ends, as a real one has.
TOKENS = [*"abcdefghijklmnopqrstuvwxyz $", *"0123456789", *".,:/-", "12", "25 ", ". ", ".\n", "<eos>"]
ID = {token: i for i, token in enumerate(TOKENS)}


def detokenize(ids: list[int]) -> bytes:
    return "".join(TOKENS[i] for i in ids).encode()


def processor(*facts: str) -> GivenNumbersOnly:
    return GivenNumbersOnly(given_numbers(facts), NumberVocabulary(TOKENS), detokenize)


def allowed_after(numbers: GivenNumbersOnly, answer: str, prompt: str = "q ") -> set[str]:
    """Return the tokens the processor leaves possible after the model has written `answer`."""
    numbers = copy.copy(numbers)  # a processor serves one generation; this one is yet unused
    ids = [ID[c] for c in prompt]
    numbers(np.array(ids, dtype=np.intc), np.zeros(len(TOKENS), dtype=np.single))  # the first call: the prompt
    for written in range(1, len(answer)):  # one token a call, as llama.cpp samples
        numbers(np.array(ids + [ID[c] for c in answer[:written]], dtype=np.intc), np.zeros(len(TOKENS), dtype=np.single))
    scores = numbers(np.array(ids + [ID[c] for c in answer], dtype=np.intc), np.zeros(len(TOKENS), dtype=np.single))
    return {TOKENS[i] for i in np.flatnonzero(np.isfinite(scores))}


FINE = "Overdue books cost $0.25 per day, up to a maximum of $5 per item."


def test_numbers_are_read_as_written() -> None:
    assert given_numbers(["Call 1-800-555-0142 from 8:30 to 5, $4.99 or 1,000 points."]) == {
        "1-800-555-0142", "8:30", "5", "4.99", "1,000"}


def test_a_number_may_only_begin_as_a_given_one_does() -> None:
    after = allowed_after(processor(FINE), "it costs $")

    assert {"0", "5"} <= after and not after & {"1", "2", "3", "4", "6", "7", "8", "9", "12", "25 "}
    assert {"a", " ", ".", "<eos>"} <= after  # words and punctuation are the model's own


def test_a_number_once_begun_is_written_out_whole() -> None:
    assert allowed_after(processor(FINE), "it costs $0.2") == {"5"}  # nothing else, not even an end
    assert allowed_after(processor(FINE), "it costs $0") == {"."}


def test_a_whole_number_ends_where_it_ends() -> None:
    after = allowed_after(processor(FINE), "it costs $0.25")

    assert not after & set("0123456789") and {" ", ".", ". ", ".\n", "<eos>", "a"} <= after


def test_a_given_number_may_go_on_to_a_longer_given_one() -> None:
    numbers = processor("Rooms seat 1 to 12 people; call 12:30.")

    assert {"2", "<eos>", " "} <= allowed_after(numbers, "up to 1")
    assert allowed_after(numbers, "at 12:") & {*"0123456789", "12", "25 "} == {"3"}  # or "12" and a colon
    assert "12" in allowed_after(numbers, "up to ") and "25 " not in allowed_after(numbers, "up to ")


def test_no_given_numbers_means_no_numbers() -> None:
    after = allowed_after(processor("Opening hours are on the website."), "we open at ")

    assert not after & {*"0123456789", "12", "25 "} and "a" in after


def test_numbers_in_the_question_and_the_instructions_are_given_too() -> None:
    numbers = processor("Children under 13 need a parent.", "Can my 11-year-old sign up?")

    assert {"1"} <= allowed_after(numbers, "your ") and allowed_after(numbers, "your 1") == {"1", "3"}


@pytest.mark.parametrize(("value", "on"), [("", True), ("1", True), ("0", False), ("false", False), ("on", True)])
def test_the_setting_reads_as_a_switch(value: str, on: bool) -> None:
    assert Settings.from_env({"LOCAL_GIVEN_NUMBERS_ONLY": value}).local_given_numbers_only is on


def test_a_bad_switch_is_refused_in_our_words() -> None:
    with pytest.raises(SettingsError, match="LOCAL_GIVEN_NUMBERS_ONLY must be 1 or 0"):
        Settings.from_env({"LOCAL_GIVEN_NUMBERS_ONLY": "maybe"})


def test_a_number_longer_than_the_processor_reads_is_left_to_the_model() -> None:
    long = "1234567890" * 30  # 300 digits: the processor keeps the answer's last 256 bytes

    after = allowed_after(processor(f"The code is {long}."), "it is " + long[:290])

    assert after == set(TOKENS)  # it cannot tell where the number began, so it bans nothing
