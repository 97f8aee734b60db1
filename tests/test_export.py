"""Export: a run as OTLP JSON lines that OpenTelemetry's own parser reads, and that keep every event."""

from __future__ import annotations

import base64
import dataclasses
import json

import httpx
from google.protobuf import json_format
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from chat.events import event_from_dict
from tests.conftest import Reply
from tests.test_spans import ticket_run
from traces.otlp import run_to_otlp, trace_id_for

BOTH_BACKENDS = True  # every test that starts the app runs on SQLite and on Postgres (tests/conftest.py)

def parse(line: str) -> TracesData:
    """Parse one OTLP JSON line with protobuf's parser (OTLP JSON writes ids in hex, protobuf in base64)."""
    data = json.loads(line)
    for resource in data["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return json_format.Parse(json.dumps(data), TracesData())


def spans_of(data: dict) -> list[dict]:
    return [s for r in data["resourceSpans"] for sc in r["scopeSpans"] for s in sc["spans"]]


def attributes(span: dict) -> dict:
    return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}


async def test_a_run_exports_as_otlp_that_keeps_every_event(make_service, scripted_model) -> None:
    events = await ticket_run(make_service, scripted_model)
    line = json.dumps(run_to_otlp(events))

    parsed = parse(line)  # OpenTelemetry's own message type reads it
    proto_spans = parsed.resource_spans[0].scope_spans[0].spans
    spans = spans_of(json.loads(line))
    assert len(proto_spans) == len(spans) >= 8
    assert {s["traceId"] for s in spans} == {trace_id_for(events[0].run_id)} and len(spans[0]["traceId"]) == 32
    ids = {s["spanId"] for s in spans}
    assert "parentSpanId" not in spans[0] and all(s["parentSpanId"] in ids for s in spans[1:])
    assert all(int(s["startTimeUnixNano"]) <= int(s["endTimeUnixNano"]) for s in spans)
    assert all(isinstance(s["kind"], int) and isinstance(s["startTimeUnixNano"], str) for s in spans)

    carried = [event_from_dict(json.loads(a["value"]["stringValue"]))
               for s in spans for e in s["events"] for a in e["attributes"] if a["key"] == "glassbox.event"]
    assert sorted(carried, key=lambda e: e.seq) == events  # lossless: every event, verbatim

    kinds = {attributes(s)["openinference.span.kind"] for s in spans}
    assert kinds == {"AGENT", "CHAIN", "RETRIEVER", "TOOL", "LLM"}
    root = attributes(spans[0])
    assert root["input.value"] == "I want a human" and root["session.id"] == events[0].thread_id
    retriever = next(attributes(s) for s in spans if attributes(s)["openinference.span.kind"] == "RETRIEVER")
    assert retriever["retrieval.documents.0.document.id"] == "c1" and retriever["retrieval.documents.0.document.score"] == 0.9
    answering = [attributes(s) for s in spans if attributes(s)["openinference.span.kind"] == "LLM"][-1]
    assert answering["output.value"] == "Ticket opened." and answering["gen_ai.usage.output_tokens"]
    assert answering["langfuse.observation.completion_start_time"].endswith("+00:00")
    assert "glassbox.model.opened_with" not in answering  # set only when the local model's rule opened it
    tool = next(attributes(s) for s in spans if attributes(s).get("gen_ai.tool.name") == "create_support_ticket")
    assert tool["gen_ai.operation.name"] == "execute_tool" and tool["gen_ai.tool.call.id"]


async def test_a_run_stored_before_spans_exports_with_the_same_tree(make_service, scripted_model) -> None:
    events = await ticket_run(make_service, scripted_model)
    legacy = [dataclasses.replace(e, seq=0, ts=0, span_id="", parent_span_id="") for e in events]
    new, old = spans_of(run_to_otlp(events)), spans_of(run_to_otlp(legacy))
    assert [(s["spanId"], s.get("parentSpanId"), len(s["events"])) for s in old] == \
        [(s["spanId"], s.get("parentSpanId"), len(s["events"])) for s in new]
    parse(json.dumps(run_to_otlp(legacy)))


