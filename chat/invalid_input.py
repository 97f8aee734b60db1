"""Why some input does not fit its schema, in our words: for the API's 422s and the tools' refusals.

Built from pydantic's structured `errors()`, never its text: that text is the library's ("String
should match pattern '^[A-Za-z0-9_-]{1,128}$'"), echoes the input (a model's words, perhaps the
user's) and links to pydantic's documentation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from chat.config import ID_PATTERN, ISO_TIME, KB_NAME_PATTERN

# What each pattern a field must match asks for, said plainly.
FORMS = {
    ID_PATTERN: "must be an id: letters, digits, - and _, at most 128",
    KB_NAME_PATTERN: "must be a knowledge base's name: lowercase letters, digits, - and _",
    ISO_TIME: "must be an ISO 8601 date or time, such as 2026-11-23 or 2026-11-23T09:30:00Z",
    r"\S": "must not be blank",
}
_BOUNDS = {"greater_than_equal": ("ge", "at least"), "less_than_equal": ("le", "at most"),
           "greater_than": ("gt", "more than"), "less_than": ("lt", "less than")}
_TYPES = {"int": "a whole number", "float": "a number", "bool": "true or false", "string": "text",
          "list": "a list", "dict": "a JSON object", "model": "a JSON object"}


def where(item: Mapping, whole: str = "the input") -> str:
    """Return the field an error is about, as "events.0" ("body" is left out), or `whole`."""
    return ".".join(str(part) for part in item.get("loc", ()) if part != "body") or whole


def problem(item: Mapping) -> str:
    """Return what is wrong with one field, from one of pydantic's structured errors: "is missing"."""
    kind, ctx = item.get("type", ""), item.get("ctx") or {}
    if kind == "missing":
        return "is missing"
    if kind == "extra_forbidden":
        return "is not one this accepts"
    if kind == "string_unicode":  # JSON can decode "\\ud800" to text no store can hold
        return "is not valid Unicode text (it holds a lone surrogate such as \\ud800)"
    if kind == "string_too_short":
        return "is empty" if ctx.get("min_length") == 1 else f"is too short (at least {ctx.get('min_length')} characters)"
    if kind == "string_too_long":
        return f"is too long (at most {ctx.get('max_length')} characters)"
    if kind == "too_short":
        return f"has too few items (at least {ctx.get('min_length')})"
    if kind == "too_long":
        return f"has too many items (at most {ctx.get('max_length')})"
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected')}"  # our own Literal's or Enum's values
    if kind == "string_pattern_mismatch":
        return FORMS.get(ctx.get("pattern", ""), "is not in the form it takes")
    if kind in _BOUNDS:
        if not _finite(item.get("input")):
            return "must be a finite number"
        key, words = _BOUNDS[kind]
        return f"must be {words} {ctx.get(key)}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind == "value_error" and isinstance(ctx.get("error"), ValueError):
        return str(ctx["error"])  # raised by our own validators, in our words
    for prefix, expected in _TYPES.items():
        if kind.startswith(f"{prefix}_") and kind.endswith(("_type", "_parsing", "_from_float")):
            return f"must be {expected}"
    if kind.endswith("_type"):
        return "has the wrong type"
    return "is not valid"


def _finite(value: object) -> bool:
    """Return whether a bound's input reads as a finite number ("nan" and "inf" do not)."""
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return True  # not a number at all: its bound is what is wrong
