"""The knowledge base: sentence-sized chunks in a persistent Chroma collection."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import chromadb
from chromadb.api import ClientAPI
from chromadb.api.types import Documents, EmbeddingFunction

from rag.splitting import Chunk
from rag.types import Hit

# Chroma embeds and stores in batches; this keeps memory flat on a large PDF.
_BATCH = 256


class KnowledgeBase:
    """Add chunks idempotently and search them by meaning."""

    def __init__(
        self,
        client: ClientAPI,
        embedding_function: EmbeddingFunction[Documents],
        collection_name: str = "knowledge_base",
    ) -> None:
        self._collection = client.get_or_create_collection(
            name=collection_name,
            embedding_function=embedding_function,
            configuration={"hnsw": {"space": "cosine"}},
        )

    def add_chunks(self, chunks: Sequence[Chunk]) -> int:
        """Store the chunks not yet present, drop stale ones of the same sources; return how many were new."""
        ids = [chunk.chunk_id for chunk in chunks]
        if not ids:
            return 0
        existing = set(self._collection.get(ids=ids, include=[])["ids"])
        new = [chunk for chunk in chunks if chunk.chunk_id not in existing]
        for start in range(0, len(new), _BATCH):
            batch = new[start : start + _BATCH]
            self._collection.add(
                ids=[chunk.chunk_id for chunk in batch],
                documents=[chunk.text for chunk in batch],
                metadatas=[{"source": chunk.source} for chunk in batch],
            )
        # An edited file must not leave its old sentences behind to be retrieved. Deleting
        # only after the add means a failed embedding call never leaves the file with nothing.
        stale = self._ids_of_sources({chunk.source for chunk in chunks}) - set(ids)
        if stale:
            self._collection.delete(ids=sorted(stale))
        return len(new)

    def search(self, query: str, k: int) -> list[Hit]:
        """Return the k chunks closest to `query`, best first."""
        k = min(k, self.count())
        if k <= 0:
            return []
        result = self._collection.query(
            query_texts=[query], n_results=k, include=["documents", "metadatas", "distances"]
        )
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

    def count(self) -> int:
        """Return how many chunks the knowledge base holds."""
        return self._collection.count()

    def _ids_of_sources(self, sources: set[str]) -> set[str]:
        ids: set[str] = set()
        for source in sources:
            ids.update(self._collection.get(where={"source": source}, include=[])["ids"])
        return ids


def open_knowledge_base(state_dir: Path, embedding_function: EmbeddingFunction[Documents]) -> KnowledgeBase:
    """Open (or create) the persistent knowledge base under `state_dir`."""
    client = chromadb.PersistentClient(
        path=str(state_dir / "chroma"),
        # Chroma's product telemetry is the only network call it would make on its own.
        settings=chromadb.config.Settings(anonymized_telemetry=False),
    )
    return KnowledgeBase(client, embedding_function, collection_name_for(embedding_function))


def collection_name_for(embedding_function: EmbeddingFunction[Documents]) -> str:
    """Name the collection after the embedding model so vectors of different sizes never mix."""
    model = getattr(embedding_function, "model_id", None) or embedding_function.name()
    slug = re.sub(r"[^a-z0-9]+", "-", str(model).lower()).strip("-")
    return f"knowledge_base-{slug}"[:63].rstrip("-")


def _similarity(distance: float) -> float:
    # Cosine distance spans [0, 2]; Hit promises a score in [0, 1], higher is closer.
    return round(min(1.0, max(0.0, 1.0 - distance)), 4)
