"""A run as OpenTelemetry traces: the OTLP JSON file-exporter format, one `TracesData` a line.

OTLP JSON: lowerCamelCase keys, hex trace and span ids, enum values as integers, 64-bit integers
as strings. Each span carries OpenInference attributes (Phoenix), OpenTelemetry GenAI ones, and
Langfuse's completion start time, so those backends and Jaeger or Tempo can all read the file.
Every Glassbox event travels verbatim as a span event (`glassbox.event`, its JSON), so another
Glassbox can rebuild the run exactly. Ids are derived: the same run always has the same trace id.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chat.config import VERSION
from chat.events import Event
from chat.spans import Span, SpanTracker, span_tree
from chat.tools import SEARCH_TOOL

if TYPE_CHECKING:
    from auth.callers import Caller
    from traces.store import TraceStore

SPAN_KIND_INTERNAL, SPAN_KIND_CLIENT = 1, 3
STATUS_OK, STATUS_ERROR = 1, 2
OPENINFERENCE_KIND = {"run": "AGENT", "node": "CHAIN", "tool": "TOOL", "model": "LLM"}


def trace_id_for(run_id: str) -> str:
    """The run's trace id: 32 hex digits, the same every time, so an import can recognise it."""
    return hashlib.sha256(f"glassbox/{run_id}".encode()).hexdigest()[:32]


def otlp_lines(store: TraceStore, caller: Caller, run_ids: list[str]) -> str:
    """The caller's runs as OTLP JSON lines, one `TracesData` a run, in the order given."""
    return "".join(json.dumps(run_to_otlp(store.run_events(caller, run_id)), ensure_ascii=False) + "\n"
                   for run_id in run_ids)


def run_to_otlp(events: list[Event]) -> dict[str, Any]:
    """Return one run (its events, in order) as an OTLP JSON `TracesData` object."""
    spans = span_tree(events)
    if not spans:
        return {"resourceSpans": []}
    trace_id = trace_id_for(events[0].run_id)
    tracker = SpanTracker(events[0].run_id)  # a run stored before spans: placed as span_tree places it
    by_span: dict[str, list[Event]] = {}
    for event in events:
        span_id = event.span_id if events[0].span_id else tracker.place(event)[0]
        by_span.setdefault(span_id, []).append(event)
    return {"resourceSpans": [{
        "resource": {"attributes": _attributes({"service.name": "glassbox", "service.version": VERSION})},
        "scopeSpans": [{"scope": {"name": "glassbox", "version": VERSION},
                        "spans": [_span(span, trace_id, by_span.get(span.span_id, []), events) for span in spans]}],
    }]}


def _span(span: Span, trace_id: str, own: list[Event], events: list[Event]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": trace_id, "spanId": span.span_id, "name": _name(span),
        "kind": SPAN_KIND_CLIENT if span.kind == "model" else SPAN_KIND_INTERNAL,
        "startTimeUnixNano": str(span.start_ns), "endTimeUnixNano": str(span.end_ns),
        "attributes": _attributes(_semantic(span, events)),
        "events": [{"timeUnixNano": str(_time_ns(event, events)), "name": event.type,
                    "attributes": _attributes({"glassbox.event": json.dumps(event.to_dict(), default=str,
                                                                            ensure_ascii=False)})}
                   for event in own],
        "status": {"code": STATUS_ERROR, "message": str(span.attributes.get("error") or span.status)}
        if span.status == "error" else {"code": STATUS_OK},
    }
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id
    return out


def _semantic(span: Span, events: list[Event]) -> dict[str, Any]:
    """The span's attributes in OpenInference's and OpenTelemetry GenAI's names."""
    a = span.attributes
    kind = "RETRIEVER" if span.kind == "tool" and a.get("tool") == SEARCH_TOOL else OPENINFERENCE_KIND[span.kind]
    thread = events[0].thread_id
    out: dict[str, Any] = {"openinference.span.kind": kind, "session.id": thread, "gen_ai.conversation.id": thread,
                           "glassbox.run_id": events[0].run_id, "glassbox.span.kind": span.kind}
    if span.kind == "run":
        out |= {"gen_ai.operation.name": "invoke_agent", "input.value": a.get("message"), "output.value": a.get("answer"),
                "glassbox.status": a.get("status"), "glassbox.grounding": a.get("grounding"),
                "glassbox.knowledge_base": a.get("knowledge_base"), "glassbox.ttft_s": a.get("ttft_s"),
                "llm.model_name": a.get("model")}
    elif span.kind == "tool":
        out |= {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": a.get("tool"),
                "gen_ai.tool.call.id": a.get("call_id"), "input.value": _json(a.get("input")),
                "output.value": a.get("output")}
        for n, hit in enumerate(a.get("hits") or []):
            out |= {f"retrieval.documents.{n}.document.id": hit["chunk_id"],
                    f"retrieval.documents.{n}.document.content": hit["text"],
                    f"retrieval.documents.{n}.document.score": hit["score"],
                    f"retrieval.documents.{n}.document.metadata": _json({"source": hit["source"]})}
    elif span.kind == "model":
        first = min(a.get("token_ns") or [0]) or None
        inputs, outputs = a.get("input_tokens"), a.get("output_tokens", a.get("tokens"))
        out |= {"gen_ai.operation.name": "chat", "gen_ai.request.model": a.get("model"), "llm.model_name": a.get("model"),
                "gen_ai.provider.name": a.get("provider"), "llm.provider": a.get("provider"),
                "input.value": _json(a.get("messages")), "output.value": a.get("text"),
                "llm.token_count.prompt": inputs, "llm.token_count.completion": outputs,
                "llm.token_count.total": (inputs or 0) + (outputs or 0) if inputs is not None else None,
                "gen_ai.usage.input_tokens": inputs, "gen_ai.usage.output_tokens": outputs,
                "gen_ai.response.finish_reasons": [a["finish_reason"]] if a.get("finish_reason") else None,
                "gen_ai.response.time_to_first_chunk": a.get("first_chunk_s"),
                "llm.invocation_parameters": _json(a.get("parameters")),
                "langfuse.observation.completion_start_time":
                    datetime.fromtimestamp(first / 1e9, UTC).isoformat() if first else None}
    return out


def _attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": _value(value)} for key, value in values.items() if value is not None]


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_value(item) for item in value]}}
    return {"stringValue": str(value)}


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, ensure_ascii=False)


def _name(span: Span) -> str:
    return {"run": "glassbox.run", "node": f"node {span.name}", "tool": f"execute_tool {span.name}",
            "model": f"chat {span.name}"}[span.kind]


def _time_ns(event: Event, events: list[Event]) -> int:
    if event.ts:
        return event.ts
    base = next((e.ts - int(e.at * 1e9) for e in events if e.ts), 0)
    return base + int(event.at * 1e9)

