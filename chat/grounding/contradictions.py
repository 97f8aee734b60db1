"""Contradictions: an answer clause's numbers, polarity and needs against the cited sentence it is about.
"""

from __future__ import annotations

import re

from chat.grounding.names import _STOP_WORDS, _NameIndex
from chat.grounding.sentences import _ONLY_WHO, MIN_SHARED_WORDS, _Clause, _closest, _Sentence
from chat.quantities import Facts, Quantity, range_end


def _unsupported_in(
    sentence: _Sentence, cited: list[_Sentence], facts: Facts, names: _NameIndex, claim: str
) -> list[tuple[int, int]]:
    """Return the spans of one answer sentence that the cited sentences do not back."""
    spans = []
    for clause in sentence.clauses:
        closest, shared = _closest(clause, sentence, cited)
        about = closest[0] if shared >= MIN_SHARED_WORDS else None
        inside = [q for q in sentence.quantities if clause.start <= q.start < clause.end]
        spans += [
            (q.start, q.end)
            for q in inside
            if not facts.back(q) or _contradicts(q, inside, about, closest, facts) or _cuts_range(q, about, claim)
        ]
        if not clause.negated:  # "we don't ship to Mexico" needs no source naming Mexico
            spans += [(n.start, n.end) for n in clause.names if not names.knows(n)]
        if _contradicted(clause, about):
            spans.append((clause.start, clause.end))
    return spans


def _contradicts(
    quantity: Quantity,
    inside: list[Quantity],
    about: _Sentence | None,
    closest: list[_Sentence],
    facts: Facts,
) -> bool:
    """Return whether a number found in the sources still contradicts the fact its clause is about."""
    if quantity.pair and quantity.pair not in facts.pairs:
        if any(set(quantity.pair) & set(pair) for pair in facts.pairs):
            return True  # "5 to 7 days" where the sources say "3 to 5 days"
    if about is None or quantity.kind not in ("number", "duration", "money", "percent", "time"):
        return False
    if any(s.facts.back(quantity) for s in closest):
        return False  # the value is at home in a sentence as close to the claim as any
    same_kind = [q for q in inside if q.kind == quantity.kind]
    return any(q.kind == quantity.kind for q in about.quantities) and not any(
        about.facts.back(q) for q in same_kind
    )


# What lets one end of a range stand alone: "at least 3 days" of "3 to 5 days", "up to 5 days".
_FROM = re.compile(r"\b(?:at least|from|as (?:few|little|soon|early) as|starting at|minimum of|min\.?)\W*\Z", re.I)
_UP_TO = re.compile(
    r"\b(?:up to|at most|within|no more than|as (?:many|much|long|late) as|maximum of|max\.?|under|less than)\W*\Z",
    re.I,
)
_OR_MORE = re.compile(r"\W*(?:or (?:more|longer|over)|and up|\+)", re.I)
_OR_LESS = re.compile(r"\W*(?:or (?:less|fewer|sooner|under))", re.I)


def _cuts_range(quantity: Quantity, about: _Sentence | None, claim: str) -> bool:
    """Return whether the claim gives one end of its sentence's range as the whole value.

    "Standard delivery takes 3 business days" where the sentence says "3 to 5": the model
    dropped an end. "At least 3 days" and "up to 5 days" say what the range says.
    """
    if quantity.pair or about is None or quantity.kind not in ("number", "duration", "money", "percent"):
        return False
    end = range_end(quantity)
    pairs = [pair for pair in about.facts.pairs if end in pair]
    if not pairs or any(not q.pair and q.backs & quantity.keys for q in about.quantities):
        return False
    before, after = claim[max(0, quantity.start - 40) : quantity.start], claim[quantity.end : quantity.end + 20]
    if pairs[0][0] == end:
        return not (_FROM.search(before) or _OR_MORE.match(after))
    return not (_UP_TO.search(before) or _OR_LESS.match(after))


def _contradicted(clause: _Clause, about: _Sentence | None) -> bool:
    """Return whether the cited sentence a clause is about says otherwise: it denies what the clause
    says (or says what it denies), or the clause misstates what it needs."""
    return about is not None and (_flips_polarity(clause, about) or _misstates_a_need(clause, about))


