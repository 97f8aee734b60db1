"""The knowledge base: loading, splitting, idempotent ingest, the CLI and real retrieval."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from pypdf import PdfWriter

from bench.pdf import assemble_pdf
from chat.config import Settings
from rag.embeddings import LocalEmbeddings, OpenAIEmbeddings, embedding_function_for
from rag.ingest import ingest_paths, main
from rag.loading import UnreadableDocument, iter_documents, load_text
from rag.splitting import MIN_CHUNK_CHARS, split_into_chunks
from rag.store import KnowledgeBase, collection_name_for, open_knowledge_base

REPO = Path(__file__).resolve().parent.parent


class BagOfWordsEmbeddings(EmbeddingFunction[Documents]):
    """Hashed bag of words: deterministic, instant, and good enough to rank by shared words."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002
        self.calls += 1
        return [self._vector(text) for text in input]

    @staticmethod
    def _vector(text: str) -> np.ndarray:
        vector = np.zeros(64, dtype=np.float32)
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        return vector / max(float(np.linalg.norm(vector)), 1e-9)

    @staticmethod
    def name() -> str:
        return "test-bag-of-words"

    def get_config(self) -> dict:
        return {}

    @staticmethod
    def build_from_config(config: dict) -> BagOfWordsEmbeddings:
        return BagOfWordsEmbeddings()


