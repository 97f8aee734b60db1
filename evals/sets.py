"""Evaluation sets: JSONL, one question a line with what a right answer contains; and the verdict.

    {"question": "How long can I return a faulty item?", "expected": ["45 days", "forty-five days"]}

`expected` is a string or a list of strings, any one of which a right answer contains as whole
words (case and spacing aside). Other keys are ignored (data/kb/eval.jsonl, the sample's own set, also keeps a source
document and a written right and wrong answer for bench/quality.py).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass

from chat.text import clean_text

MAX_QUESTIONS = 200  # an evaluation asks one question at a time; more would hold the model for long
MAX_QUESTION_CHARS = 2000
MAX_EXPECTED = 10
MAX_SET_BYTES = 1_000_000


class SetRefused(ValueError):
    """An evaluation set that can't be used; the message names the line and why, in our words."""


@dataclass(frozen=True)
class Question:
    """One question of a set, and the strings a right answer contains (any one of them)."""

    question: str
    expected: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """Return the question as JSON-ready data."""
        return {"question": self.question, "expected": list(self.expected)}


def read_set(text: str) -> list[Question]:
    """Read a JSONL evaluation set; refuse the whole set, naming the first bad line."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SET_BYTES:
        raise SetRefused(f"The set is over {MAX_SET_BYTES // 1_000_000} MB; split it into smaller sets.")
    questions = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            questions.append(_question(number, line))
        if len(questions) > MAX_QUESTIONS:
            raise SetRefused(f"The set has over {MAX_QUESTIONS} questions; split it into smaller sets.")
    if not questions:
        raise SetRefused("The set has no questions: write one JSON object a line, with question and expected.")
    return questions


def _question(number: int, line: str) -> Question:
    where = f"Line {number}"
    try:
        row = json.loads(line)
    except ValueError:
        raise SetRefused(f"{where} is not JSON; write one object a line, with question and expected.") from None
    if not isinstance(row, dict):
        raise SetRefused(f"{where} is not a JSON object with question and expected.")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise SetRefused(f"{where} has no question (a non-empty string).")
    if len(question) > MAX_QUESTION_CHARS:
        raise SetRefused(f"{where}: the question is over {MAX_QUESTION_CHARS:,} characters.")
    expected = row.get("expected")
    if isinstance(expected, str):
        expected = [expected]
    if (not isinstance(expected, list) or not expected or len(expected) > MAX_EXPECTED
            or not all(isinstance(e, str) and e.strip() for e in expected)):
        raise SetRefused(f"{where} needs expected: a string, or a list of up to {MAX_EXPECTED} strings, "
                         "that a right answer contains.")
    return Question(clean_text(question.strip()), tuple(clean_text(e.strip())[:200] for e in expected))


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"\s+", " ", text.replace("\u2011", "-").replace("\u2013", "-")).strip()


def passes(answer: str, expected: tuple[str, ...] | list[str]) -> bool:
    """Return whether the answer contains any of the expected strings as whole words, case and spacing aside.

    Whole words: "no" is not found in "knowledge", nor "45" in "450".
    """
    said = _normal(answer)
    return any(re.search(rf"(?<!\w){re.escape(_normal(e))}(?!\w)", said) for e in expected if e.strip())
