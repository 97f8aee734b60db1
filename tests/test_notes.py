"""Reviewer notes: on a run, a span or an event; listed, filtered, exported and imported with the run."""

from __future__ import annotations

import json

import httpx

from tests.conftest import Reply

BOTH_BACKENDS = True  # every test that starts the app runs on SQLite and on Postgres (tests/conftest.py)

def test_notes_are_added_listed_filtered_and_travel_with_the_run(serve_glassbox, scripted_model, tmp_path) -> None:
    from app import build_app, build_glassbox
    from bench.serving import BackgroundServer
    from chat.config import Settings

    scripted_model.replies = [Reply(tokens=["Within 45 days."]), Reply(tokens=["Yes."])]
    url = serve_glassbox().url
    good, bad = (httpx.post(f"{url}/api/chat", json={"message": m}, timeout=30).json()["run_id"]
                 for m in ("How long can I return a faulty item?", "Do you ship to Mexico?"))
    span = httpx.get(f"{url}/api/runs/{bad}/spans").json()["spans"][1]["span_id"]

    added = httpx.post(f"{url}/api/runs/{bad}/notes", json={"reviewer": "Ada", "label": "fail", "text": "Mexico: no.",
                                                           "span_id": span})
    assert added.status_code == 200 and added.json()["label"] == "fail" and added.json()["span_id"] == span
    httpx.post(f"{url}/api/runs/{bad}/notes", json={"reviewer": "Ada", "label": "flag", "event_seq": 3})
    httpx.post(f"{url}/api/runs/{good}/notes", json={"reviewer": "Bo", "label": "pass"})
    notes = httpx.get(f"{url}/api/runs/{bad}/notes").json()["notes"]
    assert [(n["reviewer"], n["label"], n["event_seq"]) for n in notes] == [("Ada", "fail", None), ("Ada", "flag", 3)]

    runs = {r["id"]: r for r in httpx.get(f"{url}/api/runs").json()["runs"]}
    assert runs[bad]["notes"] == 2 and runs[good]["notes"] == 1
    assert [r["id"] for r in httpx.get(f"{url}/api/runs", params={"note": "fail"}).json()["runs"]] == [bad]
    assert len(httpx.get(f"{url}/api/runs", params={"note": "any"}).json()["runs"]) == 2

    for body in ({"reviewer": "", "label": "fail"}, {"reviewer": "A", "label": "meh"},
                 {"reviewer": "A", "label": "pass", "span_id": "../x"}):
        assert httpx.post(f"{url}/api/runs/{bad}/notes", json=body).status_code == 422
    assert httpx.post(f"{url}/api/runs/{'0' * 32}/notes", json={"reviewer": "A", "label": "pass"}).status_code == 404
    assert httpx.get(f"{url}/api/runs/{'0' * 32}/notes").status_code == 404

    exported = httpx.get(f"{url}/api/runs/{bad}/export").text
    carried = [json.loads(a["value"]["stringValue"]) for r in json.loads(exported)["resourceSpans"]
               for sc in r["scopeSpans"] for s in sc["spans"] for e in s["events"] for a in e["attributes"]
               if a["key"] == "glassbox.note"]
    assert sorted(n["label"] for n in carried) == ["fail", "flag"]
    fresh = build_glassbox(Settings(state_dir=tmp_path / "elsewhere"), lambda _s: None)
    with BackgroundServer(build_app(fresh)) as other:
        httpx.post(f"{other.url}/api/import", content=exported)
        again = httpx.get(f"{other.url}/api/runs/{bad}/notes").json()["notes"]
        assert [(n["reviewer"], n["label"], n["text"], n["span_id"]) for n in again] == \
            [(n["reviewer"], n["label"], n["text"], n["span_id"]) for n in notes]


def test_only_who_may_see_a_run_notes_it(serve_glassbox, scripted_model) -> None:
    url = serve_glassbox(auth_mode="public", admin_token="a" * 32).url
    with httpx.Client() as mine, httpx.Client() as theirs:
        run = mine.post(f"{url}/api/chat", json={"message": "Mine?"}, timeout=30).json()["run_id"]
        assert theirs.post(f"{url}/api/runs/{run}/notes", json={"reviewer": "X", "label": "fail"}).status_code == 404
        assert mine.post(f"{url}/api/runs/{run}/notes", json={"reviewer": "Me", "label": "pass"}).status_code == 200
        assert theirs.get(f"{url}/api/runs/{run}/notes").status_code == 404


def test_a_lone_surrogate_is_refused_in_our_words(serve_glassbox, scripted_model) -> None:
    url = serve_glassbox().url
    run = httpx.post(f"{url}/api/chat", json={"message": "Hi?"}, timeout=30).json()["run_id"]
    refused = httpx.post(f"{url}/api/runs/{run}/notes", content=b'{"reviewer": "a\\ud800", "label": "flag"}',
                         headers={"content-type": "application/json"})
    assert refused.status_code == 422 and "lone surrogate" in refused.json()["detail"]
    assert "unicode string" not in refused.json()["detail"]  # not pydantic's words
