"""Readings driven by the question: an answer that gives no value (or name) of the kind asked, another
case's value (weekend hours for weekday ones), another ordinal, and a "yes" that a source denies.
"""

from __future__ import annotations

import re

from chat.grounding.cleaning import _IDENTIFIER
from chat.grounding.contradictions import _contradicted
from chat.grounding.names import _SENTENCE_START, _WORD, _words_written
from chat.grounding.sentences import (
    _NEGATION,
    _SENTENCE_BREAK,
    MIN_SHARED_WORDS,
    _closest,
    _content_stems,
    _read,
    _Sentence,
    _spans,
    _stem,
)
from chat.quantities import Facts, Quantity

# What a question asks for, and the quantity kinds or words that give a value of that kind.
_DURATION_WORDS = r"\b(?:seconds?|minutes?|hours?|days?|nights?|weeks?|months?|years?|overnight|immediately|instantly)\b"
_ASKS = (
    (re.compile(r"\bhow (?:long|soon|quickly|fast|often|early|late|far ahead|far in advance)\b"
                r"|\bhow much (?:notice|time)\b", re.I),
     {"duration", "time", "date", "weekday", "month", "always"}, re.compile(_DURATION_WORDS, re.I)),
    (re.compile(r"\bhow much\b", re.I), {"money", "percent", "number"},
     re.compile(r"\bfree\b|\bno (?:charge|cost|fee)s?\b|\bnothing\b", re.I)),
    (re.compile(r"\bhow many\b", re.I), {"number", "money", "percent", "duration"},
     re.compile(r"\b(?:no|none|unlimited|one|a single|a few|several|any)\b", re.I)),
    (re.compile(r"\bwhat time\b|\b(?:opening|support|office|your) hours\b", re.I), {"time", "always", "weekday"},
     re.compile(r"\b(?:noon|midnight|morning|afternoon|evening)\b", re.I)),
)
_NOT_KNOWN = re.compile(
    r"\b(?:do not|don['’]t|does not|doesn['’]t|cannot|can['’]t) (?:know|say|tell|find|cover|mention|state)"
    r"|\bnot sure\b|\bno information\b|\bnot (?:stated|mentioned|covered)\b",
    re.I,
)


# A question that asks for a name: "Which app …?", "What's the name of …?", "What is it called?"
_ASKS_NAME = re.compile(
    r"\b(?:which|what) (?:app|application|website|site|network|service|brand|company)\b"
    r"|\bwhat(?:['’]s| is| are) (?:the |its |their |your )?names?\b|\bwhat (?:is|are) (?:it|they|this|that) called\b",
    re.I,
)


def _gives_no_value_asked(question: str, claim: str, claims: list[_Sentence]) -> bool:
    """Return whether the question asks for a value and the answer gives none ("The answer is:")."""
    if _ASKS_NAME.search(question) and not _NOT_KNOWN.search(claim):
        # A name the question does not already say ("the Library's service" names no app), or an address.
        said = _words_written(question)
        named = any(not set(n.keys) <= said for s in claims for c in s.clauses for n in c.names)
        return not (named or _IDENTIFIER.search(claim) or any(s.quantities for s in claims))
    for asks, kinds, words in _ASKS:
        if asks.search(question):
            if _NOT_KNOWN.search(claim) or words.search(claim):
                return False
            return not any(q.kind in kinds for sentence in claims for q in sentence.quantities)
    return False


# --- Ordinals: "by their second birthday" where a source says "by their first birthday" -------------------

# Ordinals claim nothing alone ("your first visit"); beside the same word as a source's other one, they do.
_ORDINAL = re.compile(
    r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|[0-9]{1,3}(?:st|nd|rd|th))"
    r"[ -]([^\W\d_]+)", re.I)
_ORDINAL_WORDS = {w: i + 1 for i, w in enumerate(
    "first second third fourth fifth sixth seventh eighth ninth tenth".split())}


