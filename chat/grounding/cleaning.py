"""Untrusted text bounded and cleaned before any pattern sees it: markup and notes that claim nothing are
blanked (offsets kept), and e-mail addresses, links and names after "called" are checked whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from chat.text import clean_text

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
