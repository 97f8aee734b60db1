"""Turn LangGraph's stream into Glassbox events: the only module that knows its chunk shapes
(chat/run.py asks for them, and hands each item here).

We drive `graph.astream` with three stream modes rather than `astream_events`:
"messages" gives each model token with the node that produced it, "tasks" gives node
start and finish (so node durations come from LangGraph itself), and "custom" carries
what our own tool runner writes (tool start/end, retrieval hits, with their timings).
`astream_events` would report the same things, but it routes every runnable's start
and end through callbacks and we would filter most of them away; three documented,
small chunk shapes are cheaper on the token path and easier to test.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage

from chat.calculator import CALCULATOR_TOOL
from chat.events import (
    AgentEnded,
    AgentStarted,
    ApprovalRequired,
    Cancelled,
    ErrorKind,
    ErrorOccurred,
    Event,
    GroundingChecked,
    Handoff,
    ModelCallEnded,
    NodeEnded,
    NodeStarted,
    Progress,
    ReasoningChunk,
    RetrievalHits,
    RunEnded,
    RunQueued,
    RunStarted,
    RunStatus,
    Token,
    ToolEnded,
    ToolStarted,
)
from chat.grounding import check_grounding
from chat.reasoning import ThinkTagSplitter
from chat.spans import SpanTracker
from chat.state import ANSWER_NODE, RETRIEVE_NODE, SUPPORT, GraphShape
from chat.text import clean_text, clean_value
from rag.types import Hit

STREAM_MODES = ["messages", "tasks", "custom"]
Clock = Callable[[], float]
log = logging.getLogger("glassbox.stream")


class RunTranslator:
    """Translate one run's (mode, chunk) pairs into events and keep its running totals."""

    def __init__(self, run_id: str, thread_id: str, clock: Clock = time.monotonic,
                 shape: GraphShape = SUPPORT) -> None:
        self.ids = {"run_id": run_id, "thread_id": thread_id}
        self.shape = shape
        self.clock = clock
        self.started_at = clock()
        self.started_ns = time.time_ns()  # the wall clock at started_at
        self._spans = SpanTracker(run_id)
        self._seq = 0
        self.model_name = ""
        # Marks for the TTFT breakdown (ttft_phases): when the graph began, retrieval's time before the
        # first output, and the model request and first chunk of the call that produced it.
        self.run_started_at: float | None = None
        self._retrieval_s = 0.0
        self._routing_s = 0.0  # the team coordinator's time before the first output
        self._model_request_at: float | None = None
        self._first_chunk_at: float | None = None
        # Told by ModelCalls, emitted after the call's tokens; one per agent (the team's run side by side).
        self._model_end: dict[str, ModelCallEnded] = {}
        self.first_output_at: float | None = None
        # Time spent waiting for a person's approval: not the system's, so TTFT and latency leave it out.
        self.paused_s = 0.0
        self._paused_before_first_output = 0.0
        self.answer: list[str] = []
        self.output_tokens = self.input_tokens = self.tool_calls = self.token_events = 0
        self.current_node: str | None = None
        self._splitters: dict[str, ThinkTagSplitter] = {}  # per agent: their tokens interleave
        self._task_started: dict[str, float] = {}
        self._agents_started: dict[str, float] = {}  # the team's agents running (or paused), and since when
        self._agents_done: list[str] = []
        self._planned = 0  # agents planned once the coordinator has routed (0: not yet)
        self._interrupts_seen: set[str] = set()  # a subgraph's pause is reported by it and by its parent
        self.first_token_agent = ""
        self.pending_approval: ApprovalRequired | None = None  # the graph paused for this
        self.citations: dict[str, Hit] = {}  # chunk id -> the best-scoring retrieved sentence
        self.known_names: tuple[str, ...] = ()  # names the prompt gives (the assistant's): no source needs them
        self.message = ""  # the user's, whose numbers the answer may say back

    def stamp(self, event: Event) -> Event:
        """Give an event its place in the run: sequence number, wall-clock time and span."""
        span_id, parent = self._spans.place(event)
        ts = self.started_ns + round((event.at - self.started_at) * 1e9)
        stamped = dataclasses.replace(event, seq=self._seq, ts=ts, span_id=span_id, parent_span_id=parent)
        self._seq += 1
        return stamped

    def model_requested(self, at: float) -> None:
        """A model call was sent (ModelCalls); until the first output, the latest is the one that counts."""
        if self.first_output_at is None:
            self._model_request_at, self._first_chunk_at = at, None

    def model_first_chunk(self, at: float) -> None:
        """The current model call's first chunk arrived (ModelCalls)."""
        if self.first_output_at is None and self._first_chunk_at is None:
            self._first_chunk_at = at

    def ttft_phases(self) -> dict[str, float]:
        """Where the time to first token went, in seconds: queue (warm-up and start), routing (the team
        graph's coordinator), retrieval, prompt (building it, and the graph's own steps), model
        (request to first chunk) and delivery (first chunk to the first token event). Their sum is
        the queue plus TTFT."""
        if self.first_output_at is None or self.run_started_at is None:
            return {}
        end = self.first_output_at - self._paused_before_first_output
        chunk = self._first_chunk_at if self._model_request_at is not None else None
        model = (chunk - self._model_request_at) if chunk is not None else 0.0
        delivery = (self.first_output_at - chunk) if chunk is not None else 0.0
        prompt = end - self.run_started_at - self._routing_s - self._retrieval_s - model - delivery
        phases = {"queue": self.run_started_at - self.started_at, "retrieval": self._retrieval_s,
                  "prompt": prompt, "model": model, "delivery": delivery}
        if self.shape.agents:  # the team's coordinator routed first
            phases = {"queue": phases.pop("queue"), "routing": self._routing_s, **phases}
        return {phase: round(max(0.0, seconds), 6) for phase, seconds in phases.items()}

    def model_ended(self, event: ModelCallEnded) -> None:
        """Hold a model call's end until its node ends (the stream may still hold its last tokens)."""
        self._model_end[event.agent] = event

    def _held_model_end(self, agent: str | None = None) -> list[Event]:
        """The held model end of `agent`'s call, or of every agent's (None)."""
        agents = list(self._model_end) if agent is None else [agent]
        return [self._model_end.pop(name) for name in agents if name in self._model_end]

    def agent_of(self, namespace: tuple[str, ...] | str) -> str:
        """The team agent a stream item's namespace (or a callback's checkpoint_ns) belongs to; "" if none."""
        first = (namespace.split("|")[0] if isinstance(namespace, str) else (namespace or ("",))[0])
        name = first.partition(":")[0]
        return name if name in self.shape.agents else ""

    def queued(self, message: str) -> RunQueued:
        """Return the run's first event: the message was accepted."""
        return RunQueued(**self.ids, at=self.started_at, message=message)

    def start(self, message: str, model: str, knowledge_base: str = "", fingerprint: str = "",
              config: dict[str, Any] | None = None) -> RunStarted:
        """Return the event that says the graph began, from which knowledge base, with what config."""
        self.model_name = model
        self.message = message
        self.run_started_at = self.clock()
        snapshot = {**(config or {}), "knowledge_base": knowledge_base, "knowledge_fingerprint": fingerprint}
        snapshot["agent_graph"] = self.shape.name
        return RunStarted(**self.ids, at=self.clock(), message=message, model=model,
                          knowledge_base=knowledge_base, knowledge_fingerprint=fingerprint, config=snapshot,
                          agent_graph=self.shape.name, agents=dict(self.shape.agents),
                          answering_agent=self.shape.answering_agent)

    def translate(self, mode: str, chunk: Any, namespace: tuple[str, ...] = ()) -> list[Event]:
        """Return the events one stream item stands for (often none); `namespace` says which subgraph."""
        agent = self.agent_of(namespace)
        if mode == "messages":
            message, metadata = chunk
            node = metadata.get("langgraph_node")
            return self._from_message(message, node, agent or self.agent_of((node or "",)))
        if mode == "tasks":
            return self._from_task(chunk, namespace, agent)
        if mode == "custom":
            return self._from_custom(chunk, agent)
        return []

    def finish(
        self, status: RunStatus, *, error: tuple[ErrorKind, str] | None = None, stopped: str | None = None
    ) -> list[Event]:
        """Return the held-back text, the error or stop if any, then the run's `RunEnded`."""
        events = [event for agent, splitter in self._splitters.items()
                  for event in self._text_events(splitter.flush(), self.clock(), agent)]
        events += self._held_model_end() + self._agents_cut_off(status)
        if error is not None:
            events.append(ErrorOccurred(**self.ids, at=self.clock(), kind=error[0], message=error[1]))
        if stopped is not None:
            events.append(Cancelled(**self.ids, at=self.clock(), reason=stopped))
        answer = "".join(self.answer).strip()
        citations = tuple(sorted(self.citations.values(), key=lambda hit: -hit.score))
        grounding = None
        if status == "completed":  # a finished answer is checked against the sentences it was built on
            checked = check_grounding(answer, [hit.text for hit in citations], known_names=self.known_names,
                                      asked=self.message)
            grounding = checked.verdict
            events.append(GroundingChecked(**self.ids, at=self.clock(), verdict=checked.verdict,
                                           unsupported=checked.unsupported, evidence=checked.evidence))
        now = self.clock()
        # From the graph's start: a wait for warm-up is the queue phase, not the model's TTFT.
        began = self.run_started_at if self.run_started_at is not None else self.started_at
        ttft = (None if self.first_output_at is None
                else self.first_output_at - began - self._paused_before_first_output)
        return events + [
            RunEnded(
                **self.ids, at=now, status=status, answer=answer,
                latency_s=now - self.started_at - self.paused_s, ttft_s=ttft, input_tokens=self.input_tokens,
                output_tokens=self.output_tokens or self.token_events, tool_calls=self.tool_calls,
                approval_wait_s=self.paused_s, citations=citations, grounding=grounding,
                ttft_breakdown=self.ttft_phases(), first_token_agent=self.first_token_agent,
            )
        ]

    def _agents_cut_off(self, status: RunStatus) -> list[Event]:
        """End the agents still running when the run failed or was stopped: their spans close too."""
        now, ended = self.clock(), []
        for agent, started in list(self._agents_started.items()):
            ended.append(AgentEnded(**self.ids, at=now, agent=agent, role=self.shape.agents.get(agent, ""),
                                    duration_s=now - started, status=status))
        self._agents_started.clear()
        return ended

    def _from_message(self, message: Any, node: str | None, agent: str) -> list[Event]:
        if not isinstance(message, AIMessage):
            return []
        if not (agent if self.shape.agents else node == ANSWER_NODE):
            return []
        now = self.clock()
        usage = message.usage_metadata or {}
        self.input_tokens += usage.get("input_tokens", 0)
        self.output_tokens += usage.get("output_tokens", 0)
        events: list[Event] = []
        reasoning = clean_text(_reasoning_text(message))
        if reasoning:
            events.append(ReasoningChunk(**self.ids, at=now, agent=agent, text=reasoning))
        splitter = self._splitters.setdefault(agent, ThinkTagSplitter())
        events += self._text_events(splitter.feed(_answer_text(message)), now, agent)
        if events and self.first_output_at is None:
            self.first_output_at, self._paused_before_first_output = now, self.paused_s
            self.first_token_agent = agent
        return events

    def _text_events(self, parts: list[tuple[str, str]], now: float, agent: str = "") -> list[Event]:
        events: list[Event] = []
        for kind, text in parts:
            text = clean_text(text)  # model output is untrusted: keep it storable
            if kind == "reasoning":
                events.append(ReasoningChunk(**self.ids, at=now, agent=agent, text=text))
            else:
                if agent == self.shape.answering_agent:  # the other agents' words are their work, not the answer
                    self.answer.append(text)
                self.token_events += 1
                events.append(Token(**self.ids, at=now, agent=agent, text=text))
        return events

    def _from_task(self, task: dict[str, Any], namespace: tuple[str, ...], agent: str) -> list[Event]:
        now = self.clock()
        name = task["name"]
        if not namespace and name in self.shape.agents:  # a team agent, as a whole
            return self._from_agent_task(task, name, now)
        if "triggers" in task:  # a task starts: {id, name, input, triggers}
            self._task_started[task["id"]] = now
            self.current_node = name
            return [NodeStarted(**self.ids, at=now, agent=agent, node=name)]
        started = self._task_started.pop(task["id"], now)  # a task ends: {id, name, result, error, interrupts}
        events: list[Event] = [*self._held_model_end(agent),
                               NodeEnded(**self.ids, at=now, agent=agent, node=name, duration_s=now - started)]
        if name == RETRIEVE_NODE and self.first_output_at is None:
            self._retrieval_s += now - started
        return events + self._approvals_asked(task, now, agent)

    def _from_agent_task(self, task: dict[str, Any], agent: str, now: float) -> list[Event]:
        """A team agent starts or ends; a paused one (approval) is resumed, not started again."""
        if "triggers" in task:
            if agent in self._agents_started or agent in self._agents_done:  # resumed, or a finished branch replayed
                return []
            self._agents_started[agent] = now
            self.current_node = agent
            return [AgentStarted(**self.ids, at=now, agent=agent, role=self.shape.agents[agent])]
        if task.get("interrupts"):  # paused for a person's decision: still this agent's time
            return self._held_model_end(agent) + self._approvals_asked(task, now, agent)
        started = self._agents_started.pop(agent, None)
        if started is None:
            return []
        self._agents_done.append(agent)
        if agent == self.shape.routing_agent and self.first_output_at is None:
            self._routing_s += now - started
        status: RunStatus = "failed" if task.get("error") else "completed"
        events: list[Event] = [*self._held_model_end(agent),
                               AgentEnded(**self.ids, at=now, agent=agent, role=self.shape.agents[agent],
                                          duration_s=now - started, status=status)]
        if self._planned:
            events.append(Progress(**self.ids, at=now, done=len(self._agents_done), planned=self._planned))
        return events

    def _approvals_asked(self, task: dict[str, Any], now: float, agent: str) -> list[Event]:
        events: list[Event] = []
        for paused in task.get("interrupts") or ():  # interrupt(): the node asks a person first
            if paused.get("id") and paused["id"] in self._interrupts_seen:
                continue
            self._interrupts_seen.add(paused.get("id") or "")
            value = clean_value(paused.get("value") or {})
            self.pending_approval = ApprovalRequired(**self.ids, at=now, agent=agent,
                                                     call_id=str(value.get("call_id", "")),
                                                     tool=str(value.get("tool", "")), input=value.get("input", {}))
            events.append(self.pending_approval)
        return events

    def _from_custom(self, data: dict[str, Any], agent: str) -> list[Event]:
        kind, at = data.get("kind"), data.get("at", self.clock())
        # Tool inputs come from the model, outputs and hits from tools and documents: all untrusted.
        fields = {k: clean_value(v) for k, v in data.items() if k not in ("kind", "at", "hits")}
        if kind == "tool_start":
            self.tool_calls += 1
            return [ToolStarted(**self.ids, at=at, agent=agent, **fields)]
        if kind == "tool_end":
            ended = ToolEnded(**self.ids, at=at, agent=agent, **fields)
            if ended.tool == CALCULATOR_TOOL and not ended.error:  # a worked-out amount: its source is the sum
                self.citations[ended.call_id] = Hit("calculator", ended.call_id, 1.0, ended.output)
            return [ended]
        if kind == "retrieval":
            hits = tuple(Hit(clean_text(h.source), h.chunk_id, h.score, clean_text(h.text)) for h in data["hits"])
            for hit in hits:
                if hit.chunk_id not in self.citations or self.citations[hit.chunk_id].score < hit.score:
                    self.citations[hit.chunk_id] = hit
            return [RetrievalHits(**self.ids, at=at, agent=agent, call_id=fields["call_id"], query=fields["query"],
                                  hits=hits)]
        if kind == "plan":  # the coordinator routed: itself, the specialists it chose, and the primary agent
            self._planned = 2 + len(fields.get("agents") or ())
            return [Progress(**self.ids, at=at, done=len(self._agents_done), planned=self._planned)]
        if kind == "handoff":
            return [Handoff(**self.ids, at=at, agent=str(fields.get("from", "")), to_agent=str(fields.get("to", "")),
                            reason=str(fields.get("reason", "")))]
        return []


def _answer_text(message: AIMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(
        block.get("text", "") for block in message.content
        if isinstance(block, dict) and block.get("type") == "text"
    )


def _reasoning_text(message: AIMessage) -> str:
    """Reasoning sent beside the answer: OpenAI-compatible `reasoning_content` or content blocks."""
    text = message.additional_kwargs.get("reasoning_content") or ""
    if isinstance(message.content, list):
        text += "".join(
            block.get("reasoning", "") or block.get("thinking", "") for block in message.content
            if isinstance(block, dict) and block.get("type") in ("reasoning", "thinking")
        )
    return text
