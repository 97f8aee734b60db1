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
