"""Render one run's events as chat messages and as the side panel's event list.

Pure functions of hand-buildable events: the page calls them, tests call them directly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

import gradio as gr

from chat.config import ID_PATTERN
from chat.events import (
    AgentEnded,
    AgentStarted,
    ApprovalDecided,
    ApprovalRequired,
    Cancelled,
    ErrorOccurred,
    Event,
    GroundingChecked,
    Handoff,
    Progress,
    ReasoningChunk,
    RetrievalHits,
    RunEnded,
    RunStarted,
    Token,
    ToolEnded,
    ToolStarted,
)

BADGES = {"grounded": "✅ grounded in the documents", "unsupported": "⚠️ not supported by the documents",
          "no_sources": "ℹ️ no sources"}
# The run link every answer ends with (TurnView), read back to know which run an answer was.
RUN_LINK = re.compile(r"\?run=(" + ID_PATTERN.strip("^$") + r")\)")
# "!" before "[" makes a markdown link an image (inline `![a](u)` or by reference `![a][r]`).
IMAGE_MARK = re.compile(r"!+(?=\[)")
EMPTY_IMAGE_LABEL = re.compile(r"!+\[(?=\])")


@dataclass
class Segment:
    """One block of the assistant's turn: a tool step, some reasoning, answer text, or a team agent's group."""

    kind: Literal["tool", "reasoning", "answer", "note", "sources", "run", "agent", "work"]
    key: str
    text: str = ""
    title: str = ""
    status: Literal["pending", "done"] = "pending"
    duration: float | None = None
    parent: str = ""  # the key of the agent group it belongs to (the team graph); "" at the top


@dataclass
class TurnView:
    """Accumulate a run's events into the blocks the chat shows."""

    events: list[Event] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    pending_approval: ApprovalRequired | None = None  # the run waits for Approve or Reject
    grounding: GroundingChecked | None = None
    answering_agent: str = ""  # the team graph: whose tokens are the answer; the others' are their work
    working: dict[str, str] = field(default_factory=dict)  # the team's agents working now -> their roles
    progress: Progress | None = None

    def add(self, event: Event) -> None:
        """Take the next event of the run."""
        self.events.append(event)
        group = f"agent-{event.agent}" if event.agent else ""
        if isinstance(event, RunStarted):
            self.answering_agent = event.answering_agent
        elif isinstance(event, (AgentStarted, AgentEnded, Handoff, Progress)):
            self._team(event)
        elif isinstance(event, Token):
            if event.agent != self.answering_agent:
                self._append("work", event.text, parent=group)
            else:
                self._append("answer", event.text)
        elif isinstance(event, ReasoningChunk):
            self._append("reasoning", event.text, title="💭 Reasoning", parent=group)
        elif isinstance(event, ToolStarted):
            self._close_open()
            args = json.dumps(event.input, ensure_ascii=False)
            self.segments.append(Segment("tool", event.call_id, f"**Input** `{args}`", f"🔧 {event.tool}",
                                         parent=group))
        elif isinstance(event, RetrievalHits):
            self._tool(event.call_id).text += "\n\n" + _hits_markdown(event)
        elif isinstance(event, ToolEnded):
            self._end_tool(event)
        elif isinstance(event, (ApprovalRequired, ApprovalDecided)):
            self._approval(event)
        elif isinstance(event, ErrorOccurred):
            self.note(f"⚠️ **Error:** {event.message}")
        elif isinstance(event, Cancelled):
            self.note("⏹ **Stopped.** The answer above is partial." if self.answer.strip()
                      else "⏹ **Stopped** before any answer came.")
        elif isinstance(event, GroundingChecked):
            self.grounding = event
        elif isinstance(event, RunEnded):
            self._close_open()
            if event.status == "completed" and not event.answer:
                self.note("(The model returned an empty answer.)")
            self._sources(event)
            self.segments.append(Segment("run", "run", f"run `{event.run_id}` · [open in Traces](?run={event.run_id})",
                                         status="done"))  # RUN_LINK reads it back (👍/👎 in the chat)

    def _team(self, event: AgentStarted | AgentEnded | Handoff | Progress) -> None:
        """A team agent's group: opened when it starts, told its handoffs, closed with its duration."""
        if isinstance(event, Progress):
            self.progress = event
            return
        key = f"agent-{event.agent}"
        if isinstance(event, AgentStarted):
            self.working[event.agent] = event.role
            self.segments.append(Segment("agent", key, f"*It {event.role}.*", f"🤖 {event.agent} agent",
                                         parent=""))
            return
        group = self._group(key)
        if isinstance(event, Handoff):
            if group is not None:
                group.text += f"\n\n➡️ handed to the **{event.to_agent}** agent: {event.reason}"
            return
        self.working.pop(event.agent, None)
        for segment in self.segments:  # what it wrote is finished too
            if segment.parent == key and segment.kind in ("work", "reasoning"):
                segment.status = "done"
        if group is not None:
            group.status, group.duration = "done", event.duration_s
            if event.status != "completed":
                group.title += " — failed" if event.status == "failed" else " — stopped"

    def _group(self, key: str) -> Segment | None:
        return next((s for s in self.segments if s.kind == "agent" and s.key == key), None)

    def _sources(self, end: RunEnded) -> None:
        """Under a finished answer: its sources (collapsed) with the grounding badge, and when the
        check found claims the documents don't back, the document's own sentence, plainly."""
        verdict = self.grounding.verdict if self.grounding else end.grounding
        if end.citations:
            sections = [(hit, *_section(hit.text)) for hit in end.citations]
            rows = [f"- **{hit.source}** · {section or 'text'} · score {hit.score:.2f}\n\n  > {sentence}"
                    for hit, section, sentence in sections]
            title = f"📚 Sources ({len(end.citations)})" + (f" · {BADGES[verdict]}" if verdict else "")
            self.segments.append(Segment("sources", "sources", "\n".join(rows), title, status="done"))
        if verdict == "unsupported" and self.grounding is not None:
            shown = self.grounding.unsupported[:5]
            spans = ", ".join(f"“{span}”" for span in shown) or "part of it"
            stop = "" if shown and shown[-1].endswith((".", "!", "?")) else "."  # a whole sentence brings its own
            said = f" The document says: “{_section(self.grounding.evidence)[1]}”" if self.grounding.evidence else ""
            self.note(f"⚠️ **Check this answer:** the documents don't support {spans}{stop}{said}")

    @property
    def answer(self) -> str:
        """Return the answer text so far."""
        return "".join(s.text for s in self.segments if s.kind == "answer")

    def messages(self) -> list[gr.ChatMessage]:
        """Return the assistant messages of this turn, steps as collapsible blocks."""
        return [_message(segment) for segment in self.segments if segment.text or segment.kind in ("tool", "agent")]

    def _append(self, kind: Literal["answer", "reasoning", "work"], text: str, title: str = "",
                parent: str = "") -> None:
        # Agents side by side interleave: text continues the last block of its own group.
        last = next((s for s in reversed(self.segments) if s.parent == parent and s.kind != "agent"), None)
        if last is None or last.kind != kind or last.status == "done":
            if kind != "work":
                self._close_open()
            last = Segment(kind, f"{kind}-{len(self.segments)}", title=title, parent=parent)
            self.segments.append(last)
        last.text += text

    def _tool(self, call_id: str) -> Segment:
        for segment in self.segments:
            if segment.kind == "tool" and segment.key == call_id:
                return segment
        segment = Segment("tool", call_id, title="🔧 tool")
        self.segments.append(segment)
        return segment

    def _end_tool(self, event: ToolEnded) -> None:
        segment = self._tool(event.call_id)
        segment.status, segment.duration = "done", event.duration_s
        if event.error:
            segment.title += " — failed"
            segment.text += f"\n\n**Error** {event.error}"
        elif "**Hits**" not in segment.text:
            segment.text += f"\n\n**Output** {event.output}"

    def _approval(self, event: ApprovalRequired | ApprovalDecided) -> None:
        if isinstance(event, ApprovalRequired):
            self.pending_approval = event
            self._close_open()
            args = json.dumps(event.input, ensure_ascii=False)
            text = f"The agent wants to run **{event.tool}**. Approve or Reject it below.\n\n**Input** `{args}`"
            self.segments.append(Segment("tool", f"approval-{event.call_id}", text, f"🛑 Approval needed: {event.tool}",
                                         parent=f"agent-{event.agent}" if event.agent else ""))
            return
        self.pending_approval = None
        segment = self._tool(f"approval-{event.call_id}")
        segment.status, segment.duration = "done", event.waited_s
        verdict = "Approved" if event.approved else "Rejected"
        segment.title = f"{'✅' if event.approved else '❌'} {verdict}: {event.tool}"
        segment.text += f"\n\n**{verdict}** by {event.by}" + (f": {event.reason}" if event.reason else "")

    def note(self, text: str) -> None:
        """Add a visible note (an error, a stop) to the turn."""
        self._close_open()
        self.segments.append(Segment("note", f"note-{len(self.segments)}", text, status="done"))

    def _close_open(self) -> None:
        for segment in self.segments:
            if segment.kind == "reasoning":
                segment.status = "done"


