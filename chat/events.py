"""The one vocabulary of a run: plain, frozen event types.

The chat, the side panel, the metrics recorder (and later the trace store and
the HTTP API) all read these same events. Nothing here knows about LangGraph or
Gradio; `chat.stream` is the only module that turns LangGraph output into them.

Every run is a sequence that opens with `RunQueued` (the message was accepted) and
`RunStarted` (the graph began), and ends with exactly one
`RunEnded`, whose `status` is "completed", "failed" or "cancelled". A failure is
announced by an `ErrorOccurred` and a stop by a `Cancelled` just before it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rag.types import Hit

RunStatus = Literal["completed", "failed", "cancelled"]
# Bounded on purpose: these become the `kind` label of agent_errors_total.
# rate_limited, auth, unavailable: the model's endpoint turned us away or could not be reached;
# model: the model failed or is misnamed; timeout: it went silent; input: the request was refused as invalid.
# Bounded: the `grounding` label of agent_answers_total.
GroundingVerdict = Literal["grounded", "unsupported", "no_sources"]
# The phases of a run's time to first token (RunTranslator.ttft_phases); bounded: a metric's labels.
# routing: the team graph's coordinator choosing the specialists (team runs only).
TTFT_PHASES = ("queue", "routing", "retrieval", "prompt", "model", "delivery")
# Why a model call ended: it stopped, hit MAX_ANSWER_TOKENS, asked for tools, was stopped or failed.
FinishReason = Literal["stop", "length", "tool_calls", "cancelled", "error"]
ErrorKind = Literal["rate_limited", "auth", "unavailable", "model", "timeout", "recursion_limit", "input", "internal"]


@dataclass(frozen=True, kw_only=True)
class Event:
    """Fields every event carries."""

    type: ClassVar[str] = "event"
    run_id: str
    thread_id: str
    at: float  # time.monotonic() seconds when the event happened
    # Set as the run emits the event (RunTranslator.stamp); 0 and "" on events stored before them.
    seq: int = 0  # its place in the run, from 0
    ts: int = 0  # the wall clock when it happened, Unix nanoseconds: comparable across restarts
    span_id: str = ""  # the span it belongs to (chat/spans.py): the run, an agent, a node, a tool or model call
    parent_span_id: str = ""  # that span's parent; "" for the run itself
    agent: str = ""  # the team graph's agent it came from (chat/team.py); "" in the single-agent graph

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict with a `type` field."""
        return {"type": self.type, **dataclasses.asdict(self)}


@dataclass(frozen=True, kw_only=True)
class RunQueued(Event):
    """A message was accepted; the run waits for warm-up or for its turn at the model."""

    type: ClassVar[str] = "run_queued"
    message: str


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    type: ClassVar[str] = "run_start"
    message: str
    model: str
    knowledge_base: str = ""  # the knowledge base the run answers from
    knowledge_fingerprint: str = ""  # a hash of that knowledge base's content when the run began
    # What answered: provider, model, parameters, prompt template id and hash, retrieval settings,
    # the Glassbox version (Components.config). Two runs' configs side by side say what differed.
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    agent_graph: str = "support"  # AGENT_GRAPH: "support" (one agent) or "team"
    agents: dict[str, str] = dataclasses.field(default_factory=dict)  # the team's agent names -> roles
    answering_agent: str = ""  # whose tokens are the answer; the other agents' tokens are their own work


@dataclass(frozen=True, kw_only=True)
class AgentStarted(Event):
    """An agent of the team began: a span of its own, under the run, holding its nodes, model and tool calls."""

    type: ClassVar[str] = "agent_start"
    role: str


@dataclass(frozen=True, kw_only=True)
class AgentEnded(Event):
    type: ClassVar[str] = "agent_end"
    role: str
    duration_s: float
    status: RunStatus = "completed"


@dataclass(frozen=True, kw_only=True)
class Handoff(Event):
    """One agent passed work to another (`agent` is the one handing off), and why."""

    type: ClassVar[str] = "handoff"
    to_agent: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Progress(Event):
    """How far the run is: agents done out of agents planned (the plan grows once the coordinator routes)."""

    type: ClassVar[str] = "progress"
    done: int
    planned: int


@dataclass(frozen=True, kw_only=True)
class NodeStarted(Event):
    type: ClassVar[str] = "node_start"
    node: str


@dataclass(frozen=True, kw_only=True)
class NodeEnded(Event):
    type: ClassVar[str] = "node_end"
    node: str
    duration_s: float


@dataclass(frozen=True, kw_only=True)
class ToolStarted(Event):
    type: ClassVar[str] = "tool_start"
    call_id: str
    tool: str
    input: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ToolEnded(Event):
    type: ClassVar[str] = "tool_end"
    call_id: str
    tool: str
    output: str
    duration_s: float
    error: str | None = None  # set when the tool failed or its input was invalid


