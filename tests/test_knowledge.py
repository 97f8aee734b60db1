"""Named knowledge bases: the registry, a conversation's one knowledge base, the relevance floor,
citations and the grounding verdict on every path."""

from __future__ import annotations

from pathlib import Path

import chromadb
import pytest

from chat.components import Components
from chat.events import GroundingChecked, RunEnded, RunStarted
from chat.service import AgentService, WrongKnowledgeBase
from chat.spans import span_tree
from chat.tools import build_tools
from rag.bases import MANIFEST_KEY, KnowledgeBaseError, KnowledgeBases, Manifest, UnknownKnowledgeBase
from rag.ingest import ingest_paths
from rag.opening import drop_copies, open_knowledge_bases
from rag.store import KnowledgeBase, collection_name_for
from tests.conftest import Reply, emptied
from tests.test_rag import BagOfWordsEmbeddings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["embedded", "server"])
def bases(request, tmp_path: Path) -> KnowledgeBases:
    """The knowledge bases in the embedded store, and again in a Chroma server (CHROMA_URL): the same tests pass on both."""
    url = emptied(request.getfixturevalue("chroma_server")) if request.param == "server" else None
    library = open_knowledge_bases(tmp_path / "state", BagOfWordsEmbeddings(), REPO / "data" / "kb" / "manifest.json",
                                   chroma_url=url)
    ingest_paths(library.open("sample").kb, [REPO / "data" / "kb"])
    return library


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


# The registry


def test_knowledge_bases_are_created_listed_described_and_deleted(bases: KnowledgeBases, tmp_path: Path) -> None:
    bases.create("bikes", Manifest(assistant_name="Loop's helper", examples=("Can I bring my dog?",)))
    ingest_paths(bases.get("bikes"), [write(tmp_path / "docs", "rules.md", "# Rules\n\nDogs are not allowed on bikes.\n")])
    bases.changed("bikes")

    assert bases.names() == ["sample", "bikes"]  # sample first
    described = bases.describe("bikes")
    assert described["assistant_name"] == "Loop's helper" and described["chunks"] == 1 and described["documents"] == 1
    assert [d["document"] for d in bases.get("bikes").documents()] == ["rules.md"]
    assert bases.get("bikes").documents()[0]["added_at"]
    bases.delete("bikes")
    assert bases.names() == ["sample"] and not bases.exists("bikes")
    with pytest.raises(UnknownKnowledgeBase):
        bases.get("bikes")


@pytest.mark.parametrize("name", ["", "Sample", "../etc", "a--b", "a b", "-a", "a" * 41, "ü"])
def test_a_bad_name_is_refused_in_our_words(bases: KnowledgeBases, name: str) -> None:
    with pytest.raises(KnowledgeBaseError, match="lowercase letters"):
        bases.create(name)


def test_a_taken_name_is_refused(bases: KnowledgeBases) -> None:
    with pytest.raises(KnowledgeBaseError, match="already"):
        bases.create("sample")


def test_the_sample_keeps_its_identity_from_its_manifest(bases: KnowledgeBases) -> None:
    manifest = bases.manifest("sample")
    assert manifest.assistant_name == "Voltline's support assistant"
    assert "How long can I return a faulty item?" in manifest.examples


def test_a_broken_manifest_falls_back_to_defaults(bases: KnowledgeBases, tmp_path: Path) -> None:
    bases.create("odd")
    bases.get("odd").set_metadata(MANIFEST_KEY, "{not json")
    fresh = KnowledgeBases(bases._client, BagOfWordsEmbeddings(), tmp_path / "state" / "knowledge")
    assert fresh.manifest("odd") == Manifest(description="Documents in odd.")
    assert Manifest.from_dict({"assistant_name": 3, "examples": "no"}) == Manifest()


def test_identities_live_in_the_store_so_every_replica_shares_them(bases: KnowledgeBases, tmp_path: Path) -> None:
    bases.create("bikes", Manifest(assistant_name="Loop's helper"))
    bases.set_eval_set("bikes", '{"question": "Dogs?", "expected": "no"}')
    other = KnowledgeBases(bases._client, BagOfWordsEmbeddings(), tmp_path / "elsewhere")  # another process
    assert other.manifest("bikes").assistant_name == "Loop's helper" and other.eval_set("bikes").startswith("{")

    legacy = tmp_path / "state" / "knowledge" / "old"  # an older version kept them in files: moved in
    bases.open("old")
    write(legacy, "manifest.json", '{"assistant_name": "Old helper"}')
    write(legacy, "eval.jsonl", '{"question": "Q?", "expected": "x"}')
    again = KnowledgeBases(bases._client, BagOfWordsEmbeddings(), tmp_path / "state" / "knowledge")
    assert again.manifest("old").assistant_name == "Old helper"
    assert bases.get("old").metadata()[MANIFEST_KEY] and again.eval_set("old").startswith('{"question"')


