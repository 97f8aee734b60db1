"""Evaluation runs: sets read line by line, each question a run, verdicts and figures, two compared."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from auth.callers import LOCAL
from evals.results import compare_evals, percentile, summarize
from evals.sets import Question, SetRefused, passes, read_set
from evals.store import EvalStore
from tests.conftest import Reply
from tests.test_approvals import TICKET_CALL
from traces.store import TraceStore

BOTH_BACKENDS = True  # every test that starts the app runs on SQLite and on Postgres (tests/conftest.py)

REPO = Path(__file__).resolve().parent.parent
ROWS = [{"question": "How long can I return a faulty item?", "expected": ["45 days", "forty-five days"]},
        {"question": "How much is standard shipping?", "expected": "$4.99"},
        {"question": "Do you ship to Mexico?", "expected": ["no"]}]
THREE = "\n".join(json.dumps(row) for row in ROWS)


# Sets and verdicts


def test_a_set_reads_expected_as_a_string_or_a_list_and_ignores_other_keys() -> None:
    questions = read_set(THREE + "\n\n" + json.dumps({"question": "Q?", "expected": "x", "source": "a.md"}))
    assert [q.expected for q in questions] == [("45 days", "forty-five days"), ("$4.99",), ("no",), ("x",)]
    assert len(read_set((REPO / "data" / "kb" / "eval.jsonl").read_text())) == 16  # the sample's own set


@pytest.mark.parametrize(("text", "said"), [
    ("", "no questions"),
    ('{"question": "Q?", "expected": "x"}\nnot json', "Line 2 is not JSON"),
    ('["Q?", "x"]', "Line 1 is not a JSON object"),
    ('{"expected": "x"}', "Line 1 has no question"),
    ('{"question": "Q?"}', "Line 1 needs expected"),
    ('{"question": "Q?", "expected": []}', "Line 1 needs expected"),
    ('{"question": "Q?", "expected": [3]}', "Line 1 needs expected"),
    ("\n".join(['{"question": "Q?", "expected": "x"}'] * 201), "over 200 questions"),
])
def test_a_bad_set_is_refused_naming_the_line(text: str, said: str) -> None:
    with pytest.raises(SetRefused, match=said):
        read_set(text)


def test_an_answer_passes_when_it_contains_an_expected_string_case_and_spacing_aside() -> None:
    assert passes("You can return it within  45\nDays.", ("45 days",))
    assert passes("Within forty-five days", ("45 days", "Forty-Five days"))
    assert not passes("Within 30 days.", ("45 days",))
    assert not passes("", ("45 days",))
    assert passes("It costs $4.99.", ("4.99",)) and passes("No.", ("no",))
    assert not passes("The knowledge base doesn't say.", ("no",)) and not passes("Within 450 days", ("45",))


def test_figures_are_over_the_questions_answered_so_far() -> None:
    items = [{"passed": True, "grounding": "grounded", "ttft_s": 0.1, "latency_s": 1.0},
             {"passed": False, "grounding": "unsupported", "ttft_s": 0.3, "latency_s": 3.0},
             {"passed": True, "grounding": "no_sources", "ttft_s": 0.2, "latency_s": 2.0},
             {"passed": None}]
    figures = summarize(items)
    assert (figures["total"], figures["done"], figures["passed"]) == (4, 3, 2)
    assert figures["accuracy"] == pytest.approx(2 / 3) and figures["grounding_rate"] == 0.5
    assert (figures["ttft_p50_s"], figures["ttft_p95_s"], figures["latency_p50_s"]) == (0.2, 0.3, 2.0)
    assert summarize([])["accuracy"] is None and percentile([], 0.5) is None
    assert percentile(list(range(1, 101)), 0.95) == 95


def test_two_evaluations_compare_question_by_question() -> None:
    a = {"id": "a", "config": {"rag_top_k": 3}, "items": [
        {"question": "Q1", "passed": False, "run_id": "r1"}, {"question": "Q2", "passed": True, "run_id": "r2"}]}
    b = {"id": "b", "config": {"rag_top_k": 5}, "items": [
        {"question": "Q2", "passed": False, "run_id": "r4"}, {"question": "Q1", "passed": True, "run_id": "r3"},
        {"question": "Q3", "passed": True, "run_id": "r5"}]}
    compared = compare_evals(a, b)
    assert [(q["question"], q["a"], q["b"]) for q in compared["questions"]] == [
        ("Q1", False, True), ("Q2", True, False), ("Q3", None, True)]
    assert (compared["fixed"], compared["broken"]) == (1, 1)
    assert [s["key"] for s in compared["settings"]] == ["rag_top_k"]
    accuracy = next(f for f in compared["figures"] if f["figure"] == "accuracy")
    assert (accuracy["a"], accuracy["b"]) == (0.5, pytest.approx(2 / 3))


def test_a_restart_marks_a_running_evaluation_interrupted_and_keeps_its_verdicts(tmp_path: Path) -> None:
    traces = TraceStore(tmp_path / "traces.sqlite3")
    store = EvalStore(traces)
    created = store.create(LOCAL, "before", "sample", "uploaded set", [Question("Q?", ("x",)), Question("R?", ("y",))],
                           None)
    store.record(created["id"], 0, None, True)
    traces.close()
    again = EvalStore(TraceStore(tmp_path / "traces.sqlite3"))
    evaluation = again.get(LOCAL, created["id"])
    assert again.interrupted == 1 and evaluation["status"] == "interrupted"
    assert [item["passed"] for item in evaluation["items"]] == [True, None]


# Through the API


def wait_until_finished(url: str, eval_id: str, client: httpx.Client | None = None) -> dict:
    get = (client or httpx).get
    for _ in range(300):
        evaluation = get(f"{url}/api/evals/{eval_id}").json()
        if evaluation["status"] != "running":
            return evaluation
        time.sleep(0.05)
    raise AssertionError("the evaluation did not finish")


def test_each_question_becomes_a_run_with_a_verdict_and_figures(serve_glassbox, scripted_model) -> None:
    scripted_model.replies = [Reply(tokens=["Within 45 days."]), Reply(tokens=["It costs $5.99."]),
                              Reply(tool_calls=[TICKET_CALL]), Reply(tokens=["No, we don't."])]
    url = serve_glassbox().url
    started = httpx.post(f"{url}/api/evals", json={"knowledge_base": "sample", "questions": ROWS, "name": "first"})
    assert started.status_code == 202 and started.json()["questions"] == 3
    evaluation = wait_until_finished(url, started.json()["id"])

    assert evaluation["status"] == "done" and evaluation["name"] == "first"
    assert [item["passed"] for item in evaluation["items"]] == [True, False, True]
    assert evaluation["summary"]["accuracy"] == pytest.approx(2 / 3) and evaluation["summary"]["ttft_p50_s"] > 0
    ticket_run = httpx.get(f"{url}/api/runs/{evaluation['items'][2]['run_id']}").json()  # declined, not waited on
    decided = next(e for e in ticket_run["events"] if e["type"] == "approval_decided")
    assert decided["approved"] is False and decided["by"] == "evaluation"
    assert httpx.get(f"{url}/api/threads").json()["threads"] == []  # not in the conversation list
    listed = httpx.get(f"{url}/api/evals").json()
    assert [(e["name"], e["done"], e["passed"]) for e in listed["evals"]] == [("first", 3, 2)] and listed["running"] is None

    scripted_model.replies = [Reply(tokens=["45 days."]), Reply(tokens=["$4.99."]), Reply(tokens=["Sorry, no."])]
    second = httpx.post(f"{url}/api/evals", json={"knowledge_base": "sample", "questions": ROWS}).json()["id"]
    wait_until_finished(url, second)
    compared = httpx.get(f"{url}/api/evals/compare", params={"a": evaluation["id"], "b": second}).json()
    assert (compared["fixed"], compared["broken"]) == (1, 0)

    # The same set answered by the team graph: each question a team run, and the graphs compared.
    scripted_model.replies = []
    team = httpx.post(f"{url}/api/evals", json={"knowledge_base": "sample", "questions": ROWS[:1],
                                                "agent_graph": "team"}).json()["id"]
    answered = wait_until_finished(url, team)
    assert answered["name"].endswith("(team graph)")
    team_run = httpx.get(f"{url}/api/runs/{answered['items'][0]['run_id']}").json()
    assert [e["agent"] for e in team_run["events"] if e["type"] == "agent_start"][0] == "coordinator"
    graphs = httpx.get(f"{url}/api/evals/compare", params={"a": second, "b": team}).json()["settings"]
    assert {"key": "agent_graph", "a": "support", "b": "team"} in graphs


def test_one_evaluation_runs_at_a_time_and_can_be_stopped(serve_glassbox, scripted_model) -> None:
    scripted_model.default = Reply(tokens=["slow ", "answer"], delay_s=0.5)
    url = serve_glassbox().url
    first = httpx.post(f"{url}/api/evals", json={"knowledge_base": "sample", "questions": ROWS}).json()["id"]
    busy = httpx.post(f"{url}/api/evals", json={"knowledge_base": "sample", "questions": ROWS})
    assert busy.status_code == 409 and "already running" in busy.json()["detail"]
    assert httpx.post(f"{url}/api/evals/{first}/stop").status_code == 200
    stopped = wait_until_finished(url, first)
    assert stopped["status"] == "stopped" and stopped["items"][-1]["passed"] is None
    assert httpx.post(f"{url}/api/evals/{first}/stop").status_code == 409


def test_bad_requests_get_our_words(serve_glassbox, scripted_model) -> None:
    url = serve_glassbox(max_message_chars=30).url
    cases = [({"knowledge_base": "sample", "questions": [{"question": " ", "expected": "x"}]}, 422, "question"),
             ({"knowledge_base": "sample", "questions": [{"question": "Q?", "expected": []}]}, 422, "expected"),
             ({"knowledge_base": "sample", "questions": []}, 422, "questions"),
             ({"knowledge_base": "sample"}, 404, "no evaluation set of its own"),
             ({"knowledge_base": "sample", "questions": ROWS}, 422, "Question 1: That message is"),
             ({"knowledge_base": "../x", "questions": ROWS}, 422, "knowledge_base")]
    for body, status, said in cases:
        answer = httpx.post(f"{url}/api/evals", json=body)
        assert (answer.status_code, said in answer.json()["detail"]) == (status, True), answer.text
    assert httpx.get(f"{url}/api/evals/{'0' * 32}").status_code == 404
    assert httpx.get(f"{url}/api/evals/compare", params={"a": "0" * 32, "b": "1" * 32}).status_code == 404
    assert httpx.get(f"{url}/api/evals").json()["evals"] == []


def test_evaluations_are_the_admins(serve_glassbox, scripted_model) -> None:
    url = serve_glassbox(auth_mode="public", admin_token="a" * 32).url
    admin = {"Authorization": "Bearer " + "a" * 32}
    refused = httpx.post(f"{url}/api/evals", json={"knowledge_base": "sample", "questions": ROWS})
    assert refused.status_code == 403
    started = httpx.post(f"{url}/api/evals", json={"knowledge_base": "sample", "questions": ROWS}, headers=admin).json()
    with httpx.Client(headers=admin) as client:
        wait_until_finished(url, started["id"], client)
    with httpx.Client() as visitor:
        assert visitor.get(f"{url}/api/evals/{started['id']}").status_code == 404
        assert visitor.get(f"{url}/api/evals").json()["evals"] == []


async def test_an_evaluation_stopped_before_it_began_reads_stopped(make_service, tmp_path: Path) -> None:
    import asyncio

    from evals.runner import EvalRunner

    store = EvalStore(TraceStore(tmp_path / "traces.sqlite3"))
    runner = EvalRunner(make_service(), store)
    eval_id = await runner.start(LOCAL, "sample", [Question("Q?", ("x",))], "uploaded set")
    assert runner.stop(eval_id)
    for _ in range(100):
        await asyncio.sleep(0.02)
        if store.get(LOCAL, eval_id)["status"] != "running":
            break
    assert store.get(LOCAL, eval_id)["status"] == "stopped" and runner.running is None


# A knowledge base's own set


def test_a_knowledge_base_takes_its_own_set_from_an_upload_or_a_folder(tmp_path: Path) -> None:
    from rag.bases import Manifest
    from rag.opening import adopt_eval_set, open_knowledge_bases
    from rag.uploads import Upload, upload_into
    from tests.test_rag import BagOfWordsEmbeddings

    bases = open_knowledge_bases(tmp_path / "state", BagOfWordsEmbeddings(), REPO / "data" / "kb" / "manifest.json")
    bases.open("sample")
    bases.create("bikes", Manifest())
    assert bases.eval_set("sample").startswith('{"question"') and bases.eval_set("bikes") is None

    def upload(text: str) -> dict:
        return upload_into(bases, "bikes", [Upload("eval.jsonl", len(text), lambda: text.encode())], 10_000)

    taken = upload(THREE)
    assert taken["results"][0]["ok"] and "3 questions" in taken["results"][0]["message"]
    assert bases.eval_set("bikes") == THREE and bases.describe("bikes")["eval_set"] is True
    refused = upload('{"question": "Q?"}')
    assert not refused["results"][0]["ok"] and "Line 1 needs expected" in refused["results"][0]["message"]
    assert bases.eval_set("bikes") == THREE  # kept as it was

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "eval.jsonl").write_text('{"question": "Dogs?", "expected": "no"}\n')
    assert "1 questions" in adopt_eval_set(bases, "bikes", folder)
    assert adopt_eval_set(bases, "bikes", tmp_path / "nowhere") is None


def test_an_evaluation_without_a_set_asks_the_knowledge_bases_own(serve_glassbox, tmp_path: Path) -> None:
    from rag.opening import open_knowledge_bases
    from tests.test_rag import BagOfWordsEmbeddings

    bases = open_knowledge_bases(tmp_path / "kb-state", BagOfWordsEmbeddings(), REPO / "data" / "kb" / "manifest.json")
    bases.open("sample")
    url = serve_glassbox(knowledge=bases).url
    started = httpx.post(f"{url}/api/evals", json={"knowledge_base": "sample"})
    assert started.status_code == 202 and started.json()["questions"] == 16
    evaluation = wait_until_finished(url, started.json()["id"])
    assert evaluation["set_name"] == "its own set" and evaluation["summary"]["done"] == 16
    assert httpx.post(f"{url}/api/evals", json={"knowledge_base": "nope"}).status_code == 404


def test_a_replica_starting_leaves_another_replicas_running_evaluation_alone(postgres_server) -> None:
    from tests.conftest import fresh_database

    url = fresh_database(postgres_server)
    one = EvalStore(TraceStore(url))
    created = one.create(LOCAL, "long", "sample", "uploaded set", [Question("Q?", ("x",))], None)
    two = EvalStore(TraceStore(url))  # another replica starts on the same database
    assert two.interrupted == 0 and two.get(LOCAL, created["id"])["status"] == "running"
    db = two.traces.connect()
    with db:  # its replica went quiet long ago
        db.execute("UPDATE evals SET updated_at = '2000-01-01T00:00:00.000+00:00' WHERE id = ?", (created["id"],))
    db.close()
    assert two.recover() == 1 and two.get(LOCAL, created["id"])["status"] == "interrupted"
    one.traces.close()
    two.traces.close()
