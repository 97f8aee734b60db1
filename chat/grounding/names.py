"""Names: the capitalised words and runs an answer may only use if a source (or the assistant's own
name, or the user's lower-case words) writes them, and the stop words that name nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from chat.grounding.cleaning import _bounded, _first
from chat.quantities import NUMBER_WORDS

MAX_KNOWN_NAMES = 20
MAX_KNOWN_NAME_CHARS = 200

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
