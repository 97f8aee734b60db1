"""Read the documents a knowledge base is built from: Markdown, plain text, HTML and PDF.

Every upload is hostile until read: `text_of` turns a file name and its bytes into text,
or raises UnreadableDocument with a short reason in our own words. It never lets a
decoder's, parser's or pypdf's exception (or its message) reach the user.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from io import BytesIO
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from chat.text import clean_text
from rag.html_text import declared_charset, page_text

if TYPE_CHECKING:
    from pypdf import PageObject, PdfReader

SUPPORTED_SUFFIXES = (".md", ".txt", ".pdf", ".html", ".htm")

EMPTY = "file is empty"
BINARY = "looks like a binary file, not text (was it renamed?)"
PDF_DAMAGED = "not a readable PDF (it is damaged, or not really a PDF)"
PDF_PROTECTED = "is password-protected; save an unprotected copy"
PDF_NO_TEXT = "no extractable text (a scanned PDF needs OCR)"
HTML_NO_TEXT = "the page has no text (only markup or scripts)"
HTML_BROKEN = "not readable HTML (the markup is too broken to follow)"

# Binary sniffing looks at the start only: enough to catch a renamed image or archive.
_SNIFF_CHARS = 8192
_MAX_CONTROL_SHARE = 0.10
# Unicode's control characters (category Cc) except tab, newline, carriage return and form feed.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_HTML_SUFFIXES = (".html", ".htm")


class UnreadableDocument(Exception):
    """A document that cannot be turned into text; `reason` says why in plain words."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"Cannot read {path}: {reason}.")


def text_of(name: str, data: bytes) -> str:
    """Return the text of the document `name` (only its suffix matters) holding `data`."""
    suffix = _supported_suffix(name)
    if not data.strip():
        raise UnreadableDocument(name, EMPTY)
    if suffix == ".pdf":
        text = _pdf_text(name, data)
    elif suffix in _HTML_SUFFIXES:
        text = _html_text(name, data)
    else:
        text = _decode(name, data)
    text = clean_text(_without_controls(text))  # a PDF's font can map a glyph to a lone surrogate
    if not text.strip():
        reasons = {".pdf": PDF_NO_TEXT, ".html": HTML_NO_TEXT, ".htm": HTML_NO_TEXT}
        raise UnreadableDocument(name, reasons.get(suffix, EMPTY))
    return text


def load_text(path: Path) -> str:
    """Return the text of a supported file on disk, or raise UnreadableDocument."""
    path = Path(path)
    _supported_suffix(path.name, shown_as=path)  # refuse before reading a large unsupported file
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UnreadableDocument(path, _open_failure(error)) from None
    try:
        return text_of(path.name, data)
    except UnreadableDocument as error:
        raise UnreadableDocument(path, error.reason) from None


