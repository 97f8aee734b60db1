"""Let a local model not open its answer with a "yes" that its facts deny.

SmolLM2-135M answered "Can I get my two-factor codes by text message?" with "Two-factor codes can be
sent via text message" and "Is the Eastside Branch open on Mondays?" with "The Eastside Branch is open
on Mondays", each given a fact that says the opposite ("We do not send two-factor codes by text
message", "closed on Sundays and Mondays"). The grounding check flags such answers after the fact;
this rule reads the same thing before the first token. When a bare "yes" to the user's yes/no
question would be flagged against the prompt's facts (chat.grounding.yes_is_denied), this llama.cpp
logits processor makes the answer's first token "No". The model writes the rest as it would have,
and the check still judges all of it. Like the number rule, it is in the decoding, so it holds on
every CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from chat.grounding import yes_is_denied
from chat.prompts import facts_in


def opening_no(payload: list[dict], tokenize: Callable[[bytes], list[int]]) -> OpensWithNo | None:
    """Return the processor that opens the answer with "No" when its facts deny a yes, else None.

    `payload` is the chat as the model gets it: the system prompt with its facts, then the messages,
    the user's last. `tokenize` turns text into the model's token ids (no BOS).
    """
    if len(payload) < 2 or payload[0]["role"] != "system" or payload[-1]["role"] != "user":
        return None  # a tool's result, or no facts: nothing to read the question against
    facts = facts_in(payload[0]["content"])
    if not facts or not yes_is_denied(payload[-1]["content"], facts):
        return None
    no = tokenize(b"No")
    return OpensWithNo(no[0]) if len(no) == 1 else None  # a "No" of two tokens could be cut after one


class OpensWithNo:
    """A llama.cpp logits processor: the first token of the answer is `token`; the rest is the model's."""

    def __init__(self, token: int) -> None:
        self.token = token
        self.opened = False

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.opened:
            return scores
        self.opened = True
        kept = np.full_like(scores, -np.inf)
        kept[self.token] = scores[self.token]
        return kept
