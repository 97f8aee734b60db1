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
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from chat.quantities import NUMBER_WORDS, Facts, Quantity, range_end, read_quantities
from chat.text import clean_text

MAX_ANSWER_CHARS = 4_000
MAX_SOURCES = 50
MAX_SOURCE_CHARS = 1_000  # a retrieved chunk is at most 600 (rag/splitting.py)
MAX_KNOWN_NAMES = 20
MAX_KNOWN_NAME_CHARS = 200
MAX_UNSUPPORTED = 20  # spans reported; beyond that the verdict will not change
MIN_SHARED_WORDS = 2  # below this, an answer clause and a source sentence are not about the same thing


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


# --- Bounding and cleaning untrusted text -----------------------------------------------------------

_BLANK = re.compile(r"[^\n]")
_MARKUP = re.compile(
    r"<[a-zA-Z/!][^<>]{0,300}>"  # HTML tags
    r"|&#?[a-zA-Z0-9]{1,10};"  # HTML entities
    r"|(?<=\])\([^()\s]{0,500}\)"  # markdown link targets; the link text stays
    r"|^[ \t]*#{1,6}[ \t][^\n]*"  # markdown headings label, they do not claim
    r"|^[ \t]*(?:[0-9]{1,2}[.)]|[-+•])(?=[ \t])"  # list markers, so "1." is not a number
    r"|[*_`~|>]",
    re.M,
)
# What the app or the model adds that claims nothing: a trailing source list, the app's notes.
_NOT_CLAIMS = re.compile(
    r"^[ \t]*(?:sources?|references?|citations?)[ \t]*:.*\Z"
    r"|\((?:sources?|see)[ \t]*:[^)\n]{0,300}\)"
    r"|(?:\(the answer was cut off|\[answer cut off|\[no answer|\(the model returned an empty answer"
    r"|⚠|⏹)[^\n]*",
    re.I | re.M | re.S,
)
_IDENTIFIER = re.compile(
    r"\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,5}|\b(?:https?://|www\.)[^\s<>\"'()\[\]]{1,300}", re.I
)


def _first(sources: object, limit: int) -> list[object]:
    if isinstance(sources, str):
        return [sources]
    if not isinstance(sources, Iterable):
        return []
    first: list[object] = []
    for source in sources:
        if len(first) == limit:
            break
        first.append(source)
    return first


def _bounded(text: object, limit: int) -> str:
    return clean_text(text[:limit]) if isinstance(text, str) else ""


def _mask(text: str, pattern: re.Pattern[str]) -> str:
    """Blank what `pattern` matches, keeping every offset (and line break) where it was."""
    return pattern.sub(lambda m: _BLANK.sub(" ", m.group()), text)


def _strip_markup(text: str) -> str:
    return _mask(text, _MARKUP)


def _claim_text(answer: str) -> str:
    return _mask(_strip_markup(answer), _NOT_CLAIMS)


def _unsupported_identifiers(text: str, sources: str) -> list[tuple[int, int]]:
    """Return the spans of e-mail addresses and links the sources never mention."""
    spans = []
    for match in _IDENTIFIER.finditer(text):
        written = match.group().rstrip(".,;:!?")
        if re.sub(r"^(?:https?://)?(?:www\.)?", "", written.lower().rstrip("/")) not in sources:
            spans.append((match.start(), match.start() + len(written)))
    return spans


# "The network is called RPL-Public": what follows a naming verb is a name, to be found whole.
_CALLED = re.compile(
    r"\b(?:called|named|known as)\s+(?:the\s+)?[\"“']?([A-Z0-9][\w'’&.+-]*(?:[ \t]+[A-Z0-9][\w'’&.+-]*){0,5})"
)


def _unsupported_called(text: str, sources: str) -> list[tuple[int, int]]:
    """Return the spans of names given after "called" or "named" that no source writes as they are."""
    spans, sources = [], " ".join(sources.split())
    for match in _CALLED.finditer(text):
        name = match.group(1).rstrip(".,;:!?'’")
        if name and " ".join(name.lower().split()) not in sources:
            spans.append((match.start(1), match.start(1) + len(name)))
    return spans


# --- Names ---------------------------------------------------------------------------------------------

_SENTENCE_START = re.compile(r"(?:\A|[.!?:;][ \t]|\n)[\W_]*")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_LETTERS = re.compile(r"[^\W\d_]+")
_COMPOUND = re.compile(r"(?<![^\W\d_])[^\W\d_]++(?:[-'’.][^\W\d_]++)+")
_CAPITALISED_RUN = re.compile(r"\b[A-Z][^\W\d_]*(?: [A-Z][^\W\d_]*){1,5}\b")
_APOSTROPHE = re.compile("['’]")
_TERM = re.compile(r"[^\W_]+")  # a word or a number, apostrophes apart: "can't" is "can" and "t"
_UNITED_STATES = frozenset({"us", "usa", "united", "states", "america"})


@dataclass(frozen=True)
class _Name:
    """A capitalised phrase: "Portland", "Care Plus", "ET"."""

    start: int
    end: int
    keys: tuple[str, ...]  # its words, lower-cased


