"""Read the documents a knowledge base is built from: Markdown, plain text and PDF."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

SUPPORTED_SUFFIXES = (".md", ".txt", ".pdf")


class UnreadableDocument(Exception):
    """A document that cannot be turned into text; `reason` says why in plain words."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"Cannot read {path}: {reason}.")


def load_text(path: Path) -> str:
    """Return the text of a .md, .txt or .pdf file, or raise UnreadableDocument."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(SUPPORTED_SUFFIXES)
        raise UnreadableDocument(path, f"unsupported file type {suffix or '(none)'!r}; use {kinds}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UnreadableDocument(path, f"could not open the file ({error.strerror})") from error
    text = _pdf_text(path, data) if suffix == ".pdf" else _decode(path, data)
    if not text.strip():
        reason = "no extractable text (a scanned PDF needs OCR)" if suffix == ".pdf" else "file is empty"
        raise UnreadableDocument(path, reason)
    return text


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


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        reason = f"not UTF-8 text (byte 0x{data[error.start]:02x} at position {error.start})"
        raise UnreadableDocument(path, reason) from error


def _pdf_text(path: Path, data: bytes) -> str:
    from io import BytesIO

    from pypdf import PdfReader

    try:
        reader = PdfReader(BytesIO(data))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except Exception as error:  # pypdf raises many unrelated types on damaged files
        raise UnreadableDocument(path, f"not a readable PDF ({error})") from error
