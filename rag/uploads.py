"""Documents uploaded from the page or `POST /api/kb/NAME/documents`, one file at a time.

Each file is checked (its name, type and size), read and added on its own, so a bad file
costs only itself: the others still go in, and every file gets one result line in plain
words. Nothing is written to disk here: a document's text goes straight into the knowledge
base, named after the file, so a hostile file name can never point outside APP_STATE_DIR.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from rag.loading import SUPPORTED_SUFFIXES, UnreadableDocument, text_of
from rag.splitting import split_into_chunks
from rag.store import KnowledgeBase

if TYPE_CHECKING:
    from rag.bases import KnowledgeBases

log = logging.getLogger("glassbox.knowledge")
NAME_MAX_CHARS = 200
MANIFEST = "manifest.json"  # uploaded beside the documents: the knowledge base's identity
EVAL_SET = "eval.jsonl"  # uploaded beside the documents: the knowledge base's own evaluation set
MAX_FILES = 100  # in one upload


@dataclass(frozen=True)
class UploadResult:
    """What became of one uploaded file."""

    file: str  # its name, made printable
    ok: bool
    message: str  # "added: 12 chunks" or why it was refused
    chunks: int = 0  # the document's chunks after the upload
    new_chunks: int = 0  # of which were embedded now (an unchanged re-upload embeds none)

    def to_dict(self) -> dict[str, object]:
        """Return the result as JSON-ready data."""
        return asdict(self)


def printable(name: object) -> str:
    """Return a file name safe to show: control characters as '?', at most NAME_MAX_CHARS."""
    text = "".join("?" if unicodedata.category(c)[0] == "C" else c for c in str(name or ""))
    return text[:NAME_MAX_CHARS] or "(no name)"


def name_problem(name: object) -> str | None:
    """Return why `name` can't name a document, or None if it can."""
    if not isinstance(name, str) or not name.strip():
        return "the file has no name"
    if any(unicodedata.category(c)[0] == "C" for c in name):
        return "the file name has control characters in it; rename the file and upload it again"
    if "/" in name or "\\" in name or name in (".", ".."):
        return "the file name has a slash or '..' in it; upload the file itself, under a plain name"
    if name.startswith("."):
        return "hidden files (names starting with '.') are not documents"
    if len(name) > NAME_MAX_CHARS:
        return f"the file name is over {NAME_MAX_CHARS} characters; shorten it"
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return f"unsupported file type {suffix or '(none)'!r}; use {', '.join(SUPPORTED_SUFFIXES)}"
    return None


@dataclass(frozen=True)
class Upload:
    """One file as it arrived: its name as sent, its size, and how to read it (only if it passes)."""

    name: object
    size: int
    read: Callable[[], bytes]


def add_upload(kb: KnowledgeBase, upload: Upload, max_bytes: int) -> UploadResult:
    """Check, read and add one file; never raise for anything the file itself is or says."""
    shown, name = printable(upload.name), upload.name
    problem = name_problem(name)
    if problem is not None:
        return UploadResult(shown, False, problem)
    if upload.size > max_bytes:
        return UploadResult(shown, False, f"the file is {_mb(upload.size)}, over the {_mb(max_bytes)} limit (MAX_UPLOAD_MB)")
    try:
        text = text_of(str(name), upload.read())
    except UnreadableDocument as unreadable:
        return UploadResult(shown, False, unreadable.reason)
    except OSError:
        return UploadResult(shown, False, "the upload could not be read back; send it again")
    chunks = split_into_chunks(text, source=str(name))
    if not chunks:
        return UploadResult(shown, False, "no sentences to search in it")
    try:
        replaced = bool(kb.ids_of(str(name)))
        added = kb.add_chunks(chunks)
    except Exception:  # the store or the embedding model failed: this file only
        log.exception("storing an upload failed", extra={"file": shown})
        return UploadResult(shown, False, "it could not be stored (was the knowledge base deleted meanwhile?); "
                            "upload it again")
    verb = "replaced the earlier version" if replaced else "added"
    return UploadResult(shown, True, f"{verb}: {len(chunks)} chunks", len(chunks), added)