def _names(text: str, rest: str) -> list[_Name]:
    """Return the capitalised phrases of `text` that are not a sentence's first word or a common word.

    A hyphenated name is one word ("RPL-Guest" is "rplguest"): known only if a source writes it whole,
    not because "RPL" and "guest" each appear somewhere.
    """
    starts = {m.end() for m in _SENTENCE_START.finditer(text)}
    names: list[list[tuple[int, int, str]]] = []  # phrases of words: (start, end, key)
    phrase: list[tuple[int, int, str]] = []
    for match in _WORD.finditer(rest):
        if not _is_name(match, starts):
            continue
        gap = rest[phrase[-1][1] : match.start()] if phrase else " "
        if gap == "-":  # not a dash: "Monday–Friday" is two names
            start, _, key = phrase[-1]
            phrase[-1] = (start, match.end(), key + _name_key(match.group()))
            continue
        if gap != " ":
            names.append(phrase)
            phrase = []
        phrase.append((match.start(), match.end(), _name_key(match.group())))
    names += [phrase] if phrase else []
    return [_Name(p[0][0], p[-1][1], tuple(key for _, _, key in p)) for p in names]


def _is_name(match: re.Match[str], starts: set[int]) -> bool:
    word, key = match.group(), _name_key(match.group())
    return (
        word[0].isupper()
        and match.start() not in starts
        and key not in _NOT_NAMES
        and len(key) > 1
        and not (word.isupper() and len(word) > 3)
    )  # "NOT", "FREE": emphasis, not names


def _name_key(word: str) -> str:
    """Return a word's lower-cased key without its ending: "Acme's" and "I'm" are "acme" and "i"."""
    return _APOSTROPHE.split(word.lower())[0]


def _known_keys(known_names: Iterable[str]) -> frozenset[str]:
    """Return the keys of the names' words: "Acme's support assistant" gives "acme", "support", "assistant"."""
    return frozenset(
        _name_key(word.group())
        for name in _first(known_names, MAX_KNOWN_NAMES)
        for word in _WORD.finditer(_bounded(name, MAX_KNOWN_NAME_CHARS))
    )


def _words_written(text: str) -> set[str]:
    """Return the lower-cased words of `text`, and its compounds joined up ("RPL-Public" is also "rplpublic")."""
    lowered = text.lower()
    return set(_LETTERS.findall(lowered)) | {re.sub(r"[-'’.]", "", w) for w in _COMPOUND.findall(lowered)}


class _NameIndex:
    """Every word of the cited sentences and of the known names, to look names up in any case."""

    def __init__(self, texts: list[str], known: frozenset[str]) -> None:
        words: set[str] = set().union(*(_words_written(text) for text in texts))
        self.joined = " ".join(sorted(words))
        self.united_states = bool(words & _UNITED_STATES)
        self.words = words | _acronyms(texts)
        self.known = known

    def knows(self, name: _Name) -> bool:
        return self._knows("".join(name.keys)) or all(self._knows(key) for key in name.keys)

    def _knows(self, key: str) -> bool:
        if key in self.words or key in self.known or (key.endswith("s") and key[:-1] in self.words):
            return True
        if key in _UNITED_STATES:
            return self.united_states
        return len(key) >= 4 and key in self.joined  # "Sound" in "SoundBar"


def _acronyms(texts: list[str]) -> set[str]:
    """Return the initials of the sources' capitalised phrases: "ET" stands for "Eastern Time"."""
    found = set()
    for text in texts:
        for run in _CAPITALISED_RUN.finditer(text):
            initials = "".join(word[0] for word in run.group().split()).lower()
            found.update(initials[i:j] for i in range(len(initials)) for j in range(i + 2, len(initials) + 1))
    return found


# --- Sentences, clauses and their polarity -------------------------------------------------------------

# Each whitespace run is tried from its start only ("(?<!\s)"), or a long run would cost its square.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*[ \t]+|(?<!\s)\s*\n\s*")
_CLAUSE_BREAK = re.compile(
    r"(?<!\s)\s*;\s*|,\s*(?=(?:but|and|or|so|yet|while|whereas|although|though|however|not|as well as)\b)"
    r"|(?<!\s)\s+(?=but\b)|(?<!\s)\s+[–—-]\s+",
    re.I,
)
_STOP_WORDS = frozenset(
    """a about above after again all also am an and any anything are as at be because been before being both
    but by can could did do does doing done don down during each either else even ever every everything few
    for from further get gets getting got had has have having he her here hers him his how however i if in
    into is it its itself just know let lets like may me might more most much must my need no nor not now of
    off on once only or other our ours out over own per please really same shall she should so some
    something such sure than that the their theirs them then there these they this those though through to
    too under until up upon us very via was we were what when where whether which while who whom whose why
    will with within without would yes yet you your yours hi hello hey ok okay glad happy help great thank
    thanks feel won isn aren doesn didn wasn weren shouldn couldn wouldn haven hasn hadn mustn hundred""".split()
) | frozenset(NUMBER_WORDS)
# Capitalised words that name nothing: greetings, sign-offs, and the stop words after a colon.
_NOT_NAMES = _STOP_WORDS | frozenset(
    """sorry unfortunately note tip dear best regards cheers welcome good absolutely certainly of course
    support team customer service assistant""".split()
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
