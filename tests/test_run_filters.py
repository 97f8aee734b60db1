"""GET /api/runs finds runs: by state, text, thread, model, knowledge base, speed and time, sorted and paged."""

from __future__ import annotations

import httpx

from tests.conftest import Reply

BOTH_BACKENDS = True  # every test that starts the app runs on SQLite and on Postgres (tests/conftest.py)

def test_runs_are_filtered_sorted_and_paged(serve_glassbox, scripted_model) -> None:
    scripted_model.replies = [Reply(tokens=["Within 45 days."]), Reply(tokens=["Gone"], fail_after=0),
                              Reply(tokens=["We ship to Canada."], delay_s=0.3)]
    url = serve_glassbox().url
    asked = [httpx.post(f"{url}/api/chat", json={"message": m}, timeout=30).json()
             for m in ("Returns of a 50% off_item?", "Will this fail?", "Do you ship to Canada?")]
    ids = [a["run_id"] for a in asked]

    def runs(**params) -> list[str]:
        answer = httpx.get(f"{url}/api/runs", params=params)
        assert answer.status_code == 200, answer.text
        return [run["id"] for run in answer.json()["runs"]]

    assert runs() == ids[::-1] and runs(order="oldest") == ids
    assert runs(status="failed") == [ids[1]] and runs(status="completed", order="oldest") == [ids[0], ids[2]]
    assert runs(q="canada") == [ids[2]]  # the message or the answer, either case
    assert runs(q="50% off_") == [ids[0]] and runs(q="%") == [ids[0]]  # % and _ are plain text
    assert runs(min_ttft_s=0.25) == [ids[2]] and runs(order="slowest_ttft")[0] == ids[2]
    assert runs(knowledge_base="sample") == ids[::-1] and runs(knowledge_base="bikes") == []
    assert runs(model="scripted") == ids[::-1] and runs(model="other") == []
    assert runs(since="2999-01-01") == [] and runs(until="2000-01-01T00:00:00Z") == []
    assert runs(thread_id=asked[0]["thread_id"]) == [ids[0]]

    first = httpx.get(f"{url}/api/runs", params={"limit": 2}).json()
    assert [r["id"] for r in first["runs"]] == ids[:0:-1] and first["next_offset"] == 2
    last = httpx.get(f"{url}/api/runs", params={"limit": 2, "offset": 2}).json()
    assert [r["id"] for r in last["runs"]] == [ids[0]] and last["next_offset"] is None

    unknown = httpx.get(f"{url}/api/runs", params={"status": "completed", "colour": "red"})
    assert unknown.status_code == 422 and "colour" in unknown.json()["detail"]
    assert httpx.get(f"{url}/api/runs", params={"status": "done"}).status_code == 422
