"""Sentences and clauses: each with its stems, quantities, names and polarity (what it denies, and
what it limits), and which cited sentence an answer's clause is about.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from chat.grounding.cleaning import _mask
from chat.grounding.names import _APOSTROPHE, _STOP_WORDS, _TERM, _WORD, _Name, _names
from chat.quantities import Facts, Quantity, read_quantities

MIN_SHARED_WORDS = 2  # below this, an answer clause and a source sentence are not about the same thing

# Each whitespace run is tried from its start only ("(?<!\s)"), or a long run would cost its square.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*[ \t]+|(?<!\s)\s*\n\s*")
_CLAUSE_BREAK = re.compile(
    r"(?<!\s)\s*;\s*|,\s*(?=(?:but|and|or|so|yet|while|whereas|although|though|however|not|as well as)\b)"
    r"|(?<!\s)\s+(?=but\b)|(?<!\s)\s+[–—-]\s+",
    re.I,
)
_NEGATION = re.compile(r"\b(?:not|no|never|cannot|none|nothing|nobody|neither|nor)\b|n['’]t\b")
# Negative words that do not deny the claim beside them.
_NOT_NEGATIONS = re.compile(
    r"\b(?:not only|(?:no|not) (?:more|later|less|fewer|longer) than|no (?:problem|worries|trouble|doubt|matter)"
    r"|(?:do not|don['’]t) hesitate|not sure|no need|(?:do|does|will) not (?:need|have) to"
    r"|(?:don|doesn|won)['’]t (?:need|have) to)\b|^[\W_]*(?:no|nope)(?=\s*[,.!:;–—-])"
)
# Words that deny another: "closed" is "not open", "interest-free" is "no interest".
_ANTONYM = re.compile(r"\b(?:closed|unavailable|invalid|non-refundable)\b|\b([^\W\d_]+)-free\b")
_ANTONYMS = {"closed": "open", "unavailable": "available", "invalid": "valid", "non-refundable": "refund"}
# A negation with one of these is bounded ("can't change it after it's packed" is "can change
# it until it's packed"), so the plain statement is no contradiction. "Not when" is not bounded.
# "Cannot sign up by themselves" denies doing it alone, not doing it: a parent may sign.
_LIMITERS = re.compile(
    r"\b(?:until|till|unless|except|only|once|after|before|than|outside|beyond|besides|apart|if|when"
    r"|without|offline|alone|by (?:my|your|him|her|it|our|them)sel(?:f|ves)|on (?:my|your|his|her|its|our|their) own)\b"
)
_ONLY_WHO = re.compile(r" only (\w+) ")  # "only cardholders can …", in a clause's padded stems
_ONLY_IF = re.compile(r"\bonly\b.*\b(?:if|when|unless)\b")  # "can only be returned if faulty"


@lru_cache(maxsize=8192)
def _stem(word: str) -> str:
    """Return a crude stem, so "returned", "returns" and "return" compare equal."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2]:
        word = word[:-1]
    # Not "note" to "not" or "here" to "her": a stem that is a stop word would drop the word.
    word = word[:-1] if len(word) > 3 and word.endswith("e") and word[:-1] not in _STOP_WORDS else word
    return _SYNONYMS.get(word, word)


# Verbs help pages use for one another, as stems: "guests can book rooms" says what "guests may not
# reserve rooms" denies.
_SYNONYMS = {"reserv": "book", "purchas": "buy", "permit": "allow", "receiv": "get", "obtain": "get",
             "begin": "start", "assist": "help", "view": "read"}


@dataclass(frozen=True)
class _Clause:
    """A clause of a sentence, where a polarity holds: "We ship to Canada" / "but not to Mexico"."""

    start: int
    end: int
    words: frozenset[str]  # stems of content words
    tokens: frozenset[str]  # the words, and the keys of its quantities ("duration:900") and names ("name:us")
    negated: bool
    focus: frozenset[str]  # what its negations deny: the first content after each ("no": its phrase, space-joined)
    said_of: frozenset[str]  # what comes before its first negation: "*dogs* cannot ride"
    complements: frozenset[str]  # what completes each denied word: "cannot ride *in the basket*"
    wording: str  # its words as stems, in order and padded: " dog can ride in the basket "
    scope: frozenset[str]  # the quantities and names after its first negation: "not to *Mexico*"
    limited: bool  # its negation is bounded by a condition or an exception
    only_if: bool  # "can only be returned if faulty": says nothing of the other cases
    names: tuple[_Name, ...]


