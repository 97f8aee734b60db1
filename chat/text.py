"""Untrusted text made storable: the one normaliser every boundary calls.

User messages, model output, tool results and retrieved documents can carry code points no
UTF-8 store can hold (a lone UTF-16 surrogate such as "\\ud800", which JSON happily decodes)
or that some stores refuse (NUL, which Postgres rejects in text). Each becomes U+FFFD, the
replacement character, so one odd character costs at most itself.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")


def clean_text(text: str) -> str:
    """Return `text` with lone surrogates and NUL replaced by U+FFFD."""
    if text.isascii() and "\x00" not in text:
        return text
    return _UNSTORABLE.sub(REPLACEMENT, text)


def clean_value(value: Any) -> Any:
    """Return `value` (str, or lists and dicts of them) with every string cleaned."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_value(key): clean_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(clean_value(item) for item in value)
    return value