@dataclass(frozen=True, kw_only=True)
class RetrievalHits(Event):
    type: ClassVar[str] = "retrieval"
    call_id: str
    query: str
    hits: tuple[Hit, ...]


@dataclass(frozen=True, kw_only=True)
class ApprovalRequired(Event):
    """The agent wants to run a side-effecting tool; the run pauses until someone decides."""

    type: ClassVar[str] = "approval_required"
    call_id: str
    tool: str
    input: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ApprovalDecided(Event):
    """The pause ended: approved or rejected (by whom, and why), or timed out as a rejection."""

    type: ClassVar[str] = "approval_decided"
    call_id: str
    tool: str
    approved: bool
    by: str  # "user", "api", or "timeout"
    reason: str = ""
    waited_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ModelCallStarted(Event):
    """The agent sent the model its messages: exactly these (each cut at MODEL_MESSAGE_CHARS)."""

    type: ClassVar[str] = "model_start"
    provider: str  # local, openai, or the model class's own name
    model: str
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)  # temperature, max_tokens, ...
    messages: tuple[dict[str, Any], ...] = ()  # {"role", "content"}, as sent


@dataclass(frozen=True, kw_only=True)
class ModelCallEnded(Event):
    """The model call ended: why, how long it took to its first chunk and in all, and its tokens."""

    type: ClassVar[str] = "model_end"
    finish_reason: FinishReason
    first_chunk_s: float | None  # request sent to the first streamed chunk; None if none came
    duration_s: float
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    # The words the local model's answer was opened with (chat/openings.py): "No" (LOCAL_NO_DENIED_YES)
    # or its fact's first words (LOCAL_FACT_OPENING); "" when the model opened it.
    opened_with: str = ""


@dataclass(frozen=True, kw_only=True)
class ReasoningChunk(Event):
    type: ClassVar[str] = "reasoning"
    text: str


@dataclass(frozen=True, kw_only=True)
class Token(Event):
    type: ClassVar[str] = "token"
    text: str


@dataclass(frozen=True, kw_only=True)
class ErrorOccurred(Event):
    type: ClassVar[str] = "error"
    kind: ErrorKind
    message: str  # shown to the user: a sentence, not a stack trace


@dataclass(frozen=True, kw_only=True)
class Cancelled(Event):
    type: ClassVar[str] = "cancelled"
    reason: str


@dataclass(frozen=True, kw_only=True)
class GroundingChecked(Event):
    """The finished answer compared with the sentences it was built on (chat/grounding/)."""

    type: ClassVar[str] = "grounding"
    verdict: GroundingVerdict
    unsupported: tuple[str, ...] = ()  # the answer's spans its sources don't back
    evidence: str = ""  # the cited sentence closest to the answer: "The document says: ..."


@dataclass(frozen=True, kw_only=True)
class RunEnded(Event):
    type: ClassVar[str] = "run_end"
    status: RunStatus
    answer: str
    latency_s: float
    ttft_s: float | None  # None when no answer token arrived
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0
    # Seconds the run waited for a person to approve or reject; TTFT and latency leave them out.
    approval_wait_s: float = 0.0
    # The retrieved sentences the answer was built on (those above RAG_MIN_SCORE), best first.
    citations: tuple[Hit, ...] = ()
    grounding: GroundingVerdict | None = None  # None when the run did not complete
    # Where the time to first token went, in seconds: queue, retrieval, prompt, model, delivery
    # (RunTranslator.ttft_phases); empty when no output came.
    ttft_breakdown: dict[str, float] = dataclasses.field(default_factory=dict)
    first_token_agent: str = ""  # in the team graph, the agent whose token came first


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RunQueued,
        RunStarted,
        AgentStarted,
        AgentEnded,
        Handoff,
        Progress,
        NodeStarted,
        NodeEnded,
        ToolStarted,
        ToolEnded,
        RetrievalHits,
        ApprovalRequired,
        ApprovalDecided,
        ModelCallStarted,
        ModelCallEnded,
        ReasoningChunk,
        Token,
        ErrorOccurred,
        Cancelled,
        GroundingChecked,
        RunEnded,
    )
}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from `Event.to_dict()` output (e.g. read back from the trace store)."""
    cls = EVENT_TYPES[data["type"]]
    fields = {k: v for k, v in data.items() if k != "type"}
    if cls is RetrievalHits:
        fields["hits"] = tuple(Hit(**hit) for hit in fields["hits"])
    if cls is RunEnded:
        fields["citations"] = tuple(Hit(**hit) for hit in fields.get("citations", ()))
    if cls is GroundingChecked:
        fields["unsupported"] = tuple(fields.get("unsupported", ()))
    if cls is ModelCallStarted:
        fields["messages"] = tuple(fields.get("messages", ()))
    if cls is ModelCallEnded and "opened_with_no" in fields:  # stored before openings other than "No"
        fields["opened_with"] = "No" if fields.pop("opened_with_no") is True else ""
    return cls(**fields)
