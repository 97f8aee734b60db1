"""A run's spans: which span each event belongs to, and the tree they make. Pure: events in, spans out.

A run is the root span; each node the graph ran (retrieve, agent, tools) is a child of it; each
tool call is a child of its node, and so is each model call (the model-call span, with the tokens
it streamed). Tokens a node returned without calling the model (the "documents don't cover this"
answer) stay in the node's span: no model call is drawn where none was made. In the team graph
each agent is a span under the run, and its nodes, model and tool calls are its children; agents
running side by side each keep their own open nodes. Events inside a span carry its `span_id` and
`parent_span_id`.

`SpanTracker` places events as a run emits them (chat/stream.py stamps every event with it), and
places the events of runs stored before events had span ids, so old runs draw the same tree.
`span_tree` turns a run's events into its spans, for the page, the API and exporters alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from chat.events import (
    AgentEnded,
    AgentStarted,
    ApprovalDecided,
    ApprovalRequired,
    Event,
    Handoff,
    ModelCallEnded,
    ModelCallStarted,
    NodeEnded,
    NodeStarted,
    ReasoningChunk,
    RetrievalHits,
    RunEnded,
    RunStarted,
    Token,
    ToolEnded,
    ToolStarted,
)


def span_id_for(run_id: str, key: str) -> str:
    """A span's id: 16 hex digits (OpenTelemetry's 8 bytes), the same every time for the same span."""
    return hashlib.sha256(f"{run_id}/{key}".encode()).hexdigest()[:16]


class SpanTracker:
    """Say which span each event of one run belongs to, as the events come, in order."""

    def __init__(self, run_id: str, *, stored_before_model_calls: bool = False) -> None:
        self.run_id = run_id
        # Runs stored before model_start existed: every token was the model's, so it goes in a model span.
        self._tokens_all_models = stored_before_model_calls
        self._called_model: set[str] = set()  # the node spans in which a model call started
        self.root = span_id_for(run_id, "run")
        self._open_nodes: list[tuple[str, str, str]] = []  # (agent, node name, span id), innermost last
        self._agents: dict[str, str] = {}  # team agent -> its span id
        self._node_counts: dict[str, int] = {}
        self._tools: dict[str, tuple[str, str]] = {}  # call id -> (span id, parent)
        self._parents: dict[str, str] = {self.root: ""}
        self._last_ended = self.root  # a node interrupted for an approval has ended when it is asked

    def place(self, event: Event) -> tuple[str, str]:
        """Return (span_id, parent_span_id) of the span `event` belongs to."""
        agent = event.agent
        if isinstance(event, (AgentStarted, AgentEnded)):
            span = self._agents.setdefault(agent, span_id_for(self.run_id, f"agent/{agent}"))
            return span, self.root
        if isinstance(event, NodeStarted):
            key = f"{agent}/{event.node}" if agent else event.node
            count = self._node_counts[key] = self._node_counts.get(key, 0) + 1
            span = span_id_for(self.run_id, f"node/{key}/{count}")
            self._parents[span] = self._node(agent)
            self._open_nodes.append((agent, event.node, span))
            return span, self._parents[span]
        if isinstance(event, NodeEnded):
            for index in range(len(self._open_nodes) - 1, -1, -1):
                if self._open_nodes[index][:2] == (agent, event.node):
                    span = self._last_ended = self._open_nodes.pop(index)[2]
                    return span, self._parents[span]
            return self.root, ""
        call_id = getattr(event, "call_id", None)
        if isinstance(event, (ToolStarted, ToolEnded, RetrievalHits, ApprovalRequired, ApprovalDecided)) and call_id:
            if call_id not in self._tools:  # its parent: the node that called it (asking first, if it must)
                parent = self._node(agent) if self._open_in(agent) else self._last_ended
                self._tools[call_id] = (span_id_for(self.run_id, f"tool/{call_id}"), parent)
            return self._tools[call_id]
        if isinstance(event, (ModelCallStarted, ModelCallEnded, Token, ReasoningChunk)):
            node = self._node(agent)
            if isinstance(event, ModelCallStarted):
                self._called_model.add(node)
            elif node not in self._called_model and not self._tokens_all_models:
                return node, self._parent_of(node)
            return span_id_for(self.run_id, f"model/{node}"), node
        return self.root, ""

    def _parent_of(self, span: str) -> str:
        """A node's parent (its agent, or the run); an agent's is the run; the run has none."""
        return self._parents.get(span, self.root if span != self.root else "")

    def _open_in(self, agent: str) -> bool:
        return any(open_agent == agent for open_agent, _, _ in self._open_nodes) or agent in self._agents

    def _node(self, agent: str = "") -> str:
        """The innermost open node of `agent`, else the agent's own span, else the run."""
        for open_agent, _, span in reversed(self._open_nodes):
            if open_agent == agent:
                return span
        return self._agents.get(agent, self.root)