def _ordinals(text: str) -> list[tuple[int, int, str, str]]:
    """Return each ordinal and the word after it: (start, end, its value, the word's stem)."""
    return [(m.start(), m.end(), str(_ORDINAL_WORDS.get(m.group(1).lower()) or m.group(1)[:-2]),
             _stem(m.group(2).lower())) for m in _ORDINAL.finditer(text)]


def _other_ordinals(claim: str, written: str) -> list[tuple[int, int]]:
    """Return the ordinals of the claim whose word the sources give only with another ordinal."""
    said: dict[str, set[str]] = {}
    for _, _, value, word in _ordinals(written):
        said.setdefault(word, set()).add(value)
    return [(start, end) for start, end, value, word in _ordinals(claim) if value not in said.get(word, {value})]


# --- Values of another case than the one asked ------------------------------------------------------

# Where a sentence gives one value per case: "from 6 pm to 10 pm on weekdays and from 9 am to 5 pm at weekends".
_CASE_BREAK = re.compile(r"\s*[,;]\s*|\s+(?:and|but|while|whereas)\s+", re.I)


def _case_words(text: str) -> frozenset[str]:
    return frozenset(word for _, word in _content_stems(text.lower()))


def _values_of_another_case(asked: str, claim: str, claims: list[_Sentence],
                            read: list[tuple[str, list[_Sentence]]]) -> list[tuple[int, int]]:
    """Return the answer's values that a cited sentence gives for another case than the one asked.

    "How late can I reach the on-call dentist on a weekday?" against "from 6 pm to 10 pm on weekdays
    and from 9 am to 5 pm at weekends": "9 am to 5 pm" is the weekends' value. A sentence counts when
    its parts give values of the same kind, and a word of the question (weekday) is in one part
    only; the answer's value is excused when its own part of the answer names the other case and
    not the one asked ("at weekends it is 9 am to 5 pm" is true, and so is the whole sentence said
    back). Denials give no case a value ("not on 5 GHz"), and an answer's denied value claims nothing.
    """
    question = _case_words(asked)
    starts = {m.end() for m in _SENTENCE_START.finditer(asked)}
    names = {_stem(m.group().lower()) for m in _WORD.finditer(asked)  # its capitalised words, "Team" too
             if m.group()[0].isupper() and m.start() not in starts}
    answer = [q for sentence in claims for clause in sentence.clauses if not clause.negated  # denied: not claimed
              for q in sentence.quantities if clause.start <= q.start < clause.end]
    if not question or not answer:
        return []
    spans = []
    for text, sentences in read:  # the cited sentences as check_grounding read them
        for sentence in sentences:
            start, end = sentence.start, sentence.end
            parts = [(text[s:e], [q for q in sentence.quantities if s <= q.start < e])
                     for s, e in _labelled_parts(text, start, end, sentence.quantities)]
            parts = [(_case_words(part), Facts.of(inside), {q.kind for q in inside}) for part, inside in parts
                     if inside and not _NEGATION.search(part.lower())]  # "not on 5 GHz" gives no case a value
            if len(parts) < 2:
                continue
            # A part's case is what only it says, less the sentence's lead, what it is about ("the dentist answers").
            lead = _case_words(text[start:min(q.start for q in sentence.quantities)])
            own = [words - lead - frozenset().union(*(w for j, (w, _, _) in enumerate(parts) if j != i))
                   for i, (words, _, _) in enumerate(parts)]
            asked_in = [i for i, words in enumerate(own) if words & question]
            if len(asked_in) > 1:  # "on the Plus plan" against "on the Free plan" and "on Plus": the name decides
                asked_in = [i for i in asked_in if own[i] & names]
            if len(asked_in) != 1:
                continue
            case = asked_in[0]
            for q in answer:
                if parts[case][1].back(q) or q.kind not in parts[case][2]:
                    continue
                other = next((i for i, (_, facts, _) in enumerate(parts) if i != case and facts.back(q)), None)
                if other is None:
                    continue
                if _says_whose(claim, q, claims, own[other], own[case]):
                    continue  # "at weekends, 9 am to 5 pm": the answer says whose value it is, beside it
                spans.append((q.start, q.end))
    return spans


