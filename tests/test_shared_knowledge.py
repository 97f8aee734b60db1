"""Knowledge bases on one Chroma server shared by replicas: what one replica changes, the others see.

Each test opens two KnowledgeBases on the `chroma_server` fixture, as two app replicas with the
same CHROMA_URL would. They read their cache again on every use (refresh_s=0), so nothing sleeps;
the refresh interval itself is tested with a clock the test moves.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from chat.graph import build_graph
from chat.tools import build_tools
from rag.bases import SHARED_REFRESH_S, KnowledgeBases, Manifest, UnknownKnowledgeBase
from rag.ingest import ingest_paths
from rag.opening import open_knowledge_bases
from rag.store import persistent_client
from tests.conftest import ScriptedChatModel, emptied
from tests.test_rag import BagOfWordsEmbeddings

REPO = Path(__file__).resolve().parent.parent
SAMPLE_MANIFEST = REPO / "data" / "kb" / "manifest.json"
CHROMAS_WORDS = ("does not exist", "Collection [", "NotFoundError")  # what Chroma says of a deleted collection


class CountingClient:
    """A Chroma client that counts the calls which look a collection up in the store."""

    LOOKUPS = ("list_collections", "get_collection", "get_or_create_collection")

    def __init__(self, client: Any) -> None:
        self._client, self.calls = client, Counter()

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if name not in self.LOOKUPS:
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return found(*args, **kwargs)

        return counted


@pytest.fixture
def server(chroma_server) -> str:
    return emptied(chroma_server)


@pytest.fixture
def replicas(server: str, tmp_path: Path) -> tuple[KnowledgeBases, KnowledgeBases]:
    """Two replicas' knowledge bases on one Chroma server, each with its own state dir."""
    first, second = (open_knowledge_bases(tmp_path / name, BagOfWordsEmbeddings(), SAMPLE_MANIFEST,
                                          chroma_url=server, refresh_s=0.0) for name in ("a", "b"))
    ingest_paths(first.open("sample").kb, [REPO / "data" / "kb"])
    return first, second