@dataclass
class Span:
    """One span of a run: what it was, when, and what happened in it."""

    span_id: str
    parent_span_id: str
    kind: str  # run, agent, node, tool, model
    name: str
    start_ns: int
    end_ns: int
    status: str = "ok"  # ok, error, cancelled
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[int, Event]] = field(default_factory=list, repr=False)  # its own, each with its Unix ns

    def token_times(self) -> list[int]:
        """When each of its answer tokens arrived (Unix ns): the token timeline."""
        return [at for at, event in self.events if isinstance(event, Token)]

    def to_dict(self) -> dict[str, Any]:
        """Return the span as JSON-ready data, with its duration in milliseconds."""
        return {"span_id": self.span_id, "parent_span_id": self.parent_span_id or None, "kind": self.kind,
                "name": self.name, "start_ns": self.start_ns, "end_ns": self.end_ns,
                "duration_ms": round((self.end_ns - self.start_ns) / 1e6, 3), "status": self.status,
                "attributes": self.attributes}


def span_tree(events: list[Event]) -> list[Span]:
    """Return a run's spans, root first, then in the order they started.

    Events stored before span ids and wall-clock times existed are placed with SpanTracker and
    timed from the run's monotonic clock (`at`), so their spans have the right shape and durations.
    """
    if not events:
        return []
    tracker = SpanTracker(events[0].run_id, stored_before_model_calls=True)  # it places only runs that old
    spans: dict[str, Span] = {}
    base_ns = next((e.ts - int(e.at * 1e9) for e in events if e.ts), 0)
    for event in events:
        span_id, parent = (event.span_id, event.parent_span_id) if event.span_id else tracker.place(event)
        at_ns = event.ts or base_ns + int(event.at * 1e9)
        span = spans.get(span_id)
        if span is None:
            kind, name = _kind_and_name(event, span_id == tracker.root and not parent)
            span = spans[span_id] = Span(span_id, parent, kind, name, at_ns, at_ns)
        span.end_ns = max(span.end_ns, at_ns)
        span.events.append((at_ns, event))
        _describe(span, event)
    return sorted(spans.values(), key=lambda s: (s.parent_span_id != "", s.start_ns))


def _kind_and_name(event: Event, is_root: bool) -> tuple[str, str]:
    if is_root:
        return "run", "run"
    if isinstance(event, (AgentStarted, AgentEnded)):
        return "agent", event.agent
    if isinstance(event, (NodeStarted, NodeEnded)):
        return "node", event.node
    if isinstance(event, ModelCallStarted):
        return "model", event.model
    if isinstance(event, (ModelCallEnded, Token, ReasoningChunk)):
        return "model", "model call"
    return "tool", str(getattr(event, "tool", None) or "search_knowledge_base")


def _describe(span: Span, event: Event) -> None:
    """Fold what `event` says into its span's attributes."""
    attributes = span.attributes
    if isinstance(event, RunStarted):
        attributes.update(message=event.message, model=event.model, knowledge_base=event.knowledge_base,
                          knowledge_fingerprint=event.knowledge_fingerprint)
    elif isinstance(event, RunEnded):
        span.status = {"failed": "error", "cancelled": "cancelled"}.get(event.status, "ok")
        attributes.update(status=event.status, answer=event.answer, ttft_s=event.ttft_s, latency_s=event.latency_s,
                          input_tokens=event.input_tokens, output_tokens=event.output_tokens,
                          grounding=event.grounding, ttft_breakdown=event.ttft_breakdown)
    elif isinstance(event, AgentStarted):
        attributes.update(agent=event.agent, role=event.role)
    elif isinstance(event, AgentEnded):
        attributes.update(duration_s=event.duration_s, status=event.status)
        span.status = {"failed": "error", "cancelled": "cancelled"}.get(event.status, span.status)
    elif isinstance(event, Handoff):
        attributes.setdefault("handoffs", []).append({"from": event.agent, "to": event.to_agent, "reason": event.reason})
    elif isinstance(event, ToolStarted):
        attributes.update(tool=event.tool, call_id=event.call_id, input=event.input)
    elif isinstance(event, ToolEnded):
        attributes.update(output=event.output, error=event.error)
        span.status = "error" if event.error else span.status
    elif isinstance(event, RetrievalHits):
        attributes.update(query=event.query, hits=[hit.__dict__ for hit in event.hits])
    elif isinstance(event, ApprovalDecided):
        attributes.update(approved=event.approved, decided_by=event.by, waited_s=event.waited_s)
    elif isinstance(event, ModelCallStarted):
        attributes.update(provider=event.provider, model=event.model, parameters=event.parameters,
                          messages=list(event.messages))
    elif isinstance(event, ModelCallEnded):
        attributes.update(finish_reason=event.finish_reason, first_chunk_s=event.first_chunk_s,
                          input_tokens=event.input_tokens, output_tokens=event.output_tokens,
                          reasoning_tokens=event.reasoning_tokens)
        if event.opened_with:  # the local model's first words set by chat/openings.py
            attributes["opened_with"] = event.opened_with
        span.status = {"error": "error", "cancelled": "cancelled"}.get(event.finish_reason, span.status)
    elif isinstance(event, Token):
        attributes["tokens"] = attributes.get("tokens", 0) + 1
        attributes["text"] = attributes.get("text", "") + event.text
    elif isinstance(event, ReasoningChunk):
        attributes["reasoning"] = attributes.get("reasoning", "") + event.text
    elif event.type in ("error", "cancelled"):
        span.status = "error" if event.type == "error" else "cancelled"
