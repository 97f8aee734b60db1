"""The Chat tab's event panel: each event of the run as a row a person can read.

A row says what happened in plain words ("searched the knowledge base: 1 hit, returns.md 0.71"),
keeps the event's type beside it for QA, and has the event's raw JSON one click away. Streamed
text is merged into one row, folded behind an ellipsis when long. Everything is escaped once here.
"""

from __future__ import annotations

import json
from html import escape
from typing import Literal, NamedTuple

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
    ModelCallEnded,
    ModelCallStarted,
    NodeEnded,
    NodeStarted,
    Progress,
    ReasoningChunk,
    RetrievalHits,
    RunEnded,
    RunQueued,
    RunStarted,
    Token,
    ToolEnded,
    ToolStarted,
)
from chat.tools import SEARCH_TOOL

Level = Literal["answer only", "full trace"]
ALL_AGENTS = "all agents"  # the agent filter's "no filter"
LEVELS: tuple[Level, ...] = ("answer only", "full trace")
# Events the "answer only" level shows: the reference designs' token-only level plus the
# run's outcome, so a demo still sees how long the answer took and whether it failed.
ANSWER_ONLY = (RunQueued, Token, ApprovalRequired, ApprovalDecided, ErrorOccurred, Cancelled, GroundingChecked,
               RunEnded)
FOLD_CHARS = 160  # streamed text longer than this folds behind its beginning and an ellipsis
EMPTY = '<div class="gb-panel gb-empty">Each step of the agent appears here as it happens: the question, ' \
        "the knowledge-base search and what it found, the model's answer, and how long each took.</div>"


class PanelRow(NamedTuple):
    """One row: seconds since the run started, the event's type (×N when merged), what happened, its JSON."""

    offset: float
    kind: str
    detail: str
    raw: str = ""
    agent: str = ""  # the team agent it came from


def shown_for(event: Event, agent: str) -> bool:
    """Whether the agent filter shows `event`: the agent's own events, handoffs to it, and the run's own."""
    if agent == ALL_AGENTS:
        return True
    if isinstance(event, Handoff):
        return agent in (event.agent, event.to_agent)
    return event.agent == agent or (not event.agent and isinstance(event, (RunQueued, RunStarted, RunEnded,
                                                                           ErrorOccurred, Cancelled)))


def panel_rows(events: list[Event], level: Level, agent: str = ALL_AGENTS) -> list[PanelRow]:
    """Return the panel's rows, of one agent's events if `agent` is given; streamed text is merged into one row."""
    if not events:
        return []
    start = events[0].at
    rows: list[PanelRow] = []
    for event in events:
        if level == "answer only" and not isinstance(event, ANSWER_ONLY) or not shown_for(event, agent):
            continue
        last = rows[-1] if rows else None
        if isinstance(event, (Token, ReasoningChunk)) and last and last.kind.startswith(event.type) \
                and last.agent == event.agent:
            count = int(last.kind.split("×")[1]) + 1 if "×" in last.kind else 2
            rows[-1] = last._replace(kind=f"{event.type} ×{count}", detail=last.detail + event.text)
            continue
        raw = "" if isinstance(event, (Token, ReasoningChunk)) else json.dumps(event.to_dict(), default=str,
                                                                                 ensure_ascii=False, indent=1)
        rows.append(PanelRow(event.at - start, event.type, describe(event), raw, event.agent))
    return rows