@dataclass(frozen=True)
class _Sentence:
    """A sentence of the answer or of a cited source, read into clauses."""

    source: str  # the cited text it is part of; "" in the answer
    start: int
    end: int
    question: bool
    clauses: tuple[_Clause, ...]
    quantities: tuple[Quantity, ...]
    words: frozenset[str]
    tokens: frozenset[str]
    facts: Facts


def _spans(text: str, pattern: re.Pattern[str], start: int, end: int) -> list[tuple[int, int]]:
    spans, position = [], start
    for match in pattern.finditer(text, start, end):
        spans.append((position, match.start()))
        position = match.end()
    spans.append((position, end))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def _read(text: str, known: frozenset[str], source: str | None = None) -> list[_Sentence]:
    """Split an answer, or a cited `source`, into sentences and clauses, with what each claims.

    The words of known names are no tokens: like "we", they tell no clause from another.
    """
    quantities, rest = read_quantities(text)
    names = _names(text, rest)
    sentences = []
    for start, end in _spans(text, _SENTENCE_BREAK, 0, len(text)):
        inside = tuple(q for q in quantities if start <= q.start < end)
        clauses = tuple(
            _clause(text, s, e, inside, names, known, as_source=source is not None)
            for s, e in _spans(text, _CLAUSE_BREAK, start, end)
        )
        question = text[start:end].rstrip("\"')] \t\n").endswith("?")
        words = frozenset().union(*(c.words for c in clauses))
        tokens = frozenset().union(*(c.tokens for c in clauses))
        sentences.append(
            _Sentence(source or "", start, end, question, clauses, inside, words, tokens, Facts.of(inside))
        )
    return sentences


def _content_stems(lowered: str) -> list[tuple[int, str]]:
    """Return the content words of lowercased text as stems, with where each begins ("can't" is "can")."""
    stems = [(m.start(), _stem(_APOSTROPHE.split(m.group())[0])) for m in _WORD.finditer(lowered)]
    return [(position, word) for position, word in stems if word not in _STOP_WORDS and len(word) > 1]


def _clause(
    text: str,
    start: int,
    end: int,
    quantities: Iterable[Quantity],
    names: Iterable[_Name],
    known: frozenset[str],
    *,
    as_source: bool,
) -> _Clause:
    """Read one clause: its content words, the keys of its quantities and names, and its negations."""
    quantities = [q for q in quantities if start <= q.start < end]
    names = [n for n in names if start <= n.start < end]
    lowered = _mask(text[start:end].lower(), _NOT_NEGATIONS)
    positioned = _content_stems(lowered)
    words = frozenset(w for _, w in positioned)
    for q in quantities:
        keys = q.backs if as_source else q.keys
        positioned += [(q.start - start, key) for key in (keys if q.kind == "number" else keys | {q.kind})]
    positioned += [(n.start - start, "name:" + key) for n in names for key in n.keys if key not in known]
    positioned.sort()
    cues = list(_NEGATION.finditer(lowered))
    antonyms = list(_ANTONYM.finditer(lowered))
    focus = {_stem(m.group(1) or _ANTONYMS[m.group()]) for m in antonyms} | _denied(positioned, cues, lowered)
    first = min((m.start() for m in cues + antonyms), default=len(lowered))
    said_of = frozenset(w for p, w in positioned if p < first)
    scope = frozenset(w for p, w in positioned if p >= first and ":" in w)
    tokens = frozenset(w for _, w in positioned)
    # What follows "costs nothing" completes no denied word ("costs nothing and includes 2 GB").
    wording, complements = _wording(lowered, [c for c in cues if c.group() not in _LOOKS_BACK
                                              or not any(p < c.start() for p, _ in positioned)])
    limited, only_if = _is_limited(lowered, cues), bool(_ONLY_IF.search(lowered))
    return _Clause(
        start,
        end,
        words,
        tokens,
        bool(focus),
        frozenset(focus),
        said_of,
        complements,
        wording,
        scope,
        limited,
        only_if,
        tuple(names),
    )


