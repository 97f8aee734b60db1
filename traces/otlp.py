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
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chat.config import ID_PATTERN, VERSION
from chat.events import Event, event_from_dict
from chat.spans import Span, span_tree
from chat.text import clean_value
from chat.tools import SEARCH_TOOL

if TYPE_CHECKING:
    from auth.callers import Caller
    from traces.store import TraceStore

SPAN_KIND_INTERNAL, SPAN_KIND_CLIENT = 1, 3
STATUS_OK, STATUS_ERROR = 1, 2
OPENINFERENCE_KIND = {"run": "AGENT", "agent": "AGENT", "node": "CHAIN", "tool": "TOOL", "model": "LLM"}


def trace_id_for(run_id: str) -> str:
    """The run's trace id: 32 hex digits, the same every time, so an import can recognise it."""
    return hashlib.sha256(f"glassbox/{run_id}".encode()).hexdigest()[:32]


def otlp_lines(store: TraceStore, caller: Caller, run_ids: list[str]) -> str:
    """The caller's runs as OTLP JSON lines, one `TracesData` a run, in the order given."""
    return "".join(json.dumps(run_to_otlp(store.run_events(caller, run_id), store.notes(caller, run_id) or []),
                              ensure_ascii=False) + "\n" for run_id in run_ids)


