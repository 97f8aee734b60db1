"""Why input does not fit, in our words: every kind of pydantic error the API and the tools can meet."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chat.config import ID_PATTERN
from chat.invalid_input import problem, where


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thread_id: str = Field("t", pattern=ID_PATTERN)
    message: str = Field("hi", min_length=1, max_length=10)
    limit: int = Field(1, ge=1, le=100)
    score: float = 0.5
    events: list[Literal["token", "done"]] = Field(default_factory=list, max_length=2)
    options: dict = Field(default_factory=dict)
    seq: int | None = None

    @field_validator("seq", mode="before")
    @classmethod
    def _not_a_flag(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("is an event's number, not true or false")
        return value


def described(**fields: object) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        Request(**fields)
    return [f"{where(item)} {problem(item)}" for item in raised.value.errors()]


@pytest.mark.parametrize(("fields", "says"), [
    ({"thread_id": "../x"}, "thread_id must be an id: letters, digits, - and _, at most 128"),
    ({"message": ""}, "message is empty"),
    ({"message": "x" * 11}, "message is too long (at most 10 characters)"),
    ({"limit": 0}, "limit must be at least 1"),
    ({"limit": 101}, "limit must be at most 100"),
    ({"limit": "many"}, "limit must be a whole number"),
    ({"limit": 1.5}, "limit must be a whole number"),
    ({"score": "high"}, "score must be a number"),
    ({"events": ["tokens"]}, "events.0 must be one of 'token' or 'done'"),
    ({"events": ["token"] * 3}, "events has too many items (at most 2)"),
    ({"events": "token"}, "events must be a list"),
    ({"options": []}, "options must be a JSON object"),
    ({"seq": True}, "seq is an event's number, not true or false"),
    ({"colour": "red"}, "colour is not one this accepts"),
])
def test_each_problem_is_said_in_our_words(fields: dict, says: str) -> None:
    problems = described(**fields)

    assert problems == [says]
    assert not any(word in problems[0] for word in ("should", "Input", "pattern", "^", "Value error"))


def test_a_bound_given_nan_says_it_must_be_finite() -> None:
    class Filter(BaseModel):
        min_s: float = Field(0, ge=0, le=1_000_000)

    with pytest.raises(ValidationError) as raised:
        Filter(min_s="nan")

    assert [problem(item) for item in raised.value.errors()] == ["must be a finite number"]


def test_an_error_with_no_place_is_about_the_input() -> None:
    assert where({"type": "missing", "loc": ()}) == "the input"
    assert where({"type": "dict_type", "loc": ("body",)}, "the request body") == "the request body"
    assert problem({"type": "some_future_kind"}) == "is not valid"


def test_a_lone_surrogate_from_json_is_said_in_our_words() -> None:
    assert described(message="a\ud800") == [  # json.loads decodes "\\ud800" to this; pydantic refuses it
        "message is not valid Unicode text (it holds a lone surrogate such as \\ud800)"]