def test_the_fingerprint_follows_the_content(bases: KnowledgeBases, tmp_path: Path) -> None:
    bases.create("a")
    bases.create("b")
    docs = write(tmp_path / "docs", "x.md", "# X\n\nThe office opens at 9 am.\n")
    for name in ("a", "b"):
        ingest_paths(bases.get(name), [docs])
        bases.changed(name)
    assert bases.fingerprint("a") == bases.fingerprint("b") != bases.fingerprint("sample")
    bases.get("b").remove_document("x.md")
    bases.changed("b")
    assert bases.fingerprint("a") != bases.fingerprint("b")


def test_an_older_single_store_becomes_docs_without_the_sample_copy(tmp_path: Path) -> None:
    embed = BagOfWordsEmbeddings()
    client = chromadb.PersistentClient(path=str(tmp_path / "state" / "chroma"),
                                       settings=chromadb.config.Settings(anonymized_telemetry=False))
    legacy = KnowledgeBase(client, embed, collection_name_for(embed))
    ingest_paths(legacy, [REPO / "data" / "kb", write(tmp_path / "mine", "notes.md", "# Notes\n\nOur van leaves at noon.\n")])
    del client

    bases = open_knowledge_bases(tmp_path / "state", embed, REPO / "data" / "kb" / "manifest.json")
    ingest_paths(bases.open("sample").kb, [REPO / "data" / "kb"])
    drop_copies(bases, bases.legacy, "sample")

    assert bases.names() == ["sample", "docs"]
    assert [d["document"] for d in bases.get("docs").documents()] == ["notes.md"]


# A conversation's knowledge base, the floor, citations and grounding


@pytest.fixture
def service(bases: KnowledgeBases, tmp_path: Path, scripted_model, tickets) -> AgentService:
    bases.create("bikes", Manifest(assistant_name="Loop Bike Share's helper"))
    ingest_paths(bases.get("bikes"), [write(tmp_path / "bikes", "pets.md",
                                            "# Pets\n\nDogs cannot ride in the basket of a Loop bike.\n")])
    tools = build_tools(lambda name: bases.get(name or "sample"), tickets, top_k=2, min_score=0.35)
    components = Components(scripted_model, "scripted", tools, knowledge=bases, default_knowledge_base="sample")
    threads: dict[str, str] = {}

    def claim(caller, thread_id, message, knowledge_base):
        return threads.setdefault(thread_id, knowledge_base)

    service = AgentService(lambda: components, claim=claim)
    service.warm_up()
    return service


async def run(service: AgentService, message: str, thread_id: str, knowledge_base: str | None = None) -> list:
    return [event async for event in service.stream(message, thread_id, knowledge_base=knowledge_base)]


async def test_a_conversation_answers_from_its_own_knowledge_base_with_its_identity(service, scripted_model):
    scripted_model.replies = [Reply(tokens=["Dogs cannot ride in the basket."])]
    events = await run(service, "Can my dog ride in the basket?", "t1", "bikes")

    started = next(e for e in events if isinstance(e, RunStarted))
    end = events[-1]
    assert started.knowledge_base == "bikes" and len(started.knowledge_fingerprint) == 16
    assert "Loop Bike Share's helper" in scripted_model.prompts[0][0].content
    assert "Voltline" not in scripted_model.prompts[0][0].content
    assert [c.source for c in end.citations] == ["pets.md"]  # nothing from the sample shop
    assert end.grounding == "grounded"
    assert any(isinstance(e, GroundingChecked) and e.verdict == "grounded" for e in events)


async def test_a_message_is_embedded_for_its_search_before_the_graph_starts(service, bases, monkeypatch):
    prefetched: list[str] = []
    monkeypatch.setattr(bases, "prefetch", prefetched.append)
    await run(service, "Can my dog ride in the basket?", "t1", "bikes")
    assert prefetched == ["Can my dog ride in the basket?"]  # the support graph searches for the message first


async def test_a_thread_keeps_its_knowledge_base(service, scripted_model):
    await run(service, "Can my dog ride in the basket?", "t1", "bikes")
    later = await run(service, "And a cat?", "t1")  # no name: the thread's own
    assert next(e for e in later if isinstance(e, RunStarted)).knowledge_base == "bikes"
    with pytest.raises(WrongKnowledgeBase, match="start a new conversation"):
        await run(service, "Returns?", "t1", "sample")


async def test_an_unknown_knowledge_base_is_refused_before_anything_runs(service):
    with pytest.raises(WrongKnowledgeBase, match="no knowledge base named"):
        await run(service, "Hello?", "t2", "nope")