def test_runs_and_threads_export_over_http(serve_glassbox, scripted_model) -> None:
    scripted_model.replies = [Reply(tokens=["Within 45 days."]), Reply(tokens=["Yes."])]
    url = serve_glassbox().url
    first = httpx.post(f"{url}/api/chat", json={"message": "How long can I return a faulty item?"}, timeout=30).json()
    second = httpx.post(f"{url}/api/chat", json={"message": "And opened ones?", "thread_id": first["thread_id"]},
                        timeout=30).json()

    one = httpx.get(f"{url}/api/runs/{first['run_id']}/export")
    assert one.status_code == 200 and one.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in one.headers["content-disposition"] and one.text.count("\n") == 1
    parse(one.text.strip())
    thread = httpx.get(f"{url}/api/threads/{first['thread_id']}/export").text.strip().split("\n")
    traces = [spans_of(json.loads(line))[0]["traceId"] for line in thread]
    assert traces == [trace_id_for(first["run_id"]), trace_id_for(second["run_id"])]  # oldest first
    assert httpx.get(f"{url}/api/runs/{'0' * 32}/export").status_code == 404
    assert httpx.get(f"{url}/api/threads/{'0' * 32}/export").status_code == 404


# Import


def test_an_export_imports_into_a_fresh_glassbox_once_and_the_same(serve_glassbox, scripted_model, tmp_path) -> None:
    from app import build_app, build_glassbox
    from bench.serving import BackgroundServer
    from chat.config import Settings

    scripted_model.replies = [Reply(tokens=["Within ", "45 days."])]
    origin = serve_glassbox()
    asked = httpx.post(f"{origin.url}/api/chat", json={"message": "How long can I return a faulty item?"},
                       timeout=30).json()
    exported = httpx.get(f"{origin.url}/api/threads/{asked['thread_id']}/export").content
    before = httpx.get(f"{origin.url}/api/runs/{asked['run_id']}").json()

    fresh = build_glassbox(Settings(state_dir=tmp_path / "elsewhere"), lambda _s: None)  # never warmed: no model needed
    with BackgroundServer(build_app(fresh)) as other:
        first = httpx.post(f"{other.url}/api/import", content=exported,
                           headers={"content-type": "application/x-ndjson"})
        assert first.status_code == 200 and first.json() == {"imported": [asked["run_id"]], "already_there": []}
        again = httpx.post(f"{other.url}/api/import", content=exported).json()
        assert again == {"imported": [], "already_there": [asked["run_id"]]}  # twice: one copy

        after = httpx.get(f"{other.url}/api/runs/{asked['run_id']}").json()
        assert after["events"] == before["events"]  # every event, as it was
        assert {k: after[k] for k in ("answer", "ttft_s", "latency_s", "status", "ttft_breakdown")} == \
            {k: before[k] for k in ("answer", "ttft_s", "latency_s", "status", "ttft_breakdown")}
        from datetime import datetime

        gap = datetime.fromisoformat(after["created_at"]) - datetime.fromisoformat(before["created_at"])
        assert abs(gap.total_seconds()) < 1  # when it happened, not when it was imported
        assert after["origin"].startswith("imported") and before["origin"] is None
        listed = httpx.get(f"{other.url}/api/runs").json()["runs"]
        assert [r["id"] for r in listed] == [asked["run_id"]]

        replayed = replay(other.url, asked["run_id"], "instant")  # on the second Glassbox, no model at all
        assert [{k: v for k, v in e.items() if k != "replay"} for e in replayed[:-1]] == before["events"]
        assert replayed[-1]["type"] == "done" and replayed[-1]["answer"] == before["answer"]
        assert all(e["replay"] is True for e in replayed)


