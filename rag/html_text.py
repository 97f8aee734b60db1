"""HTML as the Markdown-ish text our splitter reads: headings, paragraphs and list items.

The stdlib parser, made safe for hostile pages: unknown marked sections are read as comments and
unfinished markup at the end is dropped, as browsers do, instead of raising or taking quadratic time.
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE)
_UNKNOWN_SECTION = re.compile(
    r"<!\[(?!(?:cdata|if|else|endif|temp|ignore|include|rcdata)(?![-_.a-z0-9]))", re.IGNORECASE
)
_DROPPED = frozenset({"script", "style", "noscript", "template", "svg"})
# What may appear in <head>; any other tag means the body has begun, closed or not.
_HEAD_TAGS = frozenset({"title", "meta", "link", "base", "style", "script", "noscript", "template"})
_PARAGRAPH_TAGS = frozenset(
    "p div section article blockquote pre table thead tbody tfoot tr ul ol dl header footer main nav"
    " aside figure figcaption hr address details summary caption form fieldset body html".split()
)
_LINE_TAGS = frozenset({"br", "li", "dt", "dd"})
_HEADINGS = {f"h{level}": level for level in range(1, 7)}




def declared_charset(data: bytes) -> str | None:
    """Return the encoding a page's <meta> declares, if it declares one."""
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


def page_text(page: str) -> str:
    """Return the readable text of an HTML page, its headings as Markdown headings."""
    parser = _PageText()
    # The stdlib parser (3.11) asserts on marked sections it does not know, "<![foo[";
    # browsers read them as comments that end at the next ">", and so do we.
    parser.feed(_UNKNOWN_SECTION.sub("<!-[", page))
    return parser.finish()


class _PageText(HTMLParser):
    """Collect the readable text of a page, keeping its headings, paragraphs and list items."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._lines: list[str] = []
        self._buffer: list[str] = []
        self._prefix = ""  # "## " or "- " for the next line written
        self._dropped: list[str] = []  # open script, style, svg... whose text we skip
        self._in_head = self._in_title = self._in_pre = self._saw_h1 = self._has_text = False
        self._title: list[str] = []

    def finish(self) -> str:
        """End the page the way browsers do and return its text, titled by <title> if it has no <h1>."""
        # Not close(): on markup left unfinished at the end ("<a <a <a ...") it takes quadratic
        # time in Python 3.11.7 (CVE-2025-6069). What feed() could not finish is either
        # markup that runs to the end, which browsers drop, or text held back in case it ends
        # in half an entity.
        rest, self.rawdata = self.rawdata, ""
        if not rest.startswith("<"):
            self.handle_data(unescape(rest))
        self._end_line()
        title = " ".join("".join(self._title).split())
        lines = [f"# {title}", ""] if title and not self._saw_h1 else []
        return "\n".join(lines + self._lines).strip() + "\n"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            self._dropped.append(tag)
        elif tag == "head":
            self._in_head = True
        elif tag == "title" and not self._dropped:
            self._in_title = True
        if tag not in _HEAD_TAGS and tag != "head":
            self._in_head = False
        if tag in _HEADINGS:
            self._paragraph()
            self._prefix = "#" * _HEADINGS[tag] + " "
        elif tag == "li":
            self._end_line()
            self._prefix = "- "
        elif tag in ("td", "th") and self._has_text:
            self._buffer.append(" | ")
        self._break(tag)
        if tag == "pre":
            self._in_pre = True

    def handle_endtag(self, tag: str) -> None:
        if tag in self._dropped:
            del self._dropped[len(self._dropped) - 1 - self._dropped[::-1].index(tag) :]
        elif tag == "head":
            self._in_head = False
        elif tag == "title":
            self._in_title = False
        if tag in _HEADINGS:
            self._paragraph()
            self._prefix = ""
        elif tag == "li":
            self._end_line()
            self._prefix = ""
        self._break(tag)
        if tag == "pre":
            self._in_pre = False

    def handle_data(self, data: str) -> None:
        if self._dropped:
            return
        if self._in_title:
            self._title.append(data)
        elif not self._in_head:
            self._buffer.append(data)
            self._has_text = self._has_text or not data.isspace()

    def _break(self, tag: str) -> None:
        if tag in _PARAGRAPH_TAGS:
            self._paragraph()
        elif tag in _LINE_TAGS:
            self._end_line()

    def _end_line(self) -> None:
        text = "".join(self._buffer)
        self._buffer, self._has_text = [], False
        if self._in_pre:  # preformatted text keeps its own line breaks
            lines = [line.rstrip() for line in text.strip("\n").splitlines()]
        else:
            lines = [" ".join(text.split())]
        lines = [line for line in lines if line.strip()]
        if lines:
            self._saw_h1 = self._saw_h1 or self._prefix == "# "
            lines[0] = self._prefix + lines[0]
            self._lines.extend(lines)
            self._prefix = ""

    def _paragraph(self) -> None:
        self._end_line()
        if self._lines and self._lines[-1]:
            self._lines.append("")