def _denied(positioned: list[tuple[int, str]], cues: list[re.Match[str]], lowered: str) -> set[str]:
    """Return what each negation denies: the first words or quantity after it, else the last before.

    "Nothing" and its kind deny the word before them ("costs nothing and includes 2 GB" denies no
    storage). "No" denies its whole noun phrase, kept as one entry of its words: "there's no Linux
    desktop app" is not contradicted by "Linux users can use the web app".
    """
    positions = [p for p, _ in positioned]
    denied = set()
    for cue in cues:
        first = bisect_left(positions, cue.end())
        before = bisect_left(positions, cue.start())
        if cue.group() in _LOOKS_BACK and before:
            denied.add(positioned[before - 1][1])
        elif cue.group() == "no" and len(phrase := _noun_phrase(lowered, cue.end())) > 1:
            denied.add(" ".join(phrase))
        elif first < len(positioned):
            if positioned[first][1] == "abl" and first + 1 < len(positioned):
                first += 1  # "not able to provide": what is denied is providing
            offered = _OFFERED.match(lowered, positions[first]) if positioned[first][1] in _OFFERING else None
            if offered and (phrase := _noun_phrase(lowered, offered.end())):
                denied.add(" ".join(phrase))  # "we don't offer a student discount" says there is none
            else:
                denied.update(w for p, w in positioned[first : bisect_right(positions, positions[first])])
        elif positioned and positions[-1] < cue.start():
            denied.add(positioned[-1][1])
    return denied


_LOOKS_BACK = ("nothing", "none", "nobody")  # "costs nothing": the word before is what is denied
# Verbs whose denial denies their object: "not able to provide a discount" is "no discount".
_OFFERING = ("offer", "provid", "giv", "hav")
_OFFERED = re.compile(r"[^\W\d_]+(?:[ \t]+(?:a|an|the|any|our|your|their|its)\b)?")
_PHRASE_WORD = re.compile(r"[ \t]*([^\W\d_]+)")


def _noun_phrase(lowered: str, start: int) -> list[str]:
    """Return the stems of the content words running on from `start` with only spaces between them."""
    stems = []
    while (match := _PHRASE_WORD.match(lowered, start)) and (stem := _stem(match.group(1))) not in _STOP_WORDS:
        stems.append(stem)
        start = match.end()
    return stems


def _wording(lowered: str, cues: list[re.Match[str]]) -> tuple[str, frozenset[str]]:
    """Return a clause's words as padded stems, and what completes the word each negation denies.

    A complement is the phrase from the denied word up to the next content word, when function
    words join them: "cannot ride *in the basket*" but not "do not accept cash".
    """
    terms = [(m.start(), _stem(m.group())) for m in _TERM.finditer(lowered)]
    content = [i for i, (_, w) in enumerate(terms) if w not in _STOP_WORDS and len(w) > 1]
    starts = [terms[i][0] for i in content]
    complements = set()
    for cue in cues:
        n = bisect_left(starts, cue.end())
        if n + 1 < len(content) and content[n + 1] > content[n] + 1:
            complements.add(" " + " ".join(w for _, w in terms[content[n] + 1 : content[n + 1] + 1]) + " ")
    return " " + " ".join(w for _, w in terms) + " ", frozenset(complements)


def _is_limited(lowered: str, cues: list[re.Match[str]]) -> bool:
    """Return whether a limiter bounds the clause; "not when you place it" is a plain denial."""
    return any(
        not (limiter.group() == "when" and any(lowered[c.end() : limiter.start()].isspace() for c in cues))
        for limiter in _LIMITERS.finditer(lowered)
    )


# --- Judging claims ------------------------------------------------------------------------------------


def _overlap(tokens: frozenset[str], sentence: _Sentence) -> int:
    return len(tokens & sentence.tokens)


def _best_match(tokens: frozenset[str], cited: list[_Sentence]) -> _Sentence:
    """Return the cited sentence sharing most with `tokens`; the shortest, then the first, on a tie."""
    return max(cited, key=lambda s: (_overlap(tokens, s), -len(s.tokens)))


def _closest(clause: _Clause, sentence: _Sentence, cited: list[_Sentence]) -> tuple[list[_Sentence], int]:
    """Return the cited sentences sharing the most words with a clause, best first, and how many.

    The clause's own sentence orders a tie, so "it also covers accidental damage" after "Care Plus
    costs $29" is about Care Plus rather than the standard warranty.
    """
    shared = [len(clause.words & s.words) for s in cited]
    most = max(shared)
    tied = [s for s, n in zip(cited, shared) if n == most]
    return sorted(tied, key=lambda s: (-len(sentence.words & s.words), len(s.words))), most


def _evidence(position: int, claims: list[_Sentence], cited: list[_Sentence]) -> _Sentence:
    """Return the cited sentence that the answer's clause at `position` is about.

    Shared words decide, not numbers: a wrong number may be borrowed from another sentence.
    """
    for sentence in claims:
        for clause in sentence.clauses:
            if clause.start <= position < clause.end:
                closest, shared = _closest(clause, sentence, cited)
                return closest[0] if shared else _best_match(clause.tokens, cited)
    return cited[0]
