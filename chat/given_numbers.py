"""Let a local model write only the numbers it was given.

SmolLM2-135M reads "Overdue books cost $0.25 per day" and answers "$2.50 per day": it keeps the
shape of the fact and loses its digits. This llama.cpp logits processor stops that at the source.
Each number the model writes must be, digit by digit, one that its prompt contains (the retrieved
facts, the instructions, the conversation): "$0.25", "555-0187", "10:30". A number once begun is
written out whole. The model may still pick the wrong one of them, or spell a number out in words;
the grounding check (chat/grounding/) judges what it did write.

Outside a number, only tokens that contain a digit are ever touched; everything else the model
writes as it would have.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import numpy as np

NUMBER = re.compile(r"[0-9]+(?:[.,:/-][0-9]+)*")
SEPARATORS = ".,:/-"
_WRITING = re.compile(r"[0-9]+(?:[.,:/-][0-9]+)*[.,:/-]?\Z")  # the number the text ends in, if any
_TAIL_BYTES = 256  # enough to hold the number being written ("1-800-555-0142" is 14 bytes)


def given_numbers(texts: Iterable[str]) -> frozenset[str]:
    """Return every number written in `texts`, as written: "4.99", "3", "1-800-555-0142"."""
    return frozenset(match.group() for text in texts for match in NUMBER.finditer(text))


class NumberVocabulary:
    """The tokens of one model's vocabulary that can write a number: read once per model."""

    def __init__(self, texts: list[str]) -> None:
        self.digits = [(i, t) for i, t in enumerate(texts) if any(c.isdigit() for c in t)]
        self.separated = [(i, t) for i, t in enumerate(texts) if t[:1] in SEPARATORS and not any(c.isdigit() for c in t)]

    @classmethod
    def of(cls, detokenize: Callable[[list[int]], bytes], size: int) -> NumberVocabulary:
        return cls([detokenize([i]).decode("utf-8", "ignore") for i in range(size)])


class GivenNumbersOnly:
    """A llama.cpp logits processor: every number the model writes is one of `numbers`, whole.

    Call it as llama.cpp does, with the token ids so far (prompt and answer) and the next token's
    scores; it returns the scores with every number-writing token that would leave the given
    numbers set to -inf.
    """

    def __init__(self, numbers: frozenset[str], vocabulary: NumberVocabulary,
                 detokenize: Callable[[list[int]], bytes]) -> None:
        self.numbers = numbers
        self.prefixes = frozenset(n[:i] for n in numbers for i in range(1, len(n) + 1))
        self.vocabulary = vocabulary
        self.detokenize = detokenize
        self.seen: int | None = None  # tokens read so far: the prompt's at the first call
        self.tail = b""  # the answer's last bytes, enough to hold the number being written

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.seen is None:
            self.seen = len(input_ids)
        if len(input_ids) > self.seen:  # one new token a call, as llama.cpp samples
            self.tail = (self.tail + self.detokenize([int(i) for i in input_ids[self.seen:]]))[-_TAIL_BYTES:]
            self.seen = len(input_ids)
        text = self.tail.decode("utf-8", "ignore")
        writing = _WRITING.search(text)
        partial = writing.group() if writing else ""
        candidates = self.vocabulary.digits + (self.vocabulary.separated if partial else [])
        if partial and not self.complete(partial):  # "$0.2" of "$0.25": only the rest of it may follow
            going_on = [i for i, token in candidates if i < len(scores) and self.fits(partial + token)]
            if not going_on:  # not one of ours (a number longer than the tail): leave the model be
                return scores
            kept = np.full_like(scores, -np.inf)
            kept[going_on] = scores[going_on]
            return kept
        banned = [i for i, token in candidates if i < len(scores) and not self.fits(partial + token)]
        if banned:
            scores[banned] = -np.inf
        return scores

    def complete(self, partial: str) -> bool:
        """Return whether a number being written may end here: "0.25", or "0.25." ending a sentence."""
        return partial in self.numbers or (partial[-1] in SEPARATORS and partial[:-1] in self.numbers)

    def fits(self, text: str) -> bool:
        """Return whether every number in `text` is a given one, the last perhaps still being written."""
        matches = list(NUMBER.finditer(text))
        for match in matches[:-1]:
            if match.group() not in self.numbers:
                return False
        if not matches:
            return True
        last = matches[-1]
        rest = text[last.end():]
        if not rest:
            return last.group() in self.prefixes
        if rest[0] in SEPARATORS and len(rest) == 1:  # "0.25." ends a sentence or goes on to "0.25.1"
            return last.group() + rest in self.prefixes or last.group() in self.numbers
        return last.group() in self.numbers
