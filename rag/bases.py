"""Named knowledge bases: one Chroma collection and one manifest each, in one Chroma store.

The sample shop is the knowledge base `sample`; a user's documents go into their own, so
answers about them never mix with the shop's. A knowledge base's identity (the assistant's
name, a description, instructions and example questions) is its manifest, and it may have an
evaluation set of its own (evals/sets.py). The sample's are `manifest.json` and `eval.jsonl` beside
its documents, in the repository. Every other knowledge base keeps both in its Chroma collection's
metadata, so that a Chroma server (CHROMA_URL) shares them with every replica; one written by an
older version under `APP_STATE_DIR/knowledge/NAME/` is still read, and moved into the collection.

The store is embedded (APP_STATE_DIR/chroma, this process its one writer) or a Chroma server
shared by several replicas (CHROMA_URL); KnowledgeBases says how each keeps its cache honest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chromadb.api import ClientAPI
from chromadb.api.types import Documents, EmbeddingFunction
from chromadb.errors import NotFoundError

from chat.config import KB_NAME_MAX, KB_NAME_PATTERN, KB_NAME_RULE
from rag.lock import StoreLock
from rag.store import KnowledgeBase, model_slug

log = logging.getLogger("glassbox.knowledge")

SAMPLE = "sample"
EVAL_SET = "eval.jsonl"
MANIFEST_KEY, EVAL_SET_KEY = "glassbox_manifest", "glassbox_eval_set"  # keys of the collection's metadata
NAME_RULE = KB_NAME_RULE[0].upper() + KB_NAME_RULE[1:]
# With a Chroma server, how stale (in seconds) a replica's view of a knowledge base may get: see KnowledgeBases.
SHARED_REFRESH_S = 5.0


def valid_name(name: object) -> bool:
    """Return whether `name` is a valid knowledge-base name."""
    return isinstance(name, str) and len(name) <= KB_NAME_MAX and bool(re.fullmatch(KB_NAME_PATTERN, name))


class KnowledgeBaseError(ValueError):
    """A knowledge-base request that cannot be done; the message says why, in our words."""


class UnknownKnowledgeBase(KnowledgeBaseError):
    """There is no knowledge base of that name (or the caller may not use it)."""


@dataclass(frozen=True)
class Manifest:
    """Who the assistant is when it answers from a knowledge base."""

    assistant_name: str = "a support assistant"
    description: str = ""
    instructions: str = ""
    examples: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Read a manifest leniently: unknown keys are ignored, wrong types fall back to defaults."""
        if not isinstance(data, dict):
            return cls()
        text = {key: str(data[key]).strip()[:limit] for key, limit in
                (("assistant_name", 80), ("description", 200), ("instructions", 1000)) if isinstance(data.get(key), str)}
        examples = data.get("examples")
        examples = tuple(str(e).strip()[:200] for e in examples[:6] if str(e).strip()) if isinstance(examples, list) else ()
        return cls(**text, examples=examples)

    @classmethod
    def default_for(cls, name: str) -> Manifest:
        """The identity of a knowledge base nobody described."""
        return cls(description=f"Documents in {name}.")

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest as JSON-ready data."""
        return {**asdict(self), "examples": list(self.examples)}


@dataclass
class _Base:
    kb: KnowledgeBase
    manifest: Manifest
    checked_at: float  # the clock when its collection was last read from the store
    fingerprint: str | None = None  # recomputed after each change (and, when shared, once refresh_s old)
    fingerprint_at: float = 0.0  # the clock when it was computed
    lock: threading.Lock = field(default_factory=threading.Lock)
    writer: threading.Lock = field(default_factory=threading.Lock)  # one upload or removal at a time


class KnowledgeBases:
    """Every named knowledge base in one Chroma store, and their manifests.

    A process caches each knowledge base it uses (its collection, manifest and fingerprint), so a
    search costs no store round trip beyond the search itself. In the embedded store this process
    is the one writer (rag/lock.py), so the cache is always right: `refresh_s` is None and nothing
    is ever read again. A Chroma server (CHROMA_URL) is shared: another replica (or the CLI) may
    delete, re-create, describe or fill a knowledge base under this one. Then `refresh_s` (the app
    uses SHARED_REFRESH_S, 5 s) bounds how stale this process's view may get:

    - a knowledge base used when its collection was last read `refresh_s` ago or more is read again
      by name (one round trip, 1 to 1.5 ms): if it is gone, it is forgotten and UnknownKnowledgeBase
      raised; if another collection has its name (deleted and created again), that one is bound; its
      manifest is taken afresh from the collection's metadata;
    - `exists()` always asks the store (the same read), never the cache alone;
    - a fingerprint `refresh_s` old is recomputed from the chunk ids the next time it is asked for
      (at a run's start): ids() over HTTP takes about 1.5 ms for the sample (48 chunks), 20 ms for
      10,000 chunks. No writer has to stamp a revision, so the CLI's writes count too;
    - a search in a collection deleted between two reads fails with UnknownKnowledgeBase, in our
      words (rag/store.py turns Chroma's NotFoundError into it), and the knowledge base is forgotten.
    """

    def __init__(self, client: ClientAPI, embedding_function: EmbeddingFunction[Documents], manifests_dir: Path,
                 sample_manifest: Path | None = None, *, refresh_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client, self._embed = client, embedding_function
        self.refresh_s = refresh_s  # None: this process is the store's one writer (embedded)
        self._clock = clock
        self._manifests_dir, self._sample_manifest = manifests_dir, sample_manifest
        self._slug = model_slug(embedding_function)
        self._bases: dict[str, _Base] = {}
        self._lock = threading.RLock()  # create() opens under it
        self.legacy: str | None = None  # the name an older version's single collection now has
        self.lock: StoreLock | None = None  # held while this process may write (see rag/lock.py)

    def close(self) -> None:
        """Release the store's one-writer lock, if this process holds it."""
        if self.lock is not None:
            self.lock.release()

    # --- naming -------------------------------------------------------------------------------

    def collection_name(self, name: str) -> str:
        """The Chroma collection of `name`: named after the embedding model, so vectors never mix."""
        return f"kb-{name}--{self._slug}"[:63].rstrip("-_")

    @staticmethod
    def check_name(name: str) -> str:
        """Return `name` if it is a valid knowledge-base name, else raise with the rule."""
        if not valid_name(name):
            raise KnowledgeBaseError(NAME_RULE + ".")
        return name

    # --- reading ------------------------------------------------------------------------------

    def prefetch(self, query: str) -> None:
        """Begin embedding `query` now, if the embedding function can (the bundled MiniLM): a search
        for it soon after finds the vector ready. Any knowledge base's search does: they share it."""
        prefetch = getattr(self._embed, "prefetch", None)
        if prefetch is not None:
            prefetch(query)

    def names(self) -> list[str]:
        """Return every knowledge base's name, `sample` first if present, then alphabetically."""
        found = set()
        for collection in self._client.list_collections():
            name = collection.name[3:].split("--")[0]
            if collection.name.startswith("kb-") and collection.name == self.collection_name(name):
                found.add(name)
        return sorted(found, key=lambda n: (n != SAMPLE, n))

    def exists(self, name: str) -> bool:
        """Return whether a knowledge base of that name exists (a shared store is asked every time)."""
        if self.refresh_s is None:
            return isinstance(name, str) and (name in self._bases or (valid_name(name) and name in self.names()))
        try:
            self._base(name, max_age=0.0)
        except UnknownKnowledgeBase:
            return False
        return True

    def cached_fingerprint(self, name: str) -> str | None:
        """Return the fingerprint if it is known and fresh (no store access), else None."""
        base = self._bases.get(name)
        return base.fingerprint if base is not None and self._fingerprint_fresh(base) else None

    def get(self, name: str) -> KnowledgeBase:
        """Return the knowledge base `name`; raise UnknownKnowledgeBase if there is none."""
        return self._base(name).kb

    def writer(self, name: str) -> threading.Lock:
        """The lock one upload or removal into `name` holds, so two never interleave."""
        return self._base(name).writer

    def manifest(self, name: str) -> Manifest:
        """Return the identity of the knowledge base `name`."""
        return self._base(name).manifest

    def fingerprint(self, name: str) -> str:
        """Return a short hash of the knowledge base's content: equal content, equal fingerprint."""
        base = self._base(name)
        with base.lock:
            if not self._fingerprint_fresh(base):
                ids = sorted(base.kb.ids())
                base.fingerprint = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
                base.fingerprint_at = self._clock() if self.refresh_s is not None else 0.0
            return base.fingerprint

    def describe(self, name: str) -> dict[str, Any]:
        """Return what a client sees of a knowledge base: name, manifest, sizes, fingerprint."""
        base = self._base(name)
        return {"name": name, **base.manifest.to_dict(), "chunks": base.kb.count(),
                "documents": len(base.kb.documents()), "fingerprint": self.fingerprint(name),
                "eval_set": self.eval_set(name) is not None}

    def eval_set(self, name: str) -> str | None:
        """The text of `name`'s own evaluation set, or None if it has none."""
        base = self._base(name)
        if name == SAMPLE and self._sample_manifest:
            return _text_of(self._sample_manifest.with_name(EVAL_SET))
        kept = base.kb.metadata().get(EVAL_SET_KEY)
        return kept if isinstance(kept, str) else _text_of(self._manifests_dir / name / EVAL_SET)

    # --- changing -----------------------------------------------------------------------------

    def create(self, name: str, manifest: Manifest | None = None) -> KnowledgeBase:
        """Create an empty knowledge base; raise if the name is invalid or taken."""
        self.check_name(name)
        with self._lock:
            if name in self.names():
                raise KnowledgeBaseError(f"There is already a knowledge base named {name}.")
            self._bases.pop(name, None)  # another replica deleted it: this one's cache is stale
            base = self.open(name)
            self.set_manifest(name, manifest or Manifest.default_for(name))
            return base.kb

    def open(self, name: str) -> _Base:
        """Open `name`, creating its collection if it is new (start-up seeding uses this)."""
        self.check_name(name)
        with self._lock:
            return self._bases.get(name) or self._cache(name, self._bind(name, create=True))

    def set_manifest(self, name: str, manifest: Manifest) -> None:
        """Replace the identity of `name`."""
        base = self._base(name)
        if name == SAMPLE and self._sample_manifest:
            raise KnowledgeBaseError("The sample knowledge base's manifest lives in the repository (data/kb/manifest.json).")
        base.kb.set_metadata(MANIFEST_KEY, json.dumps(manifest.to_dict()))
        base.manifest = manifest

    def set_eval_set(self, name: str, text: str) -> None:
        """Replace `name`'s own evaluation set (checked by the caller: evals/sets.py)."""
        base = self._base(name)
        if name == SAMPLE and self._sample_manifest:
            raise KnowledgeBaseError(f"The sample knowledge base's evaluation set lives in the repository (data/kb/{EVAL_SET}).")
        base.kb.set_metadata(EVAL_SET_KEY, text)

    def changed(self, name: str) -> None:
        """Say that `name`'s content changed: its fingerprint is computed afresh."""
        base = self._bases.get(name)
        if base is not None:
            with base.lock:
                base.fingerprint = None

    def delete(self, name: str) -> None:
        """Delete the knowledge base `name`, its documents and its manifest."""
        self._base(name)
        with self._lock:
            self._bases.pop(name, None)
            try:
                self._client.delete_collection(self.collection_name(name))
            except NotFoundError:  # another replica deleted it first
                raise self._unknown(name, deleted=True) from None
            folder = self._manifest_folder(name)
            if folder is not None and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)

    # --- internals ----------------------------------------------------------------------------

    def _base(self, name: str, max_age: float | None = None) -> _Base:
        """The cached knowledge base `name`, read again first if shared and `max_age` (else refresh_s) old."""
        base = self._bases.get(name) if isinstance(name, str) else None
        if base is None:
            return self._first_use(name)
        if self.refresh_s is None:
            return base  # the embedded store's one writer: its cache is always right, no round trip per search
        if self._clock() - base.checked_at >= (self.refresh_s if max_age is None else max_age):
            return self._reread(name, base)
        return base  # read from the shared store lately: no round trip per search either

    def _first_use(self, name: str) -> _Base:
        """Open `name` the first time this process uses it; raise UnknownKnowledgeBase if there is none."""
        if not valid_name(name) or name not in self.names():
            raise self._unknown(name)
        with self._lock:
            return self._bases.get(name) or self._cache(name, self._bind(name, create=False))

    def _reread(self, name: str, base: _Base) -> _Base:
        """Read `name`'s collection again (one round trip): gone, forget it; replaced, bind the new one;
        either way take its manifest afresh."""
        try:
            collection = self._client.get_collection(self.collection_name(name), embedding_function=self._embed)
            same = str(collection.id) == base.kb.collection_id  # else deleted and created again: bind the new one
            kb = base.kb if same else self._bind(name, create=False)
        except (NotFoundError, UnknownKnowledgeBase):
            self._forget(name, base.kb)
            raise self._unknown(name, deleted=True) from None
        manifest = self._read_manifest(name, kb, collection.metadata or {})
        with base.lock:
            if kb is not base.kb:
                base.kb, base.fingerprint = kb, None
            base.manifest, base.checked_at = manifest, self._clock()
        return base

    def _bind(self, name: str, create: bool) -> KnowledgeBase:
        """A KnowledgeBase on `name`'s collection, which says UnknownKnowledgeBase if it is deleted under it."""
        owner = weakref.ref(self)  # not self: a cycle would hold the store lock (rag/lock.py) until a GC pass

        def gone(kb: KnowledgeBase) -> UnknownKnowledgeBase:
            """Forget `kb` (a search found its collection deleted) and say so in our words."""
            if (bases := owner()) is not None:
                bases._forget(name, kb)
            return KnowledgeBases._unknown(name, deleted=True)

        try:
            return KnowledgeBase(self._client, self._embed, self.collection_name(name), create=create, gone=gone)
        except NotFoundError:  # not created here, and gone since names() listed it
            raise self._unknown(name, deleted=True) from None

    def _cache(self, name: str, kb: KnowledgeBase) -> _Base:
        """Keep `kb` as `name` in this process's cache, with its manifest."""
        base = self._bases[name] = _Base(kb, self._read_manifest(name, kb), checked_at=self._clock())
        return base

    def _forget(self, name: str, kb: KnowledgeBase) -> None:
        """Drop `name` from the cache, if it is still bound to `kb` (not to a newer collection)."""
        with self._lock:
            if (base := self._bases.get(name)) is not None and base.kb is kb:
                del self._bases[name]

    @staticmethod
    def _unknown(name: object, deleted: bool = False) -> UnknownKnowledgeBase:
        """The error that says there is no knowledge base `name` (`deleted`: there was one just now)."""
        shown = repr(str(name)[:40])
        if deleted:
            return UnknownKnowledgeBase(f"There is no knowledge base named {shown} any more: it was deleted "
                                        "meanwhile (perhaps from another window or server).")
        return UnknownKnowledgeBase(f"There is no knowledge base named {shown}.")

    def _fingerprint_fresh(self, base: _Base) -> bool:
        """Whether the cached fingerprint may be used: known and, when shared, under refresh_s old."""
        if base.fingerprint is None:
            return False
        return self.refresh_s is None or self._clock() - base.fingerprint_at < self.refresh_s

    def _manifest_folder(self, name: str) -> Path | None:
        """Where an older version kept `name`'s manifest and evaluation set (None for the sample)."""
        return None if name == SAMPLE and self._sample_manifest else self._manifests_dir / name

    def _read_manifest(self, name: str, kb: KnowledgeBase, metadata: dict[str, Any] | None = None) -> Manifest:
        """`name`'s manifest, from the collection's `metadata` (read now if not given) or the repository."""
        if name == SAMPLE and self._sample_manifest:
            return self._manifest_from(_text_of(self._sample_manifest), name)
        kept = (kb.metadata() if metadata is None else metadata).get(MANIFEST_KEY)
        if isinstance(kept, str):
            return self._manifest_from(kept, name)
        legacy = _text_of(self._manifests_dir / name / "manifest.json")  # an older version's file: moved in
        manifest = self._manifest_from(legacy, name)
        if legacy is not None:
            kb.set_metadata(MANIFEST_KEY, json.dumps(manifest.to_dict()))
            old_set = _text_of(self._manifests_dir / name / EVAL_SET)
            if old_set is not None:
                kb.set_metadata(EVAL_SET_KEY, old_set)
        return manifest

    @staticmethod
    def _manifest_from(text: str | None, name: str) -> Manifest:
        if text is None:
            return Manifest.default_for(name)
        try:
            return Manifest.from_dict(json.loads(text))
        except ValueError:
            log.warning("unreadable manifest; using defaults", extra={"knowledge_base": name})
            return Manifest.default_for(name)


def _text_of(path: Path) -> str | None:
    """A small file's text, or None if it is not there or not readable as UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
