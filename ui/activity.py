"""The team graph on the page: the choice of graph, and the live line by the chat input saying which
agents are working now, with a progress bar."""

from __future__ import annotations

from html import escape

from ui.render import TurnView

# The page's choice of AGENT_GRAPH (the Chat and Evaluations tabs), in a visitor's words.
AGENT_GRAPH_CHOICES = [("One agent", "support"), ("A team of agents", "team")]
CSS = """
#gb-activity .gb-activity { display: flex; align-items: center; gap: 0.75em; flex-wrap: wrap; font-size: 0.9em; }
#gb-activity progress { flex: 1 1 8em; min-width: 8em; height: 0.7em; accent-color: var(--color-accent); }
#gb-activity .gb-working { font-weight: 600; }
"""


def activity_html(view: TurnView) -> str:
    """Return the activity line for a run so far; "" for a single agent's run (nothing to show)."""
    progress = view.progress
    if progress is None and not view.working:
        return ""
    if view.working:
        names = ", ".join(f"{name} agent" for name in view.working)
        now = f'<span class="gb-working">Now working: {escape(names)}</span>'
    else:
        now = '<span class="gb-working">The team is done</span>' if _ended(view) else "<span>Waiting…</span>"
    if progress is None:
        bar = '<progress aria-label="progress"></progress>'  # no plan yet: an indeterminate bar
        count = "planning"
    else:
        bar = f'<progress aria-label="progress" value="{progress.done}" max="{max(progress.planned, 1)}"></progress>'
        count = f"{progress.done} of {progress.planned} agents done"
    return f'<div class="gb-activity" role="status">{now}{bar}<span>{count}</span></div>'


def _ended(view: TurnView) -> bool:
    return bool(view.events) and view.events[-1].type == "run_end"