def add_uploads(kb: KnowledgeBase, uploads: Iterable[Upload], max_bytes: int,
                on_result: Callable[[UploadResult], None] | None = None) -> list[UploadResult]:
    """Add every file in turn, each on its own.

    Two files of the same name in one upload: the second is refused, as it would replace the first.
    """
    results: list[UploadResult] = []
    seen: set[str] = set()
    for index, upload in enumerate(uploads):
        name = upload.name
        if index >= MAX_FILES:
            result = UploadResult(printable(name), False, f"only {MAX_FILES} files are taken per upload; upload the rest next")
        elif isinstance(name, str) and name in seen:
            result = UploadResult(printable(name), False, "another file of this name is in the same upload")
        else:
            result = add_upload(kb, upload, max_bytes)
            if isinstance(name, str):
                seen.add(name)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def upload_into(bases: KnowledgeBases, name: str, uploads: list[Upload], max_bytes: int,
                on_result: Callable[[UploadResult], None] | None = None) -> dict[str, Any]:
    """Add the uploads to `name`, one writer at a time; return the per-file results (the page and the API)."""
    manifests = [upload for upload in uploads if upload.name == MANIFEST]
    sets = [upload for upload in uploads if upload.name == EVAL_SET]
    documents = [upload for upload in uploads if upload.name not in (MANIFEST, EVAL_SET)]
    with bases.writer(name):
        results = [take_manifest(bases, name, upload) for upload in manifests[:1]]
        results += [take_eval_set(bases, name, upload) for upload in sets[:1]]
        for result in results if on_result else ():
            on_result(result)
        results += add_uploads(bases.get(name), documents, max_bytes, on_result)
        bases.changed(name)
    added = sum(result.ok for result in results)
    return {"knowledge_base": name, "results": [result.to_dict() for result in results], "added": added,
            "refused": len(results) - added, "fingerprint": bases.fingerprint(name)}


def take_manifest(bases: KnowledgeBases, name: str, upload: Upload) -> UploadResult:
    """Take an uploaded manifest.json as the identity of `name` (as the CLI does beside a folder)."""
    from rag.bases import Manifest

    if upload.size > 64 * 1024:
        return UploadResult(MANIFEST, False, "a manifest is a small JSON file; this one is over 64 KB")
    try:
        data = json.loads(upload.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return UploadResult(MANIFEST, False, "not valid JSON; the identity was kept as it was")
    if not isinstance(data, dict):
        return UploadResult(MANIFEST, False, "not a JSON object with assistant_name, description, instructions, examples")
    bases.set_manifest(name, Manifest.from_dict(data))
    return UploadResult(MANIFEST, True, "taken as who the assistant is for this knowledge base")


def take_eval_set(bases: KnowledgeBases, name: str, upload: Upload) -> UploadResult:
    """Take an uploaded eval.jsonl as `name`'s own evaluation set, if every line of it reads."""
    from evals.sets import MAX_SET_BYTES, SetRefused, read_set

    if upload.size > MAX_SET_BYTES:
        return UploadResult(EVAL_SET, False, f"an evaluation set may be up to {MAX_SET_BYTES // 1_000_000} MB")
    try:
        text = upload.read().decode("utf-8")
        questions = read_set(text)
    except (OSError, UnicodeDecodeError):
        return UploadResult(EVAL_SET, False, "not UTF-8 text; the evaluation set was kept as it was")
    except SetRefused as refused:
        return UploadResult(EVAL_SET, False, f"{refused} The evaluation set was kept as it was.")
    bases.set_eval_set(name, text)
    return UploadResult(EVAL_SET, True, f"taken as this knowledge base's evaluation set ({len(questions)} questions)")


def remove_from(bases: KnowledgeBases, name: str, document: str) -> int:
    """Remove a document from `name`, one writer at a time; return how many chunks it had."""
    with bases.writer(name):
        removed = bases.get(name).remove_document(document)
        bases.changed(name)
    return removed


def summary(results: list[UploadResult]) -> str:
    """One line: how many files went in and how many were refused."""
    added = sum(r.ok for r in results)
    refused = len(results) - added
    chunks = sum(r.chunks for r in results if r.ok)
    return f"{added} of {len(results)} files added ({chunks} chunks)" + (f"; {refused} refused" if refused else "")


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB" if size >= 1_048_576 else f"{size / 1024:.1f} KB"