def run_to_otlp(events: list[Event], notes: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """Return one run (its events, in order, and its reviewer notes) as an OTLP JSON `TracesData` object."""
    spans = span_tree(events)
    if not spans:
        return {"resourceSpans": []}
    trace_id = trace_id_for(events[0].run_id)
    ids = {span.span_id for span in spans}
    by_note: dict[str, list[dict[str, Any]]] = {}
    for note in notes:  # on its span, else on the run
        by_note.setdefault(note.get("span_id") if note.get("span_id") in ids else spans[0].span_id, []).append(note)
    return {"resourceSpans": [{
        "resource": {"attributes": _attributes({"service.name": "glassbox", "service.version": VERSION})},
        "scopeSpans": [{"scope": {"name": "glassbox", "version": VERSION},
                        "spans": [_span(span, trace_id, events, by_note.get(span.span_id, [])) for span in spans]}],
    }]}


def _span(span: Span, trace_id: str, events: list[Event], notes: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": trace_id, "spanId": span.span_id, "name": span_name(span),
        "kind": SPAN_KIND_CLIENT if span.kind == "model" else SPAN_KIND_INTERNAL,
        "startTimeUnixNano": str(span.start_ns), "endTimeUnixNano": str(span.end_ns),
        "attributes": _attributes(span_attributes(span, events)),
        "events": [{"timeUnixNano": str(at_ns), "name": event.type,
                    "attributes": _attributes({"glassbox.event": event_json(event)})}
                   for at_ns, event in span.events] + [
            {"timeUnixNano": str(_note_ns(note, span)), "name": "note",
             "attributes": _attributes({"glassbox.note": json.dumps(note, ensure_ascii=False)})} for note in notes],
        "status": {"code": STATUS_ERROR, "message": error} if (error := span_error(span)) is not None
        else {"code": STATUS_OK},
    }
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id
    return out


def span_attributes(span: Span, events: list[Event]) -> dict[str, Any]:
    """Return the span's attributes as every exporter sends them (the file and live OTLP), unset ones left out."""
    return {key: value for key, value in _semantic(span, events).items() if value is not None}


def span_error(span: Span) -> str | None:
    """Return the status message of a span that failed; None if it did not (a cancelled span is not an error)."""
    return str(span.attributes.get("error") or span.status) if span.status == "error" else None


def event_json(event: Event) -> str:
    """Return an event as it travels inside a span event (`glassbox.event`), for an import to read back."""
    return json.dumps(event.to_dict(), default=str, ensure_ascii=False)


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
    elif span.kind == "agent":  # a team agent (chat/team.py)
        out |= {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": a.get("agent"),
                "glassbox.agent.role": a.get("role"), "glassbox.status": a.get("status")}
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
        first = min(span.token_times(), default=None)
        inputs, outputs = a.get("input_tokens"), a.get("output_tokens", a.get("tokens"))
        out |= {"gen_ai.operation.name": "chat", "gen_ai.request.model": a.get("model"), "llm.model_name": a.get("model"),
                "gen_ai.provider.name": a.get("provider"), "llm.provider": a.get("provider"),
                "input.value": _json(a.get("messages")), "output.value": a.get("text"),
                "llm.token_count.prompt": inputs, "llm.token_count.completion": outputs,
                "llm.token_count.total": (inputs or 0) + (outputs or 0) if inputs is not None else None,
                "gen_ai.usage.input_tokens": inputs, "gen_ai.usage.output_tokens": outputs,
                "gen_ai.response.finish_reasons": [a["finish_reason"]] if a.get("finish_reason") else None,
                "gen_ai.response.time_to_first_chunk": a.get("first_chunk_s"),
                "glassbox.model.opened_with": a.get("opened_with"),  # only when set (chat/openings.py)
                "llm.invocation_parameters": _json(a.get("parameters")),
                "langfuse.observation.completion_start_time":
                    datetime.fromtimestamp(first / 1e9, UTC).isoformat() if first else None}
    return out


def _note_ns(note: dict[str, Any], span: Span) -> int:
    try:
        return int(datetime.fromisoformat(note["created_at"]).timestamp() * 1e9)
    except (KeyError, TypeError, ValueError):
        return span.end_ns


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


def span_name(span: Span) -> str:
    """Return the span's OpenTelemetry name: GenAI's `{operation} {name}` for tools and model calls."""
    return {"run": "glassbox.run", "agent": f"invoke_agent {span.name}", "node": f"node {span.name}",
            "tool": f"execute_tool {span.name}", "model": f"chat {span.name}"}[span.kind]



def import_origin() -> str:
    """What an imported run records as its origin: when it came in."""
    return f"imported {datetime.now(UTC).isoformat(timespec='seconds')}"


class ImportRefused(ValueError):
    """A file that can't be imported; the message names the line and why, in our words."""


ID = re.compile(ID_PATTERN)
MAX_EVENTS_PER_RUN = 200_000


@dataclass(frozen=True)
class ImportedRun:
    """One run read back from a file: its events, in order, and its reviewer notes."""

    events: list[Event]
    notes: list[dict[str, Any]]


def runs_from_otlp(text: str) -> list[ImportedRun]:
    """Read an exported file back into runs; refuse the whole file, naming the first bad line,
    if any line is not a whole Glassbox run."""
    runs: dict[str, ImportedRun] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        run = _line_run(number, line)
        run_id = run.events[0].run_id
        if run_id in runs:
            raise ImportRefused(f"Line {number}: run {run_id[:40]} appears twice in the file.")
        runs[run_id] = run
    if not runs:
        raise ImportRefused("The file has no runs in it.")
    return list(runs.values())


def _line_run(number: int, line: str) -> ImportedRun:
    where = f"Line {number}"
    try:
        data = json.loads(line)
    except ValueError:
        raise ImportRefused(f"{where} is not JSON; a Glassbox export has one OTLP JSON object a line.") from None
    if not isinstance(data, dict) or not isinstance(data.get("resourceSpans"), list):
        raise ImportRefused(f"{where} is not an OTLP TracesData object (it has no resourceSpans).")
    carried: list[Any] = []
    notes: list[Any] = []
    try:
        for resource in data["resourceSpans"]:
            for scope in resource.get("scopeSpans") or []:
                for span in scope.get("spans") or []:
                    for event in span.get("events") or []:
                        for attribute in event.get("attributes") or []:
                            if attribute.get("key") == "glassbox.event":
                                carried.append(attribute["value"]["stringValue"])
                            elif attribute.get("key") == "glassbox.note":
                                notes.append(attribute["value"]["stringValue"])
    except (AttributeError, KeyError, TypeError):
        raise ImportRefused(f"{where} is not shaped as OTLP JSON spans.") from None
    if not carried:
        raise ImportRefused(f"{where} has no Glassbox events: it comes from another tool. Glassbox imports the "
                            "files it exports (GET /api/runs/{{id}}/export).")
    if len(carried) > MAX_EVENTS_PER_RUN:
        raise ImportRefused(f"{where} has over {MAX_EVENTS_PER_RUN:,} events; that is not a run Glassbox wrote.")
    try:
        events = sorted((event_from_dict(json.loads(text)) for text in carried), key=lambda e: e.seq)
    except Exception:  # any malformed event: the file was edited or damaged
        raise ImportRefused(f"{where} has an event Glassbox can't read (edited or damaged).") from None
    first, last = events[0], events[-1]
    if not (ID.match(first.run_id) and ID.match(first.thread_id)):
        raise ImportRefused(f"{where}: its run or thread id is not one Glassbox writes.")
    if any(e.run_id != first.run_id or e.thread_id != first.thread_id for e in events):
        raise ImportRefused(f"{where} mixes the events of several runs; export writes one run a line.")
    if first.type != "run_queued" or last.type != "run_end":
        raise ImportRefused(f"{where} is not a whole run (it must open with run_queued and end with run_end).")
    read = [_note(where, text) for text in notes]
    return ImportedRun([_clean(event) for event in events], [note for _, note in sorted(read, key=lambda n: n[0])])


def _note(where: str, text: Any) -> tuple[tuple[str, int], dict[str, Any]]:
    """A carried note, checked, with the key that puts notes back in the order they were written."""
    try:
        note = json.loads(text)
        label, reviewer = note["label"], note["reviewer"]
    except (TypeError, ValueError, KeyError):
        raise ImportRefused(f"{where} has a reviewer note Glassbox can't read (edited or damaged).") from None
    if label not in ("pass", "fail", "flag") or not isinstance(reviewer, str):
        raise ImportRefused(f"{where} has a reviewer note with an unknown label.")
    span = note.get("span_id")
    seq = note.get("event_seq")
    order = (str(note.get("created_at") or ""), note["id"] if isinstance(note.get("id"), int) else 0)
    return order, clean_value({"reviewer": reviewer[:80], "label": label, "text": str(note.get("text") or "")[:4000],
                        "span_id": span if isinstance(span, str) and re.fullmatch(r"[0-9a-f]{16}", span) else None,
                        "event_seq": seq if isinstance(seq, int) and seq >= 0 else None,
                        "created_at": str(note.get("created_at") or "")[:40] or None})


def _clean(event: Event) -> Event:
    """An imported event's text made storable, as the app's own are (chat/text.py)."""
    return event_from_dict(clean_value(event.to_dict()))