def text_pdf(text: str) -> bytes:
    """Return a minimal one-page PDF showing `text` in Helvetica."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return assemble_pdf(objects)


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    return open_knowledge_base(tmp_path / "state", BagOfWordsEmbeddings())


# Splitting


def test_split_gives_one_chunk_per_sentence_prefixed_with_its_heading() -> None:
    text = (
        "# Returns\n\n## Faulty items\n\n"
        "Faulty items can be returned within 45 days of delivery for a full refund. "
        "We pay the return shipping for every faulty item.\n\n"
        "## Refunds\n\nRefunds reach your card within 5 business days of receipt.\n"
    )
    chunks = split_into_chunks(text, "returns.md")
    assert [c.text for c in chunks] == [
        "Faulty items: Faulty items can be returned within 45 days of delivery for a full refund.",
        "Faulty items: We pay the return shipping for every faulty item.",
        "Refunds: Refunds reach your card within 5 business days of receipt.",
    ]
    assert {c.source for c in chunks} == {"returns.md"}


def test_split_strips_markdown_and_merges_short_fragments() -> None:
    text = "- **Note:** see [the portal](https://example.com).\n- Passwords must have *at least* 12 characters.\n"
    chunks = split_into_chunks(text, "accounts.md")
    assert [c.text for c in chunks] == [
        "Note: see the portal.",
        "Passwords must have at least 12 characters.",
    ]
    merged = split_into_chunks("Short one. Tiny. This sentence is long enough to stand on its own.", "x.txt")
    assert [c.text for c in merged] == ["Short one. Tiny. This sentence is long enough to stand on its own."]
    assert all(len(c.text) >= MIN_CHUNK_CHARS for c in merged)


def test_chunk_ids_are_stable_and_differ_by_source() -> None:
    text = "Express shipping costs $14.99 and arrives the next business day."
    first, again = split_into_chunks(text, "shipping.md"), split_into_chunks(text, "shipping.md")
    other = split_into_chunks(text, "faq.md")
    assert first[0].chunk_id == again[0].chunk_id
    assert first[0].chunk_id != other[0].chunk_id
    assert re.fullmatch(r"[0-9a-f]{16}", first[0].chunk_id)


def test_split_cuts_unpunctuated_text_into_bounded_chunks() -> None:
    chunks = split_into_chunks("word " * 1000, "scan.txt")
    assert len(chunks) > 1 and all(len(c.text) <= 600 for c in chunks)


def test_sample_knowledge_base_is_sentence_sized() -> None:
    chunks = [c for _, text in iter_documents([REPO / "data" / "kb"]) for c in split_into_chunks(text, "kb")]
    assert 30 <= len(chunks) <= 50
    assert max(len(c.text) for c in chunks) < 200


# Loading


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.md", b"", "file is empty"),
        ("blank.txt", b"  \n\t\n", "file is empty"),
        ("notes.docx", b"hello", "unsupported file type '.docx'"),
        ("latin1.txt", "caf\xe9".encode("latin-1"), "not UTF-8 text"),
        ("broken.pdf", b"%PDF-1.4 garbage \x00\xff" * 10, "not a readable PDF"),
    ],
)
def test_unreadable_documents_say_why(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnreadableDocument) as caught:
        load_text(path)
    assert reason in caught.value.reason
    assert name in str(caught.value)


def test_pdf_without_text_is_unreadable(tmp_path: Path) -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    path = tmp_path / "scan.pdf"
    with path.open("wb") as file:
        writer.write(file)
    with pytest.raises(UnreadableDocument, match="no extractable text"):
        load_text(path)


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    path = tmp_path / "manual.pdf"
    path.write_bytes(text_pdf("Hold the pairing button for 5 seconds."))
    assert "pairing button for 5 seconds" in load_text(path)


def test_folders_expand_to_supported_files_but_explicit_files_are_checked(tmp_path: Path) -> None:
    (tmp_path / "kb" / "nested").mkdir(parents=True)
    (tmp_path / "kb" / "a.md").write_text("Alpha.")
    (tmp_path / "kb" / "nested" / "b.txt").write_text("Beta.")
    (tmp_path / "kb" / "photo.png").write_bytes(b"\x89PNG")
    (tmp_path / "c.csv").write_text("x,y")
    results = dict(iter_documents([tmp_path / "kb", tmp_path / "c.csv"]))
    assert {p.name for p in results} == {"a.md", "b.txt", "c.csv"}
    assert results[tmp_path / "kb" / "nested" / "b.txt"] == "Beta."
    assert isinstance(results[tmp_path / "c.csv"], UnreadableDocument)


# Store and ingest


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def test_ingest_twice_adds_nothing_the_second_time(tmp_path: Path, kb: KnowledgeBase) -> None:
    write(tmp_path / "docs", "returns.md", "Faulty items can be returned within 45 days of delivery.")
    write(tmp_path / "docs", "shipping.md", "Standard shipping takes 3 to 5 business days.")
    first = ingest_paths(kb, [tmp_path / "docs"])
    second = ingest_paths(kb, [tmp_path / "docs"])
    assert (first.files_ok, first.chunks_added, first.chunks_unchanged) == (2, 2, 0)
    assert (second.files_ok, second.chunks_added, second.chunks_unchanged) == (2, 0, 2)
    assert kb.count() == 2


def test_editing_a_file_removes_its_old_sentences(tmp_path: Path, kb: KnowledgeBase) -> None:
    path = write(tmp_path, "returns.md", "Faulty items can be returned within 30 days of delivery.")
    write(tmp_path, "shipping.md", "Standard shipping takes 3 to 5 business days.")
    ingest_paths(kb, [tmp_path])
    path.write_text("Faulty items can be returned within 45 days of delivery.")
    report = ingest_paths(kb, [path])
    texts = [hit.text for hit in kb.search("faulty items returned days", k=5)]
    assert report.chunks_added == 1
    assert "Faulty items can be returned within 45 days of delivery." in texts
    assert not any("30 days" in text for text in texts)
    assert kb.count() == 2  # the other file's chunk is untouched


def test_search_ranks_the_closest_chunk_first(tmp_path: Path, kb: KnowledgeBase) -> None:
    write(tmp_path, "returns.md", "Faulty items can be returned within 45 days of delivery.")
    write(tmp_path, "payments.md", "We accept Visa, Mastercard and PayPal for every order.")
    ingest_paths(kb, [tmp_path])
    hits = kb.search("Which cards like Visa do you accept?", k=5)
    assert [hit.source for hit in hits] == ["payments.md", "returns.md"]
    assert 1 >= hits[0].score > hits[1].score >= 0


def test_two_files_with_one_name_are_not_mixed(tmp_path: Path, kb: KnowledgeBase) -> None:
    write(tmp_path / "a", "faq.md", "The first FAQ says the shop opens at 9 am every day.")
    write(tmp_path / "b", "faq.md", "The second FAQ says the shop closes at 6 pm every day.")
    report = ingest_paths(kb, [tmp_path / "a", tmp_path / "b"])
    assert report.files_ok == 1
    assert report.failures == [(str(tmp_path / "b" / "faq.md"), "another file named faq.md was ingested")]


def test_collection_is_named_after_the_embedding_model() -> None:
    local = collection_name_for(LocalEmbeddings(model_path="/nowhere"))
    remote = embedding_function_for(
        Settings(
            embeddings_provider="openai",
            openai_api_key="sk-test",
            openai_embeddings_model="text-embedding-3-small",
        )
    )
    assert isinstance(remote, OpenAIEmbeddings)
    assert local == "knowledge_base-all-minilm-l6-v2"
    assert collection_name_for(remote) == "knowledge_base-text-embedding-3-small"


# The CLI


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("EMBEDDINGS_PROVIDER", "LLM_PROVIDER", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_cli_ingests_good_files_and_fails_on_a_broken_one(
    tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path / "docs", "returns.md", "Faulty items can be returned within 45 days of delivery.")
    (tmp_path / "docs" / "broken.pdf").write_bytes(b"not a pdf at all")
    write(tmp_path / "docs", "shipping.md", "Standard shipping takes 3 to 5 business days.")
    code = main([str(tmp_path / "docs")], embedding_function=BagOfWordsEmbeddings())
    out, err = capsys.readouterr()
    assert code == 1
    assert f"skipped {tmp_path / 'docs' / 'broken.pdf'}: not a readable PDF" in err
    assert "Ingested 2 files: 2 chunks added, 0 unchanged, 1 failed." in out
    assert main([str(good)], embedding_function=BagOfWordsEmbeddings()) == 0
    assert "0 chunks added, 1 unchanged, 0 failed." in capsys.readouterr().out
    from rag.opening import open_knowledge_bases

    assert open_knowledge_bases(state_dir, BagOfWordsEmbeddings()).get("docs").count() == 2  # not the sample


def test_cli_usage_errors_exit_2(tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], embedding_function=BagOfWordsEmbeddings()) == 2
    assert "usage: python -m rag.ingest" in capsys.readouterr().err
    missing = str(tmp_path / "nope.md")
    assert main([missing], embedding_function=BagOfWordsEmbeddings()) == 2
    assert f"no such file or folder: {missing}" in capsys.readouterr().err
    assert not state_dir.exists()


# Real retrieval over the shipped knowledge base


@pytest.fixture(scope="session")
def real_kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    kb = open_knowledge_base(tmp_path_factory.mktemp("real"), LocalEmbeddings())
    ingest_paths(kb, [REPO / "data" / "kb"])
    return kb


def test_every_eval_question_retrieves_its_answer_first(real_kb: KnowledgeBase) -> None:
    rows = [json.loads(line) for line in (REPO / "data" / "kb" / "eval.jsonl").read_text().splitlines()]
    assert len(rows) == 16
    assert any(
        r["question"] == "How long can I return a faulty item?" and "45" in r["expected"] for r in rows
    )
    misses = []
    for row in rows:
        top = real_kb.search(row["question"], k=1)[0]
        has_answer = any(s.lower() in top.text.lower() for s in row["expected"])
        if top.source != row["source"] or not has_answer:
            misses.append(f"{row['question']} -> {top.source}: {top.text}")
    assert not misses, "\n".join(misses)


def test_concurrent_embeddings_share_batches_and_each_caller_gets_its_own_vectors():
    import threading
    import time

    from rag.embeddings import EmbeddingBatcher

    calls: list[int] = []

    def encode(texts: list[str]) -> list[str]:
        calls.append(len(texts))
        time.sleep(0.05)  # a forward pass: others arrive meanwhile and wait for the next one
        return [f"v:{t}" for t in texts]

    batcher = EmbeddingBatcher(encode)
    results: dict[int, list[str]] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, batcher([f"q{i}", f"r{i}"])))
               for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(results[i] == [f"v:q{i}", f"v:r{i}"] for i in range(10))
    assert sum(calls) == 20 and len(calls) < 10  # fewer passes than callers


def test_an_embedding_failure_reaches_its_callers_and_the_batcher_goes_on():
    from rag.embeddings import EmbeddingBatcher

    def encode(texts: list[str]) -> list[str]:
        if "bad" in texts:
            raise RuntimeError("no")
        return texts

    batcher = EmbeddingBatcher(encode)
    with pytest.raises(RuntimeError):
        batcher(["bad"])
    assert batcher(["good"]) == ["good"]


def test_a_prefetched_question_is_embedded_once_and_taken_by_its_search(monkeypatch) -> None:
    import asyncio

    from rag.embeddings import PREFETCHED

    passes: list[list[str]] = []
    monkeypatch.setattr(LocalEmbeddings, "_encode", lambda self, texts: passes.append(texts) or [[len(t)] for t in texts])
    embed = LocalEmbeddings(model_path="/nowhere")

    embed.prefetch("How long can I return a faulty item?")
    embed.prefetch("How long can I return a faulty item?")  # asked twice before the search: one pass
    vectors = asyncio.run(embed.aembed(["How long can I return a faulty item?"]))
    assert [list(v) for v in vectors] == [[36.0]] and passes == [["How long can I return a faulty item?"]]
    asyncio.run(embed.aembed(["How long can I return a faulty item?"]))  # taken: a later search embeds anew
    assert len(passes) == 2

    for index in range(PREFETCHED + 10):  # messages refused after their prefetch: the oldest are dropped
        embed.prefetch(f"question {index}")
    assert len(embed._prefetched) == PREFETCHED and "question 0" not in embed._prefetched


def test_a_search_after_a_prefetch_finds_what_search_finds(real_kb: KnowledgeBase) -> None:
    import asyncio

    question = "Do you ship to Mexico?"
    real_kb._embedding_function.prefetch(question)
    hits = asyncio.run(real_kb.asearch(question, 3))
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in real_kb.search(question, 3)]


def test_a_search_asking_for_more_than_there_is_gets_what_there_is(tmp_path: Path) -> None:
    kb = open_knowledge_base(tmp_path / "state", BagOfWordsEmbeddings())
    assert kb.search("anything", 4) == []
    ingest_paths(kb, [write(tmp_path / "docs", "one.md", "Faulty items can be returned within 45 days.")])
    assert [h.text for h in kb.search("returns", 4)] == ["Faulty items can be returned within 45 days."]


def test_the_async_search_finds_what_search_finds_holding_no_worker_thread(real_kb: KnowledgeBase) -> None:
    import asyncio
    import threading

    question = "How long can I return a faulty item?"
    before = {t.name for t in threading.enumerate()}

    async def many() -> list[list]:
        return await asyncio.gather(*(real_kb.asearch(question, 3) for _ in range(8)))

    results = asyncio.run(many())
    assert all([h.chunk_id for h in hits] == [h.chunk_id for h in real_kb.search(question, 3)] for hits in results)
    # the embedding ran on the batcher's one thread: no executor thread was started for it
    assert not any(name.startswith("asyncio_") for name in {t.name for t in threading.enumerate()} - before)


def test_cli_lists_knowledge_bases_and_documents_and_removes_one(
    tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "docs", "returns.md", "Faulty items can be returned within 45 days of delivery.")
    assert main(["--kb", "shop", str(tmp_path / "docs")], embedding_function=BagOfWordsEmbeddings()) == 0
    capsys.readouterr()
    assert main(["--list"], embedding_function=BagOfWordsEmbeddings()) == 0
    assert "shop: 1 documents, 1 chunks" in capsys.readouterr().out
    assert main(["--list", "--kb", "shop"], embedding_function=BagOfWordsEmbeddings()) == 0
    assert "returns.md: 1 chunks, added 20" in capsys.readouterr().out
    assert main(["--kb", "shop", "--remove", "returns.md", "nope.md"], embedding_function=BagOfWordsEmbeddings()) == 1
    out = capsys.readouterr().out
    assert "removed returns.md: 1 chunks" in out and "no document named nope.md in shop" in out
    assert main(["--list", "--kb", "nothere"], embedding_function=BagOfWordsEmbeddings()) == 2
    assert main(["--remove", "x.md"], embedding_function=BagOfWordsEmbeddings()) == 2


def test_an_uploads_embedding_gives_way_to_questions_and_to_answers_being_written(monkeypatch) -> None:
    """rag/priority.py: bulk work goes in small pieces, after queries, and waits while a run is going."""
    import threading

    from rag import embeddings
    from rag.embeddings import BULK_PIECE, EmbeddingBatcher

    monkeypatch.setattr(embeddings, "BULK_MAX_WAIT_S", 600.0)  # no forced piece, however slow the machine

    passes: list[int] = []
    writing = threading.Event()
    writing.set()  # an answer is being written
    batcher = EmbeddingBatcher(lambda texts: passes.append(len(texts)) or [[0.0]] * len(texts), busy=writing.is_set)

    bulk = batcher.submit([f"sentence {i}" for i in range(40)])
    query = batcher.submit(["a question"])
    assert len(query.result(timeout=5)) == 1  # the question is answered while the upload waits
    assert not bulk.done() and passes == [1]
    writing.clear()  # the answer is written: the upload goes on, a piece at a time
    assert len(bulk.result(timeout=10)) == 40
    assert passes[1:] == [BULK_PIECE, BULK_PIECE, 40 - 2 * BULK_PIECE]