def _flips_polarity(clause: _Clause, about: _Sentence) -> bool:
    """Return whether the source sentence denies what the clause says, or says what it denies."""
    for other in about.clauses:
        if other.negated == clause.negated:
            continue
        negated, plain = (clause, other) if clause.negated else (other, clause)
        if (negated.limited and not _same_condition(negated, plain)) or plain.only_if or not _says_denied(plain, negated):
            continue
        if _needs(plain, _done_without(negated)):
            continue  # "you can't edit notes offline" is what "you need an internet connection to edit" says
        if (only := _ONLY_WHO.search(plain.wording)) and only.group(1) not in _STOP_WORDS | negated.tokens:
            continue  # "only cardholders can book a room" denies nothing "guests can't book rooms" says
        # "Not to Mexico" or "not on 5 GHz" denies nothing about Canada or 2.4 GHz; but "of a Loop
        # bike" does not make "dogs cannot ride in the basket" true of some other basket.
        if negated.scope - plain.tokens and {t for t in plain.tokens if ":" in t} - negated.tokens:
            continue
        return True
    return False


_WITHOUT = re.compile(r" without (?:a |an |the |any |your |my |their )?(\w+) ")
_OFFLINE = ("internet", "connection", "connect", "network", "onlin")  # what "offline" goes without, as stems


def _misstates_a_need(clause: _Clause, about: _Sentence) -> bool:
    """Return whether the clause does without what the source says is needed, or needs what it does without.

    "You can walk in without an appointment" against "every visit needs a booked appointment", or
    "a receipt is required"; "edit your notes offline" against "you need an internet connection to
    edit your notes"; "everyone needs an Inkwell account to read the note" against "a public link
    lets anyone view a note … without an Inkwell account". "You can't return it without a receipt"
    agrees, and is not judged here; nor is a clause that names another case than the source ("on
    Plus", against "on the Free plan").
    """
    names, named = ({t for t in c.tokens if t.startswith("name:")} for c in (clause, about))
    if clause.negated or (names - named and named - names):
        return False
    plain = [other for other in about.clauses if not other.negated]
    if any(_needs(other, _done_without(clause)) for other in plain):
        return True
    # The other way, only when the claim says what for ("… to read the note") and the source does that
    # without it: "you need an Inkwell account to edit a note" is not denied by viewing without one.
    # Only "without": a section's heading ("Offline notes: you need a connection …") is no doing without.
    for other in plain:
        for match in _WITHOUT.finditer(other.wording):
            needed_for = re.search(rf"(?:{_need_of(re.escape(match.group(1)))})(?:\w+ )?to (\w+) ", clause.wording)
            if needed_for and needed_for.group(1) in other.words:
                return True
    return False


def _done_without(clause: _Clause) -> list[str]:
    """Return the stems of what a clause does without: "without a receipt", "offline"."""
    things = [match.group(1) for match in _WITHOUT.finditer(clause.wording)]
    return things + list(_OFFLINE) if " offlin " in clause.wording else things


def _needs(clause: _Clause, things: list[str]) -> bool:
    """Return whether a clause says one of `things` is needed: "every visit needs a booked appointment"."""
    return any(re.search(_need_of(thing), clause.wording) for thing in map(re.escape, things))


def _need_of(thing: str) -> str:
    """Return the pattern of a need of `thing` (escaped) in a clause's padded stems: " need an internet "."""
    return (rf" (?:need|requir|must have|must bring|must show)\w* (?:\w+ ){{0,3}}{thing} "
            rf"| {thing} (?:\w+ )?(?:is|are) (?:always |also )?requir\w* ")


def _same_condition(negated: _Clause, plain: _Clause) -> bool:
    """Return whether both clauses name the condition: "cannot ... without a receipt" against "can ... without one"."""
    return any(f" {word} " in plain.wording for word in ("without", "offlin", "alone", "own")
               if f" {word} " in negated.wording)


def _says_denied(plain: _Clause, negated: _Clause) -> bool:
    """Return whether the plain clause says what the negated one denies, in its words or others.

    Other words are the same complement of the same subject: "you can take your dog in the
    basket" says what "dogs cannot ride in the basket" denies; "you can place a second order" is
    not what "items cannot be added to an order" denies.
    """
    if any(all(word in plain.tokens for word in denied.split(" ")) for denied in negated.focus):
        return True
    return bool(negated.said_of & plain.tokens) and any(c in plain.wording for c in negated.complements)


def _outermost(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Return the spans in answer order, without repeats or spans inside another."""
    kept: list[tuple[int, int]] = []
    for start, end in sorted(set(spans), key=lambda s: (s[0], -s[1])):
        if not kept or end > kept[-1][1]:
            kept.append((start, end))
    return kept
