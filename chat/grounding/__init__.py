"""Check that an answer's claims are backed by the sentences it cites.

A cheap, deterministic check with no model: the answer's numbers (with their units), names and
negations are compared with the cited sentences, and the answer spans they do not back are
reported. Answers and sources are untrusted text: both are bounded and cleaned before any
pattern sees them, and nothing here raises on odd input.

The check leans towards "grounded". A number or a name found anywhere in the sources is
supported, except a number that contradicts the sentence its clause is plainly about: a shifted
range ("5 to 7 days" against "3 to 5 days"), or a value borrowed from another fact ("locked for
30 minutes" when the lock-out sentence says 15 and 30 minutes is how long a reset link lasts).
Polarity is judged only where an answer clause shares two or more content words with a source
sentence, and only when the other clause says what a negation denies: the denied word itself
("cannot be *returned*"), or its complement said of the same subject ("you can take your dog *in
the basket*" against "dogs cannot ride in the basket"). A name or number the negation is aimed at
("not to Mexico") excuses the other clause only when that clause names or counts something else
("we ship to Canada"); "of a Loop bike" after the basket does not excuse "dogs can ride in it".

More readings catch what a small model gets wrong: one end of a range given as the whole value
("3 business days" of "3 to 5"), a name after "called" or "named" that no source writes so, doing
"without" what a source says is needed, a value its sentence gives for another case than the one
asked (weekend hours for weekday ones), and an answer that gives no value (or name) of the kind its
question asks for. The user's own numbers may be said back ("your 11-year-old").

This module is the check itself; the package's other modules are its readings, each using only
those before it: `cleaning` (bounding untrusted text, identifiers), `names`, `sentences` (clauses,
polarity, and which cited sentence a clause is about), `contradictions`, and `questions` (the
readings that need the user's question). Their underscored names are the package's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from chat.grounding.cleaning import (
    _IDENTIFIER,
    _bounded,
    _claim_text,
    _first,
    _mask,
    _strip_markup,
    _unsupported_called,
    _unsupported_identifiers,
)
from chat.grounding.contradictions import _outermost, _unsupported_in
from chat.grounding.names import _LETTERS, _known_keys, _NameIndex
from chat.grounding.questions import (
    _gives_no_value_asked,
    _other_ordinals,
    _values_of_another_case,
    _yes_denied,
)
from chat.grounding.sentences import _best_match, _evidence, _read, _Sentence
from chat.quantities import Facts, read_quantities

__all__ = ["Grounding", "check_grounding", "yes_is_denied"]

MAX_ANSWER_CHARS = 4_000
MAX_SOURCES = 50
MAX_SOURCE_CHARS = 1_000  # a retrieved chunk is at most 600 (rag/splitting.py)
MAX_UNSUPPORTED = 20  # spans reported; beyond that the verdict will not change


@dataclass(frozen=True)
class Grounding:
    """Whether an answer's claims are backed by its cited sentences, and where they are not."""

    verdict: Literal["grounded", "unsupported", "no_sources"]
    unsupported: tuple[str, ...] = ()  # spans of the answer the sources do not back, in answer order
    evidence: str = ""  # the cited sentence that best matches the answer, or its unsupported part


def check_grounding(
    answer: str, sources: Sequence[str], *, known_names: Iterable[str] = (), asked: str = ""
) -> Grounding:
    """Return whether the answer's numbers, names and negations are backed by the cited sentences.

    The words of `known_names` (the assistant's own name, which the system prompt gives it) are
    supported wherever the answer capitalises them, though no source mentions them, and so are the
    words `asked` writes in lower case ("the free plan" answered "the Free plan"). The numbers of
    `asked` (the user's message) may be said back ("your 11-year-old"), but a cited sentence about
    the same thing with another value still contradicts them ("yes, within 60 days" against 45).
    When `asked` asks for a value ("how long", "how much", "how many", "what time") or a name
    ("which app", "what's the name") and the answer gives none, nor says it doesn't know, the whole
    answer is unsupported: it claims to answer and does not, and the viewer is shown the document's
    sentence instead.
    """
    known = _known_keys(known_names)
    read = _read_sources(sources, known)
    texts = [text for text, _ in read]
    cited = [sentence for _, sentences in read for sentence in sentences]
    if not cited:
        return Grounding("no_sources")
    claim = _claim_text(_bounded(answer, MAX_ANSWER_CHARS))
    question = _bounded(asked, MAX_ANSWER_CHARS)
    asked_line = _asked_line(question)
    written = " ".join(texts).lower()
    spans = (_unsupported_identifiers(claim, written) + _unsupported_called(claim, written)
             + _other_ordinals(claim, written))
    claims = [s for s in _read(_mask(claim, _IDENTIFIER), known) if not s.question]
    facts = Facts.of([*(q for s in cited for q in s.quantities), *read_quantities(question)[0]])
    # A word the user wrote in lower case is no name the answer invented by capitalising it ("on the
    # free plan" asked, "On the Free plan …" answered); a name the user wrote as one still needs a source.
    names = _NameIndex(texts, known | {w for w in _LETTERS.findall(question) if w.islower()})
    for sentence in claims:
        if len(spans) >= MAX_UNSUPPORTED:
            break
        spans += _unsupported_in(sentence, cited, facts, names, claim)
    if question and len(spans) < MAX_UNSUPPORTED:
        spans += _values_of_another_case(asked_line, claim, claims, read)
        spans += _yes_denied(asked_line, claim, claims, cited, known)
    if not spans and claims and _gives_no_value_asked(asked_line, claim, claims):
        spans = [(claims[0].start, claims[-1].end)]
    if not spans:
        return Grounding(
            "grounded", evidence=_best_match(frozenset().union(*(s.tokens for s in claims)), cited).source
        )
    spans = _outermost(spans)[:MAX_UNSUPPORTED]
    return Grounding(
        "unsupported",
        tuple(" ".join(claim[start:end].split()) for start, end in spans),
        _evidence(spans[0][0], claims, cited).source,
    )


def yes_is_denied(asked: str, sources: Sequence[str]) -> bool:
    """Return whether a bare "yes" to the yes/no question `asked` would be flagged against `sources`:
    the question said as a statement ("the Eastside Branch is open on Mondays") is what a source
    denies ("closed on Sundays and Mondays"). The local model's decoding reads it before its answer.
    """
    known: frozenset[str] = frozenset()
    cited = [sentence for _, sentences in _read_sources(sources, known) for sentence in sentences]
    question, yes = _asked_line(_bounded(asked, MAX_ANSWER_CHARS)), "Yes."
    return bool(cited) and bool(_yes_denied(question, yes, _read(yes, known), cited, known))


def _read_sources(sources: Sequence[str], known: frozenset[str]) -> list[tuple[str, list[_Sentence]]]:
    """Return each distinct source as text without markup, with its sentences (each naming its original)."""
    originals = dict.fromkeys(_bounded(s, MAX_SOURCE_CHARS).strip() for s in _first(sources, MAX_SOURCES))
    texts = [_strip_markup(original) for original in originals]
    return [(text, _read(text, known, source=original)) for original, text in zip(originals, texts)]


def _asked_line(question: str) -> str:
    """Return what a message asks: its last line (a long message asks in its last line)."""
    return question.strip().rsplit("\n", 1)[-1]


# --- Questions that ask for a value -------------------------------------------------------------------