def test_a_bad_file_is_refused_by_line_and_nothing_is_written(serve_glassbox, scripted_model) -> None:
    running = serve_glassbox()
    url = running.url
    asked = httpx.post(f"{url}/api/chat", json={"message": "Hi?"}, timeout=30).json()
    good = httpx.get(f"{url}/api/runs/{asked['run_id']}/export").text
    count = len(httpx.get(f"{url}/api/runs").json()["runs"])
    foreign = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8,
                                                                         "name": "GET /", "events": []}]}]}]})
    other_run = good.replace(asked["run_id"], "f" * 32)
    for body, says in ((other_run + "not json\n", "Line 2 is not JSON"), ("[1, 2]\n", "Line 1 is not an OTLP"),
                       (foreign + "\n", "no Glassbox events"), ("\n\n", "no runs"),
                       ("\xff".encode("latin-1"), "not UTF-8")):
        refused = httpx.post(f"{url}/api/import", content=body)
        assert refused.status_code == 422 and says in refused.json()["detail"], refused.text
        assert "Nothing was imported" in refused.json()["detail"] or says == "not UTF-8"
    assert len(httpx.get(f"{url}/api/runs").json()["runs"]) == count  # the good line before the bad one: not written
    assert httpx.get(f"{url}/api/runs/{'f' * 32}").status_code == 404
    huge = httpx.post(f"{url}/api/import", content=b"x" * (running.glassbox.settings.max_upload_bytes + 10))
    assert huge.status_code == 413


def test_only_the_admin_imports_and_visitors_export_only_their_own(serve_glassbox, scripted_model) -> None:
    url = serve_glassbox(auth_mode="public", admin_token="a" * 32).url
    with httpx.Client() as mine, httpx.Client() as theirs:
        asked = mine.post(f"{url}/api/chat", json={"message": "Mine?"}, timeout=30).json()
        exported = mine.get(f"{url}/api/runs/{asked['run_id']}/export")
        assert exported.status_code == 200
        assert theirs.get(f"{url}/api/runs/{asked['run_id']}/export").status_code == 404
        assert mine.post(f"{url}/api/import", content=exported.content).status_code == 403


def replay(url: str, run_id: str, speed: str) -> list[dict]:
    with httpx.stream("POST", f"{url}/api/runs/{run_id}/replay", params={"speed": speed}, timeout=60) as response:
        assert response.status_code == 200, response.read()
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


def test_a_replay_plays_the_run_again_and_changes_nothing(serve_glassbox, scripted_model) -> None:
    scripted_model.replies = [Reply(tokens=["Within ", "45 ", "days."], delay_s=0.02)]
    url = serve_glassbox().url
    asked = httpx.post(f"{url}/api/chat", json={"message": "How long can I return a faulty item?"}, timeout=30).json()
    before = httpx.get(f"{url}/api/runs/{asked['run_id']}").json()
    requests = [line for line in httpx.get(f"{url}/metrics").text.splitlines() if line.startswith("agent_requests_total")]

    for speed in ("5", "1"):
        replayed = replay(url, asked["run_id"], speed)
        assert [e["seq"] for e in replayed[:-1]] == list(range(len(before["events"])))
        assert [e["type"] for e in replayed][-2:] == ["run_end", "done"]

    assert httpx.get(f"{url}/api/runs/{asked['run_id']}").json() == before  # the original is never modified
    assert len(httpx.get(f"{url}/api/runs").json()["runs"]) == 1  # no new run
    assert [line for line in httpx.get(f"{url}/metrics").text.splitlines()
            if line.startswith("agent_requests_total")] == requests  # not counted as a request
    assert httpx.post(f"{url}/api/runs/{asked['run_id']}/replay", params={"speed": "2"}).status_code == 422
    assert httpx.post(f"{url}/api/runs/{'0' * 32}/replay").status_code == 404