async def test_nothing_relevant_enough_is_said_plainly_without_asking_the_model(service, scripted_model):
    events = await run(service, "zebra quantum violin", "t3", "bikes")

    end = events[-1]
    assert isinstance(end, RunEnded) and end.status == "completed"
    assert end.answer.count("don't cover this question") == 1 and "bikes" in end.answer
    assert "support ticket" in end.answer  # tools are bound: a person can be asked
    assert scripted_model.prompts == [] and end.citations == () and end.grounding == "no_sources"
    assert end.ttft_s is not None and any(e.type == "token" for e in events)
    spans = span_tree(events)  # no model call is drawn: its words are the agent node's own
    assert [s for s in spans if s.kind == "model"] == []
    said = next(s for s in spans if s.kind == "node" and s.name == "agent")
    assert said.attributes["text"] == end.answer and said.token_times()


async def test_a_wrong_claim_is_flagged_with_the_documents_sentence(service, scripted_model):
    scripted_model.replies = [Reply(tokens=["Yes, ", "dogs can ride in the basket."])]
    events = await run(service, "Can my dog ride in the basket?", "t4", "bikes")

    checked = next(e for e in events if isinstance(e, GroundingChecked))
    assert checked.verdict == "unsupported" and checked.unsupported
    assert "cannot ride" in checked.evidence
    assert events[-1].grounding == "unsupported"


def test_a_manifest_beside_the_documents_is_the_knowledge_bases_identity(bases: KnowledgeBases) -> None:
    from rag.opening import adopt_manifest

    bases.create("bikes")
    assert adopt_manifest(bases, "bikes", REPO / "data" / "heldout" / "kb")
    assert bases.manifest("bikes").assistant_name == "Loop Bike Share helper"
    assert not adopt_manifest(bases, "bikes", REPO / "data" / "nowhere")


# Over HTTP


def test_the_knowledge_bases_over_http(serve_glassbox, bases: KnowledgeBases, tmp_path: Path) -> None:
    import httpx

    running = serve_glassbox()
    url = running.url
    assert httpx.get(f"{url}/api/kb").status_code in (200, 503)  # 503 only while warming up
    import time

    for _ in range(100):
        if running.glassbox.service.components is not None:
            break
        time.sleep(0.05)
    running.glassbox.service.components.knowledge = bases

    made = httpx.post(f"{url}/api/kb", json={"name": "bikes", "assistant_name": "Loop's helper",
                                               "examples": ["Can I bring my dog?"]})
    assert made.status_code == 200 and made.json()["assistant_name"] == "Loop's helper"
    assert httpx.post(f"{url}/api/kb", json={"name": "bikes"}).status_code == 409
    assert httpx.post(f"{url}/api/kb", json={"name": "../x"}).status_code == 422
    listed = httpx.get(f"{url}/api/kb").json()
    assert [kb["name"] for kb in listed["knowledge_bases"]] == ["sample", "bikes"] and listed["default"] == "sample"

    ingest_paths(bases.get("bikes"), [write(tmp_path / "b", "pets.md", "# Pets\n\nDogs cannot ride in the basket.\n")])
    documents = httpx.get(f"{url}/api/kb/bikes/documents").json()["documents"]
    assert [(d["document"], d["chunks"]) for d in documents] == [("pets.md", 1)]
    assert httpx.delete(f"{url}/api/kb/bikes/documents/nope.md").status_code == 404
    assert httpx.delete(f"{url}/api/kb/bikes/documents/pets.md").json() == {"document": "pets.md", "chunks_removed": 1}
    assert httpx.delete(f"{url}/api/kb/sample").status_code == 409
    assert httpx.delete(f"{url}/api/kb/bikes").json() == {"name": "bikes", "deleted": True}
    assert httpx.get(f"{url}/api/kb/bikes/documents").status_code == 404

    chat = httpx.post(f"{url}/api/chat", json={"message": "Hi", "knowledge_base": "nope"})
    assert chat.status_code == 404 and "no knowledge base named" in chat.json()["detail"]


@pytest.mark.parametrize("wrong", ["localhost:8000", "http://localhost", "ftp://h:1", "http://h:1/api", "http://h:x"])
def test_chroma_url_must_name_a_server(wrong: str) -> None:
    from chat.config import Settings, SettingsError

    with pytest.raises(SettingsError, match="CHROMA_URL must be a Chroma server's address"):
        Settings.from_env({"CHROMA_URL": wrong})
    assert Settings.from_env({"CHROMA_URL": "http://chroma:8000/"}).chroma_url == "http://chroma:8000"
    assert Settings.from_env({}).chroma_url is None


def test_database_url_must_be_postgres() -> None:
    from chat.config import Settings, SettingsError

    with pytest.raises(SettingsError, match="DATABASE_URL must be a Postgres address") as refused:
        Settings.from_env({"DATABASE_URL": "mysql://root:hunter2@db/x"})
    assert "hunter2" not in str(refused.value)  # a password is never echoed
    assert Settings.from_env({"DATABASE_URL": "postgresql://g:s@db:5432/g"}).database_url == "postgresql://g:s@db:5432/g"