def transcript(runs: list[tuple[str, str, list[Event]]]) -> list[gr.ChatMessage]:
    """Rebuild a stored conversation from (message, run status, run events), oldest first."""
    messages: list[gr.ChatMessage] = []
    for message, status, events in runs:
        view = TurnView()
        for event in events:
            view.add(event)
        if status == "interrupted":
            view.note("⚠️ **Interrupted** by a restart; the answer above is partial.")
        messages += [gr.ChatMessage(role="user", content=inert(message)), *view.messages()]
    return messages


def inert(text: str) -> str:
    """Return markdown that draws `text` without raw HTML and without loading images.

    Images become links a person must click; every "<" becomes "&lt;", so no tag survives
    (inside a code span it shows as "&lt;": safe beats pretty for text nobody vetted).
    """
    text = EMPTY_IMAGE_LABEL.sub("[image", text)
    return IMAGE_MARK.sub("", text).replace("<", "&lt;")


def _message(segment: Segment) -> gr.ChatMessage:
    # Answers, tool inputs and outputs, hits and error texts all come from outside: drawn inert.
    if segment.kind in ("answer", "note", "run"):
        return gr.ChatMessage(role="assistant", content=inert(segment.text))
    if segment.kind == "work":  # an agent's own words, inside its group
        return gr.ChatMessage(role="assistant", content=inert(segment.text),
                              metadata={"title": "✍️ What it wrote", "id": segment.key, "parent_id": segment.parent,
                                        "status": "done" if segment.status == "done" else "pending"})
    metadata: dict = {"title": inert(segment.title), "id": segment.key, "status": segment.status}
    if segment.parent:
        metadata["parent_id"] = segment.parent
    if segment.duration is not None:
        metadata["duration"] = round(segment.duration, 3)
    return gr.ChatMessage(role="assistant", content=inert(segment.text), metadata=metadata)


def _section(chunk: str) -> tuple[str, str]:
    """Split a chunk ("Heading: sentence") into its section and its sentence."""
    head, sep, sentence = chunk.partition(": ")
    return (head, sentence) if sep and len(head) <= 80 else ("", chunk)


def _hits_markdown(event: RetrievalHits) -> str:
    if not event.hits:
        return "**Hits** none"
    rows = [f"- `{hit.source}` · score {hit.score:.2f} · `{hit.chunk_id}` — {hit.text}" for hit in event.hits]
    return "**Hits**\n" + "\n".join(rows)