def describe(event: Event) -> str:
    """What the event says happened, in plain words."""
    if isinstance(event, (Token, ReasoningChunk)):
        return event.text
    if isinstance(event, RunQueued):
        return f"question received: “{event.message[:80]}”"
    if isinstance(event, RunStarted):
        who = f"the team of {len(event.agents)} agents started" if event.agents else "the agent started"
        return f"{who} · {event.model}" + (f" · knowledge base {event.knowledge_base}" if event.knowledge_base else "")
    if isinstance(event, AgentStarted):
        return f"the {event.agent} agent began: it {event.role}"
    if isinstance(event, AgentEnded):
        return f"the {event.agent} agent finished ({event.status}) in {event.duration_s * 1000:.0f} ms"
    if isinstance(event, Handoff):
        return f"{event.agent} handed over to {event.to_agent}: {event.reason}"
    if isinstance(event, Progress):
        return f"progress: {event.done} of {event.planned} agents done"
    if isinstance(event, NodeStarted):
        return f"step “{event.node}” began"
    if isinstance(event, NodeEnded):
        return f"step “{event.node}” took {event.duration_s * 1000:.0f} ms"
    if isinstance(event, ToolStarted):
        if event.tool == SEARCH_TOOL:
            return f"searching the knowledge base for “{str(event.input.get('query', ''))[:80]}”"
        return f"calling {event.tool} with {json.dumps(event.input, ensure_ascii=False)[:120]}"
    if isinstance(event, ToolEnded):
        if event.error:
            return f"{event.tool} failed after {event.duration_s * 1000:.0f} ms: {event.error}"
        return f"{event.tool} answered in {event.duration_s * 1000:.0f} ms: {event.output[:120]}"
    if isinstance(event, RetrievalHits):
        found = ", ".join(f"{h.source} {h.score:.2f}" for h in event.hits[:3])
        hits = f"{len(event.hits)} hit{'s' if len(event.hits) != 1 else ''}"
        return f"searched the knowledge base: {hits}" + (f", {found}" if found else "") + f" (for “{event.query[:60]}”)"
    if isinstance(event, ApprovalRequired):
        return f"waits for approval to run {event.tool}: {json.dumps(event.input, ensure_ascii=False)[:120]}"
    if isinstance(event, ApprovalDecided):
        verdict = "approved" if event.approved else "rejected"
        return (f"{event.tool} {verdict} by {event.by} after {event.waited_s:.1f} s"
                + (f": {event.reason}" if event.reason else ""))
    if isinstance(event, ModelCallStarted):
        return f"asked the model {event.model} ({len(event.messages)} message{'s' if len(event.messages) != 1 else ''})"
    if isinstance(event, ModelCallEnded):
        first = "–" if event.first_chunk_s is None else f"{event.first_chunk_s * 1000:.0f} ms"
        return (f"the model finished ({event.finish_reason}): first words after {first}, "
                f"{event.duration_s * 1000:.0f} ms in all, {event.input_tokens} tokens in, {event.output_tokens} out"
                + _opening(event.opened_with))
    if isinstance(event, ErrorOccurred):
        return f"error ({event.kind}): {event.message}"
    if isinstance(event, GroundingChecked):
        spans = "; ".join(event.unsupported[:5])
        said = {"grounded": "grounded in the sources", "unsupported": "not supported by the sources",
                "no_sources": "no sources to check against"}.get(event.verdict, event.verdict)
        return f"answer checked: {said}" + (f": {spans}" if spans else "")
    if isinstance(event, Cancelled):
        return f"stopped: {event.reason}"
    if isinstance(event, RunEnded):
        ttft = "–" if event.ttft_s is None else f"{event.ttft_s:.2f} s"
        cited = f" · {len(event.citations)} citation(s)" if event.citations else ""
        return (f"finished, {event.status} · TTFT {ttft} · latency {event.latency_s:.2f} s · "
                f"{event.output_tokens} tokens · {event.tool_calls} tool call(s){cited}")
    return ""


def _opening(words: str) -> str:
    """Say what opened the local model's answer (chat/openings.py), if a rule did."""
    if words == "No":
        return "; its first word, “No”, set because its facts deny a yes"
    return f"; it opened with its fact's first words, “{words}”" if words else ""


def panel_html(events: list[Event], level: Level, agent: str = ALL_AGENTS) -> str:
    """Return the panel's table of events (of one agent's, if `agent` is given) as HTML."""
    rows = panel_rows(events, level, agent)
    if not rows:
        return EMPTY
    body = "".join(f'<tr class="gb-{escape(row.kind.split(" ")[0])}"><td>+{row.offset:.3f}s</td>'
                   f"<td>{escape(row.kind)}{_agent_tag(row.agent)}</td><td>{_cell(row)}</td></tr>" for row in rows)
    return (f'<div class="gb-panel"><table><thead><tr><th>t</th><th>event</th><th>what happened</th></tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _agent_tag(agent: str) -> str:
    return f'<br><span class="gb-agent-tag">{escape(agent)}</span>' if agent else ""


def _cell(row: PanelRow) -> str:
    if row.raw:
        return (f"{escape(row.detail)}<details class=\"gb-raw\"><summary>raw</summary>"
                f"<pre>{escape(row.raw)}</pre></details>")
    if len(row.detail) <= FOLD_CHARS:
        return escape(row.detail)
    head = row.detail[:FOLD_CHARS].rsplit(" ", 1)[0] or row.detail[:FOLD_CHARS]
    return f"<details><summary>{escape(head)}…</summary>{escape(row.detail)}</details>"