def _says_whose(claim: str, value: Quantity, claims: list[_Sentence], other: frozenset[str],
                case: frozenset[str]) -> bool:
    """Return whether the answer's part that holds `value` names the other case and not the one asked.

    The value's own words decide when they name a case ("…, but it goes back 7 days on the Free
    plan", after "on the Plus plan"); else the label before or after them ("on Plus, with up to 10").
    """
    within = next(s for s in claims if s.start <= value.start < s.end)
    for spans in (_spans(claim, _CASE_BREAK, within.start, within.end),
                  _labelled_parts(claim, within.start, within.end, within.quantities)):
        said = _case_words(next(claim[s:e] for s, e in spans if s <= value.start < e))
        if said & (other | case):
            return not said & case
    return False


def _labelled_parts(text: str, start: int, end: int, quantities: tuple[Quantity, ...]) -> list[tuple[int, int]]:
    """Split a sentence into its cases' parts. A part with no value is the label of the part after
    it ("on Plus, with up to 10 collaborators"), or, at the end, of the one before it ("for 90 days
    on Plus and Team"); one that denies is left out."""
    parts: list[list[int]] = []
    label = None  # where a run of parts with no value began
    for s, e in _spans(text, _CASE_BREAK, start, end):
        if any(s <= q.start < e for q in quantities):
            parts.append([s if label is None else label, e])
            label = None
        elif not _NEGATION.search(text[s:e].lower()):
            label = s if label is None else label
    if label is not None and parts:
        parts[-1][1] = end
    return [(s, e) for s, e in parts]


# --- A "yes" that the cited sentence denies ---------------------------------------------------------

# A question a bare "yes" answers: it opens with an auxiliary ("Can I …?", "Is the branch …?").
_YES_NO_QUESTION = re.compile(
    r"\A[\W_]*(?:can|could|is|are|was|were|do|does|did|will|would|may|might|should|shall|has|have|am)\b", re.I)
# "… or …?" offers a choice; "… if they are faulty?" asks of a case the cited denial may not be about.
_CHOICE_OR_CONDITION = re.compile(r"\b(?:or|if|when|unless|once|after|before|until|till|except)\b", re.I)
_YES = re.compile(r"\A[\W_]*(?:yes|yeah|yep)\b(?=\s*(?:[,.!;:–—-]|\Z))", re.I)


def _yes_denied(asked: str, claim: str, claims: list[_Sentence], cited: list[_Sentence],
                known: frozenset[str]) -> list[tuple[int, int]]:
    """Return the answer's opening sentence when it is a "yes" that the cited sentence denies.

    The reply stands for the question said as a statement ("Yes." to "Is the branch open on
    Mondays?" says it is open on Mondays), judged like any clause against the cited sentence about
    the same thing ("closed on Sundays and Mondays"). A "no" is not judged: what it denies is often
    true of the asker alone ("My friend has no card. Can she book a room?" against "rooms can be
    booked by cardholders"), which the statement loses. A question that itself denies ("Can't I
    …?"), offers choices ("… or …?") or sets a condition ("… if they are faulty?") has no such reading.
    """
    reply = _YES.match(claim)
    asked_sentences = [asked[s:e] for s, e in _spans(asked, _SENTENCE_BREAK, 0, len(asked))]
    question = asked_sentences[-1].strip() if asked_sentences else ""
    if (reply is None or not claims or not question.endswith("?") or not _YES_NO_QUESTION.match(question)
            or _NEGATION.search(question.lower()) or _CHOICE_OR_CONDITION.search(question)):
        return []
    for sentence in _read(question.rstrip("?").strip(), known):
        for clause in sentence.clauses:
            closest, shared = _closest(clause, sentence, cited)
            about = closest[0] if shared >= MIN_SHARED_WORDS else None
            if _contradicted(clause, about):
                return [(claims[0].start, claims[0].end)]
    return []
