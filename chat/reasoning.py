"""Separate `<think>…</think>` reasoning from answer text in a token stream."""

from __future__ import annotations

from typing import Literal

OPEN, CLOSE = "<think>", "</think>"
Part = tuple[Literal["reasoning", "answer"], str]


class ThinkTagSplitter:
    """Split streamed text into reasoning and answer parts, tags possibly cut across chunks."""

    def __init__(self) -> None:
        self._thinking = False
        self._pending = ""  # a tail that may be the start of a tag

    def feed(self, text: str) -> list[Part]:
        """Return the parts `text` completes; hold back a possible partial tag."""
        buffer, parts = self._pending + text, []
        self._pending = ""
        while buffer:
            tag = CLOSE if self._thinking else OPEN
            index = buffer.find(tag)
            if index >= 0:
                self._emit(parts, buffer[:index])
                buffer = buffer[index + len(tag) :]
                self._thinking = not self._thinking
                continue
            keep = _partial_tag_suffix(buffer, tag)
            self._emit(parts, buffer[: len(buffer) - keep])
            self._pending = buffer[len(buffer) - keep :]
            break
        return parts

    def flush(self) -> list[Part]:
        """Return whatever is held back at the end of the stream."""
        parts: list[Part] = []
        self._emit(parts, self._pending)
        self._pending = ""
        return parts

    def _emit(self, parts: list[Part], text: str) -> None:
        if text:
            parts.append(("reasoning" if self._thinking else "answer", text))


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
