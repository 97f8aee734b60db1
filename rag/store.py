"""The knowledge base: sentence-sized chunks in a persistent Chroma collection."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import chromadb
from chromadb.api import ClientAPI
from chromadb.api.types import Documents, EmbeddingFunction
from chromadb.errors import NotFoundError

from rag.splitting import Chunk
from rag.types import Hit

# Chroma embeds and stores in batches; this keeps memory flat on a large PDF.
_BATCH = 256


class CollectionGone(LookupError):
    """The knowledge base's collection is no longer in the store: it was deleted while in use."""


def _gone_by_default(kb: KnowledgeBase) -> Exception:
    """What a knowledge base bound without a `gone` raises when its collection was deleted."""
    return CollectionGone(f"The collection {kb.collection_name} is no longer in the store; it was deleted meanwhile.")


def _while_present(method: Callable[..., Any]) -> Callable[..., Any]:
    """Say that the collection was deleted (another process may share the store) in our words, not Chroma's."""

    @functools.wraps(method)
    def guarded(self: KnowledgeBase, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except NotFoundError as error:
            raise self._gone(self) from error  # Chroma's text stays in the log, as the cause

    return guarded


class KnowledgeBase:
    """Add chunks idempotently and search them by meaning."""

    def __init__(
        self,
        client: ClientAPI,
        embedding_function: EmbeddingFunction[Documents],
        collection_name: str = "knowledge_base",
        *,
        create: bool = True,
        gone: Callable[[KnowledgeBase], Exception] = _gone_by_default,
    ) -> None:
        """Bind to the collection `collection_name`, creating it if `create` (else Chroma's
        NotFoundError if there is none). Once bound, a call that finds the collection deleted
        raises what `gone(self)` returns (rag/bases.py: UnknownKnowledgeBase, in our words)."""
        self._embedding_function = embedding_function
        self._client = client
        self._gone = gone
        if create:
            self._collection = client.get_or_create_collection(
                name=collection_name,
                embedding_function=embedding_function,
                configuration={"hnsw": {"space": "cosine"}},
            )
        else:
            self._collection = client.get_collection(name=collection_name, embedding_function=embedding_function)

    @property
    def collection_name(self) -> str:
        """The name of the Chroma collection this is bound to."""
        return self._collection.name

    @property
    def collection_id(self) -> str:
        """The id of the Chroma collection this is bound to: a collection deleted and created again has another."""
        return str(self._collection.id)

    @_while_present
    def add_chunks(self, chunks: Sequence[Chunk]) -> int:
        """Store the chunks not yet present, drop stale ones of the same sources; return how many were new."""
        ids = [chunk.chunk_id for chunk in chunks]
        if not ids:
            return 0
        existing = set(self._collection.get(ids=ids, include=[])["ids"])
        new = [chunk for chunk in chunks if chunk.chunk_id not in existing]
        added_at = datetime.now(UTC).isoformat(timespec="seconds")
        for start in range(0, len(new), _BATCH):
            batch = new[start : start + _BATCH]
            self._collection.add(
                ids=[chunk.chunk_id for chunk in batch],
                documents=[chunk.text for chunk in batch],
                metadatas=[{"source": chunk.source, "added_at": added_at} for chunk in batch],
            )
        # An edited file must not leave its old sentences behind to be retrieved. Deleting
        # only after the add means a failed embedding call never leaves the file with nothing.
        stale = self._ids_of_sources({chunk.source for chunk in chunks}) - set(ids)
        if stale:
            self._collection.delete(ids=sorted(stale))
        return len(new)

    def search(self, query: str, k: int) -> list[Hit]:
        """Return the k chunks closest to `query`, best first."""
        return self._nearest(k, query_texts=[query])

    async def asearch(self, query: str, k: int) -> list[Hit]:
        """Like search(), embedding the query without holding a worker thread where the
        embedding function can (the bundled MiniLM's shared batch)."""
        embed = getattr(self._embedding_function, "aembed", None)
        if embed is None:
            return await asyncio.to_thread(self.search, query, k)
        return self._nearest(k, query_embeddings=await embed([query]))  # ~1 ms: no thread hop

    @_while_present
    def _nearest(self, k: int, **query: Any) -> list[Hit]:
        if k <= 0:  # Chroma returns what there is when asked for more (no count first: 0.7 ms a search)
            return []
        result = self._collection.query(**query, n_results=k, include=["documents", "metadatas", "distances"])
        rows = zip(
            result["ids"][0],
            result["documents"][0],
            result["metadatas"][0],
            result["distances"][0],
            strict=True,
        )
        return [
            Hit(source=str(meta["source"]), chunk_id=id_, score=_similarity(distance), text=text)
            for id_, text, meta, distance in rows
        ]

    @_while_present
    def count(self) -> int:
        """Return how many chunks the knowledge base holds."""
        return self._collection.count()

    @_while_present
    def ids(self) -> list[str]:
        """Return every chunk's id (content hashes: equal content, equal ids)."""
        return self._collection.get(include=[])["ids"]

    @_while_present
    def documents(self) -> list[dict[str, object]]:
        """Return each document: its name, chunk count and when its newest chunk was added."""
        found: dict[str, dict[str, object]] = {}
        for meta in self._collection.get(include=["metadatas"])["metadatas"] or []:
            source = str((meta or {}).get("source", ""))
            entry = found.setdefault(source, {"document": source, "chunks": 0, "added_at": None})
            entry["chunks"] = int(entry["chunks"]) + 1
            added = (meta or {}).get("added_at")
            if isinstance(added, str) and (entry["added_at"] is None or added > str(entry["added_at"])):
                entry["added_at"] = added
        return sorted(found.values(), key=lambda d: str(d["document"]))

    def remove_document(self, source: str) -> int:
        """Remove every chunk of the document `source`; return how many there were."""
        ids = sorted(self._ids_of_sources({source}))
        self.remove_ids(ids)
        return len(ids)

    def ids_of(self, source: str) -> list[str]:
        """Return the ids of the document `source`'s chunks (none if it isn't there)."""
        return sorted(self._ids_of_sources({source}))

    @_while_present
    def remove_ids(self, ids: Sequence[str]) -> None:
        """Remove these chunks."""
        for start in range(0, len(ids), _BATCH):
            self._collection.delete(ids=list(ids[start:start + _BATCH]))

    @_while_present
    def metadata(self) -> dict[str, Any]:
        """The collection's own metadata, read afresh (another process may have changed it): where a
        knowledge base keeps its manifest and evaluation set, so every replica sees the same."""
        return dict(self._client.get_collection(self._collection.name).metadata or {})

    @_while_present
    def set_metadata(self, key: str, value: str) -> None:
        """Set one key of the collection's metadata, keeping the others (Chroma replaces it whole)."""
        self._collection.modify(metadata={**self.metadata(), key: value})

    @_while_present
    def _ids_of_sources(self, sources: set[str]) -> set[str]:
        ids: set[str] = set()
        for source in sources:
            ids.update(self._collection.get(where={"source": source}, include=[])["ids"])
        return ids


def open_knowledge_base(state_dir: Path, embedding_function: EmbeddingFunction[Documents]) -> KnowledgeBase:
    """Open (or create) the persistent knowledge base under `state_dir`."""
    return KnowledgeBase(persistent_client(state_dir), embedding_function, collection_name_for(embedding_function))


def persistent_client(state_dir: Path, url: str | None = None) -> ClientAPI:
    """Open the embedded Chroma store under `state_dir`, or the Chroma server at `url` (CHROMA_URL)."""
    # Chroma's product telemetry is the only network call it would make on its own.
    quiet = chromadb.config.Settings(anonymized_telemetry=False)
    if url:
        address = urlsplit(url)
        return chromadb.HttpClient(host=address.hostname, port=address.port, ssl=address.scheme == "https",
                                   settings=quiet)
    return chromadb.PersistentClient(path=str(state_dir / "chroma"), settings=quiet)


def collection_name_for(embedding_function: EmbeddingFunction[Documents]) -> str:
    """The single collection of versions before named knowledge bases (see rag/bases.py)."""
    return f"knowledge_base-{model_slug(embedding_function)}"[:63].rstrip("-")


def model_slug(embedding_function: EmbeddingFunction[Documents]) -> str:
    """The embedding model's name as a collection-name part, so vectors of different sizes never mix."""
    model = getattr(embedding_function, "model_id", None) or embedding_function.name()
    return re.sub(r"[^a-z0-9]+", "-", str(model).lower()).strip("-")


def _similarity(distance: float) -> float:
    # Cosine distance spans [0, 2]; Hit promises a score in [0, 1], higher is closer.
    return round(min(1.0, max(0.0, 1.0 - distance)), 4)
