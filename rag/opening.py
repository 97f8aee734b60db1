"""Opening the knowledge bases at start: the store (embedded or a server), an older version's single
collection adopted, and a folder's manifest and evaluation set taken in (the app's KNOWLEDGE_DIR, the CLI)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from chromadb.api import ClientAPI
from chromadb.api.types import Documents, EmbeddingFunction

from rag.bases import EVAL_SET, SHARED_REFRESH_S, KnowledgeBases, Manifest
from rag.lock import StoreLock
from rag.store import collection_name_for, persistent_client

log = logging.getLogger("glassbox.knowledge")


def open_knowledge_bases(state_dir: Path, embedding_function: EmbeddingFunction[Documents],
                         sample_manifest: Path | None = None, holder: str | None = None,
                         url: str | None = None, chroma_url: str | None = None,
                         refresh_s: float = SHARED_REFRESH_S) -> KnowledgeBases:
    """Open the embedded store under `state_dir`, or the Chroma server at `chroma_url`; a store from
    before named knowledge bases becomes the knowledge base `docs` (see seed_sample for the sample's own chunks).

    A server is shared with other replicas, so what this process caches of a knowledge base is read
    again once `refresh_s` old (see KnowledgeBases); the embedded store's cache is never read again.

    With a `holder` (serving at `url`, if it serves), first take the state dir's one-writer lock
    (rag/lock.py), or raise StoreBusy. A Chroma server (`chroma_url`) is its own one writer, so the
    CLI opens it without the lock, beside the app; the app still takes it, for what else its state
    dir holds.
    """
    lock = StoreLock.acquire(state_dir, holder, url) if holder else None
    try:
        client = persistent_client(state_dir, chroma_url)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    bases = KnowledgeBases(client, embedding_function, state_dir / "knowledge", sample_manifest,
                           refresh_s=refresh_s if chroma_url else None)
    bases.lock = lock
    _adopt_legacy_collection(client, bases, embedding_function)
    return bases


def _adopt_legacy_collection(client: ClientAPI, bases: KnowledgeBases,
                             embedding_function: EmbeddingFunction[Documents]) -> None:
    """Before knowledge bases had names, everything went into one collection. What a user
    ingested there is kept as the knowledge base `docs`, nothing is re-embedded."""
    legacy = collection_name_for(embedding_function)
    if legacy not in {c.name for c in client.list_collections()}:
        return
    target = "docs" if "docs" not in bases.names() else "imported"
    client.get_collection(legacy).modify(name=bases.collection_name(target))
    bases.legacy = target
    log.info("the single knowledge base of an older version is now the knowledge base %r", target,
             extra={"knowledge_base": target})


def adopt_manifest(bases: KnowledgeBases, name: str, folder: Path) -> bool:
    """Take `folder/manifest.json`, if there is one, as the identity of `name`; return whether it was."""
    path = folder / "manifest.json"
    if not folder.is_dir() or not path.is_file():
        return False
    try:
        manifest = Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        log.warning("unreadable manifest beside the documents; kept the old one", extra={"knowledge_base": name})
        return False
    bases.set_manifest(name, manifest)
    return True


def adopt_eval_set(bases: KnowledgeBases, name: str, folder: Path) -> str | None:
    """Take `folder/eval.jsonl`, if there is one and it reads, as `name`'s own evaluation set.

    Return None if there was none, else what happened, in our words.
    """
    from evals.sets import SetRefused, read_set

    path = folder / EVAL_SET
    if not folder.is_dir() or not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
        questions = read_set(text)
    except (OSError, UnicodeDecodeError):
        return f"{EVAL_SET} could not be read as UTF-8 text; kept the old set"
    except SetRefused as refused:
        return f"{EVAL_SET} was not taken: {refused}"
    bases.set_eval_set(name, text)
    return f"took {EVAL_SET} ({len(questions)} questions) as its evaluation set"


def drop_copies(bases: KnowledgeBases, name: str, of: str) -> None:
    """Remove from `name` every chunk that `of` also holds, and `name` itself if nothing is left
    (the legacy store's copy of the sample shop, once `sample` is seeded)."""
    kb, reference = bases.get(name), set(bases.get(of).ids())
    kb.remove_ids(sorted(set(kb.ids()) & reference))
    if kb.count() == 0:
        bases.delete(name)
    else:
        bases.changed(name)
