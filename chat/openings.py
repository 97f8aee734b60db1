"""How the local model's answer opens: "No" where its facts deny a yes, else the fact's own first words.

SmolLM2-135M answered "Can I get my two-factor codes by text message?" with "Two-factor codes can be
sent via text message" and "Is the Eastside Branch open on Mondays?" with "The Eastside Branch is open
on Mondays", each given a fact that says the opposite ("We do not send two-factor codes by text
message", "closed on Sundays and Mondays"). The grounding check flags such answers after the fact;
the first rule reads the same thing before the first token. When a bare "yes" to the user's yes/no
question would be flagged against the prompt's facts (chat.grounding.yes_is_denied), the answer's
first token is "No".

Otherwise the answer opens with the first words of its best fact, after the section heading: given
"Whitening: An in-chair whitening session takes 90 minutes and costs $350", it opens "An in-chair
whitening session" and goes on as the model will. Left to open as it liked, the model often recited
its instructions ("The text between <fact> and </fact> is quoted documentation"), wrote "The answer
to this question is:" and stopped, or talked about itself; from the fact's own words it goes on with
the fact.

Both are llama.cpp logits processors, in the decoding, so they hold on every CPU. The model writes
the rest, and the check judges all of it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from chat.grounding import yes_is_denied
from chat.prompts import facts_in

FACT_OPENING_WORDS = 4  # on the tuning sets: 2 words 55/76 right, 3: 59, 4: 62, 5 and 6: 63 with more unflagged wrongs
MAX_HEADING_WORDS = 6  # "Cancelling or rescheduling: Please give us …": the part before ": " is a heading

Tokenize = Callable[[bytes], list[int]]


def answer_opening(payload: list[dict], tokenize: Tokenize, *, say_no: bool = True,
                   from_fact: bool = True) -> ForcedOpening | None:
    """Return the processor that opens the answer, or None where the model opens it.

    `payload` is the chat as the model gets it: the system prompt with its facts, then the messages,
    the user's last. `tokenize` turns text into the model's token ids (no BOS). In order: "No" when
    its facts deny a yes (`say_no`, LOCAL_NO_DENIED_YES), else its best fact's first words
    (`from_fact`, LOCAL_FACT_OPENING).
    """
    facts = _facts(payload)
    if not facts:
        return None  # a tool's result, or nothing retrieved: nothing to open from
    if say_no and yes_is_denied(payload[-1]["content"], facts):
        no = tokenize(b"No")
        if len(no) == 1:  # a "No" of two tokens could be cut after one
            return ForcedOpening("No", no)
    words = fact_opening(facts[0]) if from_fact else ""
    tokens = tokenize(words.encode()) if words else []
    return ForcedOpening(words, tokens) if tokens else None


def fact_opening(fact: str) -> str:
    """Return the first words of a fact after its section heading: "Whitening: An in-chair whitening
    session takes …" opens "An in-chair whitening session"."""
    heading, colon, body = fact.partition(": ")
    if colon and body.strip() and len(heading.split()) <= MAX_HEADING_WORDS:
        fact = body
    return " ".join(fact.split()[:FACT_OPENING_WORDS])


def _facts(payload: list[dict]) -> list[str]:
    """Return the facts of the system prompt, when the model is about to answer the user's message."""
    if len(payload) < 2 or payload[0]["role"] != "system" or payload[-1]["role"] != "user":
        return []  # a tool's result, or no facts: nothing to open from
    return facts_in(payload[0]["content"])


class ForcedOpening:
    """A llama.cpp logits processor: the answer's first tokens are `tokens`; the rest is the model's.

    The forced token wins whatever the other processors did to its score (the number rule runs
    beside it), so the opening is always written whole.
    """

    def __init__(self, words: str, tokens: list[int]) -> None:
        self.words = words
        self.tokens = tokens
        self.written = 0

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.written >= len(self.tokens):
            return scores
        token = self.tokens[self.written]
        self.written += 1
        kept = np.full_like(scores, -np.inf)
        kept[token] = 0.0
        return kept
