"""MiniLM on ONNX Runtime gives sentence-transformers' own vectors, exports once, and falls back to torch."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from rag import minilm_onnx
from rag.embeddings import LocalEmbeddings, bundled_model_path

TEXTS = ["How long can I return a faulty item?", "", "Standard shipping takes 3 to 5 working days. " * 60,
         "Ünïcödé, emoji 😀 and <fact> tags", "kurz"]


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(bundled_model_path()), device="cpu", local_files_only=True)
    return model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


def test_onnx_vectors_are_the_torch_vectors_in_one_padded_batch(cache, torch_vectors) -> None:
    embeddings = LocalEmbeddings(cache_dir=cache)
    vectors = np.array(embeddings(TEXTS))  # one batch: short texts padded beside a truncated long one
    assert embeddings.runtime == "onnx"
    assert np.abs(vectors - torch_vectors).max() < 1e-5
    assert [p.suffix for p in cache.iterdir()] == [".onnx"]  # exported once, kept


def test_a_later_start_loads_the_export_without_exporting_again(cache, torch_vectors, monkeypatch) -> None:
    LocalEmbeddings(cache_dir=cache)(["warm"])  # the export exists
    monkeypatch.setattr(minilm_onnx, "export", lambda _path: pytest.fail("exported again"))
    embeddings = LocalEmbeddings(cache_dir=cache)
    assert np.abs(np.array(embeddings(TEXTS)) - torch_vectors).max() < 1e-5 and embeddings.runtime == "onnx"


def test_a_broken_export_on_disk_is_made_again(cache, torch_vectors) -> None:
    LocalEmbeddings(cache_dir=cache)(["warm"])
    for graph in cache.glob("*.onnx"):
        graph.write_bytes(b"half a file")
    embeddings = LocalEmbeddings(cache_dir=cache)
    assert np.abs(np.array(embeddings(TEXTS)) - torch_vectors).max() < 1e-5 and embeddings.runtime == "onnx"


def test_without_onnx_it_runs_on_torch_and_says_so(tmp_path, torch_vectors, monkeypatch, caplog) -> None:
    def unavailable(*_args):
        raise ImportError("no onnx here")

    monkeypatch.setattr(minilm_onnx.OnnxMiniLM, "load", unavailable)
    with caplog.at_level(logging.WARNING, logger="glassbox.embeddings"):
        embeddings = LocalEmbeddings(cache_dir=tmp_path)
        vectors = np.array(embeddings(TEXTS))
    assert embeddings.runtime == "torch" and np.abs(vectors - torch_vectors).max() < 1e-6
    assert "MiniLM runs on torch" in caplog.text