def collect_files(paths: Iterable[Path]) -> list[Path]:
    """Expand folders recursively into the supported files inside them, in a stable order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.is_file() and _is_supported(p))
            files.extend(sorted(found))
        else:
            # An explicit file is kept whatever its suffix so load_text can say what is wrong.
            files.append(path)
    return files


def iter_documents(paths: Iterable[Path]) -> Iterator[tuple[Path, str | UnreadableDocument]]:
    """Yield (file, text) for every document under `paths`, or (file, error) for unreadable ones."""
    for path in collect_files(paths):
        try:
            yield path, load_text(path)
        except UnreadableDocument as error:
            yield path, error


def _is_supported(path: Path) -> bool:
    # Hidden files (editor backups, .DS_Store) are never knowledge.
    return path.suffix.lower() in SUPPORTED_SUFFIXES and not path.name.startswith(".")


def _supported_suffix(name: str, shown_as: str | Path | None = None) -> str:
    """Return the lower-case suffix of `name`, or refuse a type we do not read."""
    suffix = PurePath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(SUPPORTED_SUFFIXES[:-1]) + " or " + SUPPORTED_SUFFIXES[-1]
        found = repr(suffix) if suffix else "(none)"
        raise UnreadableDocument(
            name if shown_as is None else shown_as, f"unsupported file type {found}; use {kinds}"
        )
    return suffix


def _open_failure(error: OSError) -> str:
    # The operating system's own wording varies by platform and language; ours does not.
    if isinstance(error, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(error, FileNotFoundError):
        return "could not open the file (it does not exist)"
    if isinstance(error, PermissionError):
        return "could not open the file (no permission to read it)"
    return "could not open the file"


# Text: .md and .txt


def _decode(name: str, data: bytes, fallback: str | None = None) -> str:
    """Decode UTF-8 (with or without a BOM), else `fallback`, refusing binary files."""
    if b"\x00" in data:
        raise UnreadableDocument(name, _nul_reason(data))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        text = _decode_as(data, fallback)
        if text is None:
            # Binary bytes read as Latin-1 are full of control characters; real text is not.
            if _looks_binary(data[:_SNIFF_CHARS].decode("latin-1")):
                raise UnreadableDocument(name, BINARY) from None
            reason = f"not UTF-8 text (byte 0x{data[error.start]:02x} at position {error.start})"
            raise UnreadableDocument(name, reason) from None
    if _looks_binary(text[:_SNIFF_CHARS]):
        raise UnreadableDocument(name, BINARY)
    return text


def _nul_reason(data: bytes) -> str:
    # Windows tools save "Unicode" text as UTF-16, which is full of NUL bytes but not binary.
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "not UTF-8 text (it is UTF-16; save it as UTF-8)"
    return BINARY


def _decode_as(data: bytes, encoding: str | None) -> str | None:
    """Decode with a declared encoding Python knows, or return None."""
    # UTF-8 has failed already, and a page found to declare UTF-16 or -32 by reading it as
    # ASCII cannot really be either.
    family = (encoding or "").lower().replace("-", "").replace("_", "")
    if not family or family.startswith(("utf8", "utf16", "utf32")):
        return None
    # Pages labelled Latin-1 or ASCII are really Windows-1252 (curly quotes, dashes); browsers
    # read them so, and fall back to the label only where Windows-1252 leaves a byte undefined.
    tries = (
        ("cp1252", encoding) if family in ("iso88591", "latin1", "l1", "ascii", "usascii") else (encoding,)
    )
    for attempt in tries:
        try:
            return data.decode(attempt)
        except (LookupError, UnicodeError, ValueError, TypeError):  # unknown, not a text codec, or wrong
            continue
    return None


def _looks_binary(sample: str) -> bool:
    return len(_CONTROLS.findall(sample)) > _MAX_CONTROL_SHARE * len(sample)


def _without_controls(text: str) -> str:
    """Drop the control characters a text may still hold, so nothing downstream carries them."""
    return _CONTROLS.sub("", text)


# HTML


def _html_text(name: str, data: bytes) -> str:
    """Return an HTML page as Markdown-ish text: headings, paragraphs and bullets (rag/html_text.py)."""
    page = _decode(name, data, fallback=declared_charset(data))
    try:
        return page_text(page)
    except Exception:  # lenient as the parser is, its own errors must never reach the user
        raise UnreadableDocument(name, HTML_BROKEN) from None


# PDF


def _pdf_text(name: str, data: bytes) -> str:
    """Return the text of every page that has any, or say why there is none."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    # Readers tolerate a little junk before the header, but a PDF without one is something else.
    if b"%PDF-" not in data[:1024]:
        raise UnreadableDocument(name, PDF_DAMAGED)
    # pypdf raises many unrelated types on damaged or hostile files, RecursionError
    # (a RuntimeError) among them on deep nesting; none of their messages are for users.
    try:
        reader = PdfReader(BytesIO(data))
        locked = reader.is_encrypted and not _unlocked(reader)
        pages = [] if locked else list(reader.pages)
    except FileNotDecryptedError:
        locked = True
    except Exception:
        raise UnreadableDocument(name, PDF_DAMAGED) from None
    if locked:
        raise UnreadableDocument(name, PDF_PROTECTED)
    texts, failed = _page_texts(pages)
    if not any(text.strip() for text in texts):
        raise UnreadableDocument(name, PDF_DAMAGED if failed else PDF_NO_TEXT)
    return "\n\n".join(texts)


def _unlocked(reader: PdfReader) -> bool:
    """Try the empty password, which opens PDFs that only restrict printing or editing."""
    from pypdf import PasswordType

    try:
        return reader.decrypt("") != PasswordType.NOT_DECRYPTED
    except Exception:  # an encryption scheme pypdf cannot handle is, to the user, a lock
        return False


def _page_texts(pages: list[PageObject]) -> tuple[list[str], bool]:
    """Return the text of each page that yields any, and whether some page could not be read."""
    texts, failed = [], False
    for page in pages:
        try:
            texts.append(page.extract_text() or "")
        except Exception:  # one damaged page should not cost the reader the others
            failed = True
    return texts, failed
