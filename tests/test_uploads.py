"""Uploading documents: every file gets its own result, bad ones cost only themselves, the next
message finds what went in, and only the admin may upload (page and API alike)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from chat.events import RetrievalHits, RunEnded
from rag.bases import KnowledgeBases, Manifest
from rag.uploads import MAX_FILES, Upload, add_uploads, upload_into
from tests.conftest import Reply
from tests.test_knowledge import bases, run, service  # noqa: F401 (fixtures)

PETS = b"# Pets\n\nDogs cannot ride in the basket of a Loop bike.\n"
HTML = b"<html><head><title>Fares</title></head><body><h1>Fares</h1><p>A day pass costs 6 pounds.</p></body></html>"


def upload(name: object, data: bytes) -> Upload:
    return Upload(name, len(data), lambda: data)


def test_each_bad_file_gets_its_own_message_and_the_others_go_in(bases: KnowledgeBases) -> None:  # noqa: F811
    bases.create("bikes")
    files = [
        upload("pets.md", PETS),
        upload("fares.html", HTML),
        upload("big.txt", b"Big. " * 300),  # over the 1,000-byte limit below
        upload("slides.pptx", b"PK\x03\x04"),
        upload("empty.txt", b""),
        upload("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog"),
        upload("photo.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))),
        upload("../../etc/cron.md", PETS),
        upload("notes/inner.md", PETS),
        upload("c:\\win.md", PETS),
        upload("bell\x07.md", PETS),
        upload(".hidden.md", PETS),
        upload("pets.md", PETS),  # the same name twice in one upload
        upload(None, PETS),
    ]
    results = add_uploads(bases.get("bikes"), files, max_bytes=1_000)

    assert [r.ok for r in results] == [True, True] + [False] * 12
    assert results[0].message == "added: 1 chunks" and results[0].new_chunks == 1
    reasons = [r.message for r in results[2:]]
    assert "1.5 KB, over the 1.0 KB limit (MAX_UPLOAD_MB)" in reasons[0]
    assert "unsupported file type '.pptx'" in reasons[1] and reasons[2] == "file is empty"
    assert "not a readable PDF" in reasons[3] and "binary" in reasons[4]
    assert all("slash" in reason for reason in reasons[5:8]) and "control characters" in reasons[8]
    assert "hidden" in reasons[9] and "same upload" in reasons[10] and "no name" in reasons[11]
    assert results[10].file == "bell?.md"  # shown printable
    for reason in reasons:  # our words only: no exception names, no library text
        assert "Error" not in reason and "Traceback" not in reason and "pypdf" not in reason
    assert [d["document"] for d in bases.get("bikes").documents()] == ["fares.html", "pets.md"]
    fares = bases.get("bikes").search("How much is a day pass?", 1)[0]
    assert fares.text == "Fares: A day pass costs 6 pounds."  # an HTML heading is the section


def test_a_file_of_the_same_name_replaces_the_old_one(bases: KnowledgeBases) -> None:  # noqa: F811
    bases.create("bikes")
    kb = bases.get("bikes")
    add_uploads(kb, [upload("pets.md", PETS)], 10_000)
    again = add_uploads(kb, [upload("pets.md", PETS)], 10_000)[0]
    assert again.ok and again.new_chunks == 0 and again.message.startswith("replaced")
    edited = add_uploads(kb, [upload("pets.md", b"# Pets\n\nCats may ride in the basket.\n")], 10_000)[0]
    assert edited.new_chunks == 1 and [h.text for h in kb.search("basket", 5)] == ["Pets: Cats may ride in the basket."]


def test_an_upload_takes_at_most_max_files_and_says_so(bases: KnowledgeBases) -> None:  # noqa: F811
    bases.create("many")
    files = [upload(f"d{i}.md", f"Document {i} is here.".encode()) for i in range(MAX_FILES + 2)]
    results = add_uploads(bases.get("many"), files, 10_000)
    assert sum(r.ok for r in results) == MAX_FILES and "upload the rest next" in results[-1].message


def test_a_manifest_uploaded_with_the_documents_is_the_identity(bases: KnowledgeBases) -> None:  # noqa: F811
    bases.create("bikes")
    manifest = json.dumps({"assistant_name": "Loop's helper", "examples": ["Can I bring my dog?"]}).encode()
    outcome = upload_into(bases, "bikes", [upload("pets.md", PETS), upload("manifest.json", manifest)], 10_000)
    assert outcome["added"] == 2 and outcome["results"][0]["file"] == "manifest.json"
    assert bases.manifest("bikes") == Manifest("Loop's helper", examples=("Can I bring my dog?",))
    broken = upload_into(bases, "bikes", [upload("manifest.json", b"{not json")], 10_000)["results"][0]
    assert not broken["ok"] and "kept" in broken["message"] and bases.manifest("bikes").assistant_name == "Loop's helper"


async def test_an_upload_is_searchable_by_the_very_next_message(service, bases, scripted_model):  # noqa: F811
    before = bases.fingerprint("bikes")
    upload_into(bases, "bikes", [upload("fares.html", HTML)], 10_000)
    assert bases.fingerprint("bikes") != before

    scripted_model.replies = [Reply(tokens=["A day pass costs 6 pounds."])]
    events = await run(service, "How much is a day pass?", "t9", "bikes")
    assert [h.source for e in events if isinstance(e, RetrievalHits) for h in e.hits][:1] == ["fares.html"]
    end = events[-1]
    assert isinstance(end, RunEnded) and [c.source for c in end.citations] == ["fares.html"]


# Over HTTP


def serve_with(serve_glassbox, bases: KnowledgeBases, **settings):  # noqa: F811
    return attach(serve_glassbox(**settings), bases)


def attach(running, bases: KnowledgeBases):  # noqa: F811
    """Give the served app these knowledge bases once it is warm."""
    import time

    for _ in range(100):
        if running.glassbox.service.components is not None:
            break
        time.sleep(0.05)
    running.glassbox.service.components.knowledge = bases
    return running


def test_documents_are_uploaded_over_http_several_at_once(serve_glassbox, bases: KnowledgeBases) -> None:  # noqa: F811
    url = serve_with(serve_glassbox, bases, max_upload_bytes=1_000).url
    httpx.post(f"{url}/api/kb", json={"name": "bikes"})
    files = [("files", ("pets.md", PETS)), ("files", ("big.txt", b"x " * 800)),
             ("files", ("../../../tmp/evil.md", PETS)), ("files", ("fares.html", HTML))]
    answer = httpx.post(f"{url}/api/kb/bikes/documents", files=files)

    assert answer.status_code == 200
    body = answer.json()
    assert [(r["file"], r["ok"]) for r in body["results"]] == [
        ("pets.md", True), ("big.txt", False), ("../../../tmp/evil.md", False), ("fares.html", True)]
    assert body["added"] == 2 and body["refused"] == 2 and body["fingerprint"] == bases.fingerprint("bikes")
    listed = httpx.get(f"{url}/api/kb/bikes/documents").json()["documents"]
    assert [d["document"] for d in listed] == ["fares.html", "pets.md"]
    assert httpx.post(f"{url}/api/kb/sample/documents", files=files[:1]).status_code == 409
    assert httpx.post(f"{url}/api/kb/nope/documents", files=files[:1]).status_code == 404
    assert httpx.post(f"{url}/api/kb/bikes/documents", data={"x": "y"}).status_code == 422
    too_big = httpx.post(f"{url}/api/kb/bikes/documents", files=[("files", ("huge.md", b"x" * 20_000))])
    assert too_big.status_code == 413 and "MAX_UPLOAD_MB" in too_big.json()["detail"]


def test_only_the_admin_uploads(serve_glassbox, bases: KnowledgeBases) -> None:  # noqa: F811
    running = serve_with(serve_glassbox, bases, auth_mode="public", admin_token="a" * 32)
    url = running.url
    bases.create("bikes")
    refused = httpx.post(f"{url}/api/kb/bikes/documents", files=[("files", ("pets.md", PETS))])
    assert refused.status_code == 403 and bases.get("bikes").count() == 0
    admitted = httpx.post(f"{url}/api/kb/bikes/documents", files=[("files", ("pets.md", PETS))],
                          headers={"Authorization": "Bearer " + "a" * 32})
    assert admitted.status_code == 200 and bases.get("bikes").count() == 1


@pytest.mark.parametrize("name", ["x", "pets.md"])
def test_nothing_is_written_outside_the_state_dir(bases: KnowledgeBases, tmp_path: Path, name: str) -> None:  # noqa: F811
    bases.create("bikes")
    before = {p for p in tmp_path.parent.iterdir()}
    add_uploads(bases.get("bikes"), [upload(f"../{name}", PETS), upload(f"../../{name}", PETS)], 10_000)
    assert {p for p in tmp_path.parent.iterdir()} == before
    assert not (tmp_path / name).exists() and not (tmp_path / "state" / name).exists()


# One writer


def test_the_cli_refuses_while_the_app_serves_and_nothing_is_lost(serve_glassbox, tmp_path: Path) -> None:
    """Chroma's embedded store is not safe for two processes: the CLI says who holds it and the way in."""
    import os
    import subprocess
    import sys

    from rag.lock import StoreBusy, StoreLock
    from rag.opening import open_knowledge_bases
    from tests.test_rag import BagOfWordsEmbeddings

    state = tmp_path / "state"  # the served app's APP_STATE_DIR
    running = serve_glassbox()
    held = open_knowledge_bases(state, BagOfWordsEmbeddings(), holder="Glassbox (python app.py)", url=running.url)
    attach(running, held)
    url = running.url
    httpx.post(f"{url}/api/kb", json={"name": "bikes"})
    httpx.post(f"{url}/api/kb/bikes/documents", files=[("files", ("pets.md", PETS))])
    before = httpx.get(f"{url}/api/kb/bikes/documents").json()

    (tmp_path / "new.md").write_bytes(b"# New\n\nThis must not go in behind the app's back.\n")
    env = {**os.environ, "APP_STATE_DIR": str(state), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    for args in (["--kb", "bikes", str(tmp_path / "new.md")], ["--list"], ["--kb", "bikes", "--remove", "pets.md"]):
        cli = subprocess.run([sys.executable, "-m", "rag.ingest", *args], env=env, capture_output=True, text=True,
                             timeout=120, cwd=Path(__file__).resolve().parent.parent)
        assert cli.returncode == 3, cli.stderr
        assert "Glassbox (python app.py)" in cli.stderr and "one writer" in cli.stderr
        assert f"curl -F files=@FILE {url}/api/kb/bikes/documents" in cli.stderr or args == ["--list"]
        assert "Traceback" not in cli.stderr

    assert httpx.get(f"{url}/api/kb/bikes/documents").json() == before  # nothing lost, nothing added
    again = httpx.post(f"{url}/api/kb/bikes/documents", files=[("files", ("fares.html", HTML))])
    assert again.json()["added"] == 1 and held.get("bikes").search("day pass", 1)[0].source == "fares.html"
    with pytest.raises(StoreBusy, match="one writer"):
        StoreLock.acquire(state, "a second app")
    held.close()  # what the app does as it stops
    StoreLock.acquire(state, "python -m rag.ingest").release()


def test_with_a_chroma_server_the_cli_and_the_app_write_at_once(chroma_server, tmp_path: Path, monkeypatch) -> None:
    """A Chroma server (CHROMA_URL) is its own one writer: the CLI ingests while the app holds its state dir."""
    from rag.ingest import main
    from rag.lock import StoreBusy
    from rag.opening import open_knowledge_bases
    from tests.conftest import emptied
    from tests.test_rag import BagOfWordsEmbeddings

    url = emptied(chroma_server)
    state = tmp_path / "state"
    app = open_knowledge_bases(state, BagOfWordsEmbeddings(), holder="Glassbox (python app.py)",
                               url="http://127.0.0.1:7860", chroma_url=url)
    app.create("bikes", Manifest(assistant_name="Loop's helper"))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "pets.md").write_bytes(PETS)
    (tmp_path / "docs" / "eval.jsonl").write_text('{"question": "Dogs in the basket?", "expected": "no"}\n')
    monkeypatch.setenv("APP_STATE_DIR", str(state))
    monkeypatch.setenv("CHROMA_URL", url)
    assert main(["--kb", "bikes", str(tmp_path / "docs")], embedding_function=BagOfWordsEmbeddings()) == 0
    assert [d["document"] for d in app.get("bikes").documents()] == ["pets.md"]  # the app sees it at once
    assert app.eval_set("bikes").startswith('{"question"') and app.manifest("bikes").assistant_name == "Loop's helper"
    with pytest.raises(StoreBusy, match="one writer"):  # a second app on the same state dir: still refused
        open_knowledge_bases(state, BagOfWordsEmbeddings(), holder="another app", chroma_url=url)
    app.close()
