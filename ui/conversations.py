"""The page's conversation list: this browser's threads, read back from the trace store."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path

import gradio as gr

from auth.callers import Caller
from chat.events import Event
from traces.store import TraceStore
from ui.render import transcript

MAX_LISTED = 50  # threads shown in the list, most recent first
MAX_RUNS_SHOWN = 50  # runs of a reopened thread put back into the chat


def browser_secret(state_dir: Path) -> str:
    """Return the key that encrypts the browser's thread list, the same across restarts.

    Gradio would pick a new key at every start, and browsers would forget their threads.
    """
    path = state_dir / "browser-state.key"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def remember(thread_ids: list[str] | None, thread_id: str) -> list[str]:
    """Return this browser's thread ids with `thread_id` first."""
    return [thread_id, *[t for t in thread_ids or [] if t != thread_id]][:MAX_LISTED]


def choices(traces: TraceStore, caller: Caller, thread_ids: list[str] | None) -> list[tuple[str, str]]:
    """Return (label, thread id) for this browser's threads the caller still has, most recent first."""
    listed = traces.list_threads(caller, MAX_LISTED, only=list(thread_ids or [])[:MAX_LISTED])
    return [(_label(t), t["id"]) for t in listed]


def reopen(traces: TraceStore, caller: Caller, thread_id: str) -> tuple[list[gr.ChatMessage], list[Event]]:
    """Return a stored thread's chat and the events of its last run."""
    runs = list(reversed(traces.list_runs(caller, thread_id, limit=MAX_RUNS_SHOWN)))
    stored = [(run["message"], run["status"], traces.run_events(caller, run["id"])) for run in runs]
    return transcript(stored), (stored[-1][2] if stored else [])


def _label(thread: dict) -> str:
    when = datetime.fromisoformat(thread["updated_at"]).astimezone()
    return f"{thread['title']} · {when:%d %b %H:%M}"