def documents(folder: Path, **files: str) -> Path:
    """Write `files` (name without .md -> text) into `folder`; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, text in files.items():
        (folder / f"{stem}.md").write_text(text)
    return folder


def fill(bases: KnowledgeBases, name: str, folder: Path) -> None:
    """Add a folder's documents to `name`, as the app's start-up and the CLI do."""
    ingest_paths(bases.get(name), [folder])
    bases.changed(name)


def ours(error: pytest.ExceptionInfo, name: str) -> str:
    """The error's text, checked to be our sentence about the deleted `name` and none of Chroma's words."""
    text = str(error.value)
    assert f"There is no knowledge base named '{name}' any more" in text
    assert not any(words in text for words in CHROMAS_WORDS)
    return text


def test_the_app_refreshes_a_shared_store_and_never_the_embedded_one(server: str, tmp_path: Path) -> None:
    shared = open_knowledge_bases(tmp_path / "a", BagOfWordsEmbeddings(), chroma_url=server)
    embedded = open_knowledge_bases(tmp_path / "b", BagOfWordsEmbeddings())
    assert (shared.refresh_s, embedded.refresh_s) == (SHARED_REFRESH_S, None)


def test_a_knowledge_base_created_on_one_replica_is_listed_and_opened_on_the_other(replicas) -> None:
    first, second = replicas
    assert not second.exists("bikes")
    first.create("bikes", Manifest(assistant_name="Loop's helper"))

    assert second.names() == ["sample", "bikes"] and second.exists("bikes")
    assert second.manifest("bikes").assistant_name == "Loop's helper"
    assert second.get("bikes").count() == 0


def test_documents_added_on_one_replica_change_the_others_fingerprint(replicas, tmp_path: Path) -> None:
    first, second = replicas
    first.create("bikes")
    empty = second.fingerprint("bikes")
    fill(first, "bikes", documents(tmp_path / "v1", pets="# Pets\n\nDogs cannot ride in the basket of a Loop bike.\n"))

    filled = second.fingerprint("bikes")
    assert filled != empty and filled == first.fingerprint("bikes")
    assert [hit.source for hit in second.get("bikes").search("dog basket", 1)] == ["pets.md"]

    # The same document edited, with as many chunks as before: a count alone would not tell.
    fill(first, "bikes", documents(tmp_path / "v2", pets="# Pets\n\nDogs may ride in the basket of a Loop bike.\n"))
    assert second.get("bikes").count() == 1
    assert second.fingerprint("bikes") not in (empty, filled)


def test_a_manifest_changed_on_one_replica_is_the_others_manifest(replicas) -> None:
    first, second = replicas
    first.create("bikes", Manifest(assistant_name="Loop's helper"))
    assert second.manifest("bikes").assistant_name == "Loop's helper"
    first.set_manifest("bikes", Manifest(assistant_name="Loop Bike Share", instructions="Answer in French."))

    assert second.manifest("bikes") == Manifest(assistant_name="Loop Bike Share", instructions="Answer in French.")
    assert second.describe("bikes")["assistant_name"] == "Loop Bike Share"


async def test_a_knowledge_base_deleted_on_one_replica_is_gone_on_the_other_in_our_words(replicas, tmp_path) -> None:
    first, second = replicas
    first.create("bikes")
    fill(first, "bikes", documents(tmp_path / "docs", pets="# Pets\n\nDogs cannot ride in the basket.\n"))
    held = second.get("bikes")  # a search under way holds it
    assert held.search("dog", 1)
    first.delete("bikes")

    assert not second.exists("bikes")  # though the second replica still has it cached
    with pytest.raises(UnknownKnowledgeBase) as searching:
        held.search("dog", 1)
    ours(searching, "bikes")
    with pytest.raises(UnknownKnowledgeBase) as awaiting:
        await held.asearch("dog", 1)
    ours(awaiting, "bikes")
    assert second.names() == ["sample"]
    with pytest.raises(UnknownKnowledgeBase, match="no knowledge base named 'bikes'") as getting:
        second.get("bikes")
    assert not any(words in str(getting.value) for words in CHROMAS_WORDS)


@pytest.mark.parametrize("step", ["get", "delete", "fingerprint", "set_manifest"])
def test_a_stale_replica_says_the_knowledge_base_was_deleted(replicas, step: str) -> None:
    first, second = replicas
    first.create("bikes")
    second.get("bikes")  # cached on the second replica
    first.delete("bikes")
    calls = {"get": lambda: second.get("bikes"), "delete": lambda: second.delete("bikes"),
             "fingerprint": lambda: second.fingerprint("bikes"),
             "set_manifest": lambda: second.set_manifest("bikes", Manifest(assistant_name="x"))}

    with pytest.raises(UnknownKnowledgeBase) as refused:
        calls[step]()
    ours(refused, "bikes")
    assert "bikes" not in first.names()  # nothing brought it back


async def test_the_search_tool_says_a_knowledge_base_deleted_between_refreshes_is_gone(
        replicas, server: str, tmp_path: Path, tickets) -> None:
    first, _ = replicas
    first.create("bikes")
    fill(first, "bikes", documents(tmp_path / "docs", pets="# Pets\n\nDogs cannot ride in the basket.\n"))
    # A replica that read the knowledge base just now and will not read it again for an hour.
    second = open_knowledge_bases(tmp_path / "c", BagOfWordsEmbeddings(), chroma_url=server, refresh_s=3600.0)
    second.get("bikes")
    graph = build_graph(ScriptedChatModel(), build_tools(lambda name: second.get(name), tickets, top_k=1))
    first.delete("bikes")

    config = {"configurable": {"knowledge_base": "bikes"}}
    written = [chunk async for chunk in graph.astream({"messages": [HumanMessage("Can my dog come?")]}, config,
                                                      stream_mode="custom")]
    error = next(chunk["error"] for chunk in written if chunk.get("kind") == "tool_end")
    assert error.startswith("There is no knowledge base named 'bikes' any more")  # shown to the user as it is
    assert not any(words in error for words in CHROMAS_WORDS)
    assert not second.exists("bikes")


def test_a_knowledge_base_deleted_and_created_again_is_searched_anew(replicas, tmp_path: Path) -> None:
    first, second = replicas
    first.create("bikes", Manifest(assistant_name="Old helper"))
    fill(first, "bikes", documents(tmp_path / "old", pets="# Pets\n\nDogs cannot ride in the basket.\n"))
    assert [hit.source for hit in second.get("bikes").search("dog basket", 1)] == ["pets.md"]
    old = second.fingerprint("bikes")
    first.delete("bikes")
    first.create("bikes", Manifest(assistant_name="New helper"))
    fill(first, "bikes", documents(tmp_path / "new", hours="# Hours\n\nThe depot opens at seven in the morning.\n"))

    assert [hit.source for hit in second.get("bikes").search("depot opens", 5)] == ["hours.md"]
    assert second.manifest("bikes").assistant_name == "New helper"
    assert second.fingerprint("bikes") == first.fingerprint("bikes") != old


def test_a_shared_store_is_read_again_only_once_refresh_s_old(replicas, server: str, tmp_path: Path) -> None:
    first, _ = replicas
    first.create("bikes", Manifest(assistant_name="Old helper"))
    now = [100.0]
    client = CountingClient(persistent_client(tmp_path / "c", server))
    second = KnowledgeBases(client, BagOfWordsEmbeddings(), tmp_path / "c" / "knowledge", refresh_s=5.0,
                            clock=lambda: now[0])
    second.get("bikes")
    before = second.fingerprint("bikes")
    fill(first, "bikes", documents(tmp_path / "docs", pets="# Pets\n\nDogs cannot ride in the basket.\n"))
    first.set_manifest("bikes", Manifest(assistant_name="New helper"))
    client.calls.clear()

    now[0] = 104.9  # read 4.9 s ago: served from the cache, no store round trip
    assert second.get("bikes").search("dog", 1) and second.manifest("bikes").assistant_name == "Old helper"
    assert second.cached_fingerprint("bikes") == before and second.fingerprint("bikes") == before
    assert client.calls == Counter()

    now[0] = 105.0  # 5 s: read again, once
    assert second.manifest("bikes").assistant_name == "New helper"
    assert client.calls == Counter(get_collection=1)
    assert second.cached_fingerprint("bikes") is None
    assert second.fingerprint("bikes") == first.fingerprint("bikes") != before


def test_the_embedded_store_serves_from_its_cache_without_asking_the_store(tmp_path: Path) -> None:
    client = CountingClient(persistent_client(tmp_path / "state"))
    bases = KnowledgeBases(client, BagOfWordsEmbeddings(), tmp_path / "state" / "knowledge")
    bases.create("bikes", Manifest(assistant_name="Loop's helper"))
    fill(bases, "bikes", documents(tmp_path / "docs", pets="# Pets\n\nDogs cannot ride in the basket.\n"))
    fingerprint = bases.fingerprint("bikes")
    client.calls.clear()

    for _ in range(3):
        assert bases.exists("bikes") and bases.get("bikes").search("dog", 1)
        assert bases.manifest("bikes").assistant_name == "Loop's helper"
        assert bases.cached_fingerprint("bikes") == bases.fingerprint("bikes") == fingerprint
    assert client.calls == Counter()
