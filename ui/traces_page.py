"""The Traces tab: find a run, see its spans as a waterfall, open a span, compare two runs.

Everyone sees only their own runs (the admin sees all), as through GET /api/runs. A run opens
from the table, from its id, from a chat answer's link (`?run=ID`), and the comparison is
GET /api/runs/compare's (traces/compare.py), drawn.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from chat.config import ID_PATTERN
from chat.spans import span_tree
from traces.compare import compare_runs
from traces.otlp import ImportRefused, import_origin, otlp_lines, runs_from_otlp
from traces.store import RunQuery, stored_time
from ui.observability import charted, run_in
from ui.panel import panel_html
from ui.render import inert
from ui.replay import REPLAY_SPEEDS, charts_with_replay, replay_frames
from ui.run_view import comparison_markdown, first_token_ns, ms, run_summary, span_json, when
from ui.visitors import caller_of
from ui.waterfall import waterfall_svg

if TYPE_CHECKING:
    from app import Glassbox
    from ui.chat_page import ChatViews

CSS = """
/* A phone scrolls the chart sideways rather than shrinking its labels past reading. */
#gb-waterfall .html-container { overflow-x: auto; }
#gb-waterfall svg { min-width: 720px; height: auto; }
/* Twelve columns in the page's width: a smaller type, so grounding and notes are not cut off. */
#gb-runs table { font-size: 0.8rem; }
/* Headers whole-worded ("latency", not "latenc|y"): a size smaller, and never broken inside a word. */
#gb-runs thead span.header { font-size: 0.72rem; word-break: normal; overflow-wrap: normal; }
"""
# Arrived from a link or a chart, the run opens below the filters and the table: scroll to it, or a
# phone shows only the filters.
SHOW_THE_RUN = "() => { document.getElementById('gb-trace-summary')?.scrollIntoView({block: 'start'}); }"
SHOW_A_LINKED_RUN = f"() => {{ if (new URLSearchParams(location.search).get('run')) ({SHOW_THE_RUN})(); }}"
PAGE = 25
EXPORT_MAX = 500  # runs in one "Export these runs" file
ANY = "any"
STATES = [ANY, "completed", "failed", "cancelled", "interrupted", "in_progress", "awaiting_approval", "queued"]
ORDERS = {"newest first": "newest", "oldest first": "oldest", "slowest TTFT first": "slowest_ttft",
          "slowest first": "slowest"}
HEADERS = ["time (UTC)", "run", "thread", "message", "status", "knowledge base", "TTFT ms", "latency ms", "tokens",
           "tool calls", "grounding", "notes"]
NOTE_FILTERS = [ANY, "with notes", "pass", "fail", "flag"]
LABELS = {"pass": "✅ pass", "fail": "❌ fail", "flag": "🚩 flag"}
RUN_ID = re.compile(ID_PATTERN)


def _words(value: str) -> str:
    """A status or verdict as words, so a narrow cell breaks between them: "no sources", not "no_sourc|es"."""
    return value.replace("_", " ")


def add_traces_tab(glassbox: Glassbox, demo: gr.Blocks, tab: gr.Tab, tabs: gr.Tabs, visitor: gr.BrowserState,
                   chat: ChatViews) -> None:
    """Build the Traces tab and its handlers inside the page being built; a point selected on one
    of the Chat tab's charts opens its run here, and a run replays into that tab's chat."""
    traces, access = glassbox.traces, glassbox.access

    def find(filters: tuple, offset: int, visitor: str, profile: gr.OAuthProfile | None):
        """One page of the runs `filters` find, as table rows, with their ids, a label and whether more follow."""
        caller = caller_of(access, visitor, profile)
        _warn_of_unread_times(filters)
        query = _query(filters, offset, PAGE + 1)
        runs = traces.find_runs(caller, query)
        shown = runs[:PAGE]
        rows = [[when(r["created_at"]), r["id"][:8], (r["thread_id"] or "")[:8], (r["message"] or "")[:80],
                 _words(r["status"]) + (" (imported)" if r.get("origin") else ""), r["knowledge_base"] or "",
                 ms(r["ttft_s"]), ms(r["latency_s"]), (r["output_tokens"] or 0), r["tool_calls"] or 0,
                 _words(r["grounding"] or ""), r.get("notes") or 0] for r in shown]
        first = query.offset + 1 if shown else 0
        label = f"Runs {first}–{query.offset + len(shown)}" + (" (more after)" if len(runs) > PAGE else "")
        return rows, [r["id"] for r in shown], label, query.offset, len(runs) > PAGE

    # Gradio hands a handler its inputs by position and the visitor's profile by its annotation (only
    # to parameters before any *args), so each takes the filters by name, in the order of `filters`.
    def search(status, text, thread, model, knowledge, min_ttft, min_latency, since, until, noted, order, visitor,
               profile: gr.OAuthProfile | None = None):
        """The first page of runs the filters find."""
        filters = (status, text, thread, model, knowledge, min_ttft, min_latency, since, until, noted, order)
        rows, ids, label, offset, more = find(filters, 0, visitor, profile)
        return rows, ids, label, offset, gr.update(interactive=False), gr.update(interactive=more)

    def page(step: int):
        def turn(status, text, thread, model, knowledge, min_ttft, min_latency, since, until, noted, order, offset,
                 visitor, profile: gr.OAuthProfile | None = None):
            filters = (status, text, thread, model, knowledge, min_ttft, min_latency, since, until, noted, order)
            rows, ids, label, offset, more = find(filters, max(0, offset + step * PAGE), visitor, profile)
            return rows, ids, label, offset, gr.update(interactive=offset > 0), gr.update(interactive=more)
        return turn

    def offer_models(visitor: str, profile: gr.OAuthProfile | None = None):
        return gr.update(choices=[ANY, *traces.models(caller_of(access, visitor, profile))])

    def pick(ids: list[str], selected: gr.SelectData):
        row = selected.index[0] if isinstance(selected.index, (list, tuple)) else selected.index
        return ids[row] if isinstance(row, int) and 0 <= row < len(ids) else gr.skip()

    def open_run(run_id: str, visitor: str, profile: gr.OAuthProfile | None = None):
        """The run's summary, waterfall, spans to choose from, and the first span's detail."""
        caller = caller_of(access, visitor, profile)
        run_id = (run_id or "").strip()
        run = traces.get_run(caller, run_id) if RUN_ID.match(run_id) else None
        if run is None:
            if run_id:
                gr.Warning("There is no run with that id that is yours to see.")
            return "", "", gr.update(choices=[], value=None), None, [], gr.update(visible=False)
        spans = span_tree(traces.run_events(caller, run_id))
        download = gr.update(value=_export_file(otlp_lines(traces, caller, [run_id]), f"run-{run_id[:8]}"), visible=True)
        choices = [(f"{s.kind}: {s.name} · {(s.end_ns - s.start_ns) / 1e6:.1f} ms", s.span_id) for s in spans]
        return (run_summary(run, spans), waterfall_svg(spans, first_token_ns(spans)),
                gr.update(choices=choices, value=spans[0].span_id if spans else None),
                span_json(spans[0]) if spans else None, [span_json(s) for s in spans], download)

    def export_found(status, text, thread, model, knowledge, min_ttft, min_latency, since, until, noted, order,
                     visitor, profile: gr.OAuthProfile | None = None):
        """Every run the filters find (up to EXPORT_MAX), as one OTLP JSON lines file."""
        caller = caller_of(access, visitor, profile)
        filters = (status, text, thread, model, knowledge, min_ttft, min_latency, since, until, noted, order)
        _warn_of_unread_times(filters)
        query = _query(filters, 0, EXPORT_MAX)
        found = [run["id"] for run in traces.find_runs(caller, query)]
        if not found:
            gr.Warning("No run matches these filters.")
            return gr.update(visible=False)
        return gr.update(value=_export_file(otlp_lines(traces, caller, found[::-1]), f"{len(found)}-runs"),
                         visible=True, label=f"Download {len(found)} runs (.jsonl)")

    def import_file(path: str | None, visitor: str, profile: gr.OAuthProfile | None = None):
        """The admin imports another Glassbox's export: all of it, or nothing and the reason."""
        caller = caller_of(access, visitor, profile)
        if not caller.is_admin:
            gr.Warning("Only the admin imports runs (in AUTH_MODE=local that is you).")
            return
        try:
            data = Path(path).read_bytes() if path else b""
            if len(data) > glassbox.settings.max_upload_bytes:
                raise ImportRefused(f"The file is over the {glassbox.settings.max_upload_bytes:,}-byte limit (MAX_UPLOAD_MB).")
            runs = runs_from_otlp(data.decode("utf-8"))
        except UnicodeDecodeError:
            gr.Warning("That file is not UTF-8 text; a Glassbox export is. Nothing was imported.")
            return
        except ImportRefused as refused:
            gr.Warning(f"{refused} Nothing was imported.")
            return
        except OSError:
            gr.Warning("The uploaded file could not be read back; upload it again. Nothing was imported.")
            return
        finally:
            if path:
                Path(path).unlink(missing_ok=True)
        imported, already = traces.import_runs(caller, runs, import_origin())
        gr.Info(f"Imported {len(imported)} run(s)" + (f"; {len(already)} were here already." if already else "."))

    def replayable(run_id: str, visitor: str, profile: gr.OAuthProfile | None, warn: bool = True) -> list:
        """The open run's events, if it is the caller's; else none, and (with `warn`) a warning."""
        run_id = (run_id or "").strip()
        events = traces.run_events(caller_of(access, visitor, profile), run_id) if RUN_ID.match(run_id) else []
        if not events and warn:
            gr.Warning("Open a run of yours first.")
        return events

    async def replay(run_id: str, speed: str, visitor: str, profile: gr.OAuthProfile | None = None):
        """Play the open run back into the run view's chat and panel, as it happened."""
        events = replayable(run_id, visitor, profile)
        async for frame in replay_frames(run_id.strip(), events, speed) if events else _nothing():
            yield frame.messages, frame.panel

    def to_chat(run_id: str, visitor: str, profile: gr.OAuthProfile | None = None):
        """The Chat tab, for a replay of a run this caller may see."""
        return gr.Tabs(selected="chat") if replayable(run_id, visitor, profile) else gr.skip()

    async def replay_in_chat(run_id: str, speed: str, level: str, visitor: str, profile: gr.OAuthProfile | None = None):
        """Play the open run back in the Chat tab: its chat, its panel and, once it ends, its charts.

        The chat starts a new conversation afterwards: a replay is not one to continue.
        """
        events = replayable(run_id, visitor, profile, warn=False)  # to_chat has said why, if it can't
        if not events:
            return
        yield uuid.uuid4().hex, [], panel_html([], level), [], gr.skip(), gr.skip(), ""
        async for frame in replay_frames(run_id.strip(), events, speed, level):
            charts = (gr.skip(),) * 2
            if frame.ended is not None:
                drawn = charts_with_replay(charted(glassbox.table), frame.ended, getattr(events[0], "message", ""))
                charts = (drawn, drawn)
            yield gr.skip(), frame.messages, frame.panel, frame.events, *charts, frame.activity

    def show_notes(run_id: str, visitor: str, profile: gr.OAuthProfile | None = None) -> str:
        notes = traces.notes(caller_of(access, visitor, profile), (run_id or "").strip()) if RUN_ID.match(
            (run_id or "").strip()) else None
        if not notes:
            return "No reviewer notes yet."
        return "\n".join(f"- {LABELS.get(n['label'], n['label'])} **{inert(n['reviewer'])}**"
                         + (f" on span `{n['span_id']}`" if n["span_id"] else "")
                         + (f" on event {n['event_seq']}" if n["event_seq"] is not None else "")
                         + f" · {when(n['created_at'])}" + (f": {inert(n['text'])}" if n["text"] else "") for n in notes)

    def add_note(run_id: str, reviewer: str, label: str, on_span: bool, span_id: str | None, text: str,
                 visitor: str, profile: gr.OAuthProfile | None = None):
        caller = caller_of(access, visitor, profile)
        run_id = (run_id or "").strip()
        if not (reviewer or "").strip():
            gr.Warning("Give your name as the reviewer first.")
            return gr.skip(), gr.skip()
        added = traces.add_note(caller, run_id, reviewer.strip(), label, text or "",
                                span_id if on_span and span_id else None) if RUN_ID.match(run_id) else None
        if added is None:
            gr.Warning("Open a run of yours first.")
            return gr.skip(), gr.skip()
        return show_notes(run_id, visitor, profile), ""

    def show_span(span_id: str | None, details: list[dict[str, Any]]):
        return next((detail for detail in details if detail["span_id"] == span_id), None)

    def compare(run_id: str, other: str, visitor: str, profile: gr.OAuthProfile | None = None):
        caller = caller_of(access, visitor, profile)
        ids = [(run_id or "").strip(), (other or "").strip()]
        if not all(RUN_ID.match(i) and traces.get_run(caller, i) for i in ids):
            gr.Warning("Open a run first, then give the id of another run of yours to compare it with.")
            return ""
        return comparison_markdown(ids, compare_runs(*(traces.run_events(caller, i) for i in ids)))

    def from_link(visitor: str, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """A chat answer's link, `?run=ID`, opens that run here."""
        wanted = (request.query_params.get("run") or "") if request else ""
        if not RUN_ID.match(wanted):
            return (gr.skip(),) * 8
        return gr.Tabs(selected="traces"), wanted, *open_run(wanted, visitor, profile)

    gr.Markdown("### Runs\nEvery run of yours, newest first. Filter, then click a row (or paste a run id) to "
                "open it: its spans as a waterfall, each span's inputs and outputs, and a comparison with another run.")
    with gr.Row(equal_height=True):
        status = gr.Dropdown([(_words(state), state) for state in STATES], value=ANY, label="Status",
                             elem_id="gb-runs-status", min_width=140)  # shown as the table shows them
        text = gr.Textbox(label="Text in the message or answer", max_length=200, elem_id="gb-runs-q", min_width=200)
        thread = gr.Textbox(label="Thread id", max_length=128, elem_id="gb-runs-thread", min_width=160)
        model = gr.Dropdown([ANY], value=ANY, label="Model", elem_id="gb-runs-model", min_width=160)
        knowledge = gr.Dropdown([ANY], value=ANY, label="Knowledge base", elem_id="gb-runs-kb", min_width=140)
    with gr.Row(equal_height=True):
        min_ttft = gr.Number(label="TTFT at least (ms)", minimum=0, elem_id="gb-runs-ttft", min_width=110)
        min_latency = gr.Number(label="Latency at least (ms)", minimum=0, elem_id="gb-runs-latency", min_width=110)
        # Typed or picked as UTC, like the table's times; read by _stored_time, not by Gradio.
        since = gr.DateTime(label="From (UTC)", type="string", timezone="UTC", elem_id="gb-runs-since", min_width=180)
        until = gr.DateTime(label="To (UTC)", type="string", timezone="UTC", elem_id="gb-runs-until", min_width=180)
        noted = gr.Dropdown(NOTE_FILTERS, value=ANY, label="Reviewer notes", elem_id="gb-runs-notes", min_width=130)
        order = gr.Dropdown(list(ORDERS), value="newest first", label="Order", elem_id="gb-runs-order", min_width=150)
        search_button = gr.Button("Search", variant="primary", elem_id="gb-runs-search", scale=0, min_width=100)
    table = gr.Dataframe(headers=HEADERS, interactive=False, elem_id="gb-runs", max_height=420, wrap=True,
                         # In pixels, 962 in all: the page's width on a laptop; a phone scrolls it sideways.
                         column_widths=["100px", "88px", "84px", "130px", "92px", "86px", "58px", "68px", "62px",
                                        "54px", "86px", "54px"])
    with gr.Row(equal_height=True):
        import_button = gr.UploadButton("Import runs (.jsonl)", size="sm", scale=0, min_width=170, file_count="single",
                                        type="filepath", elem_id="gb-runs-import")
        export_button = gr.Button("Export these runs", size="sm", scale=0, min_width=150, elem_id="gb-runs-export")
        export_file = gr.DownloadButton("Download (.jsonl)", visible=False, size="sm", scale=0, min_width=200,
                                        elem_id="gb-runs-download")
        previous = gr.Button("← Newer", size="sm", interactive=False, scale=0, min_width=100, elem_id="gb-runs-prev")
        label = gr.Markdown(elem_id="gb-runs-page")
        following = gr.Button("Older →", size="sm", interactive=False, scale=0, min_width=100, elem_id="gb-runs-next")
    ids, offset, spans = gr.State([]), gr.State(0), gr.State([])
    with gr.Row(equal_height=True):
        run_box = gr.Textbox(label="Run id", max_length=128, elem_id="gb-trace-run", scale=4)
        open_button = gr.Button("Open", elem_id="gb-trace-open", scale=0, min_width=100)
    summary = gr.Markdown(elem_id="gb-trace-summary")
    download = gr.DownloadButton("Download this run (.jsonl, OpenTelemetry)", visible=False, size="sm",
                                 elem_id="gb-trace-download")
    waterfall = gr.HTML(elem_id="gb-waterfall")
    with gr.Row(equal_height=False):
        span_choice = gr.Dropdown([], label="Span", elem_id="gb-span", scale=1, min_width=240)
        span_detail = gr.JSON(label="What happened in it", elem_id="gb-span-detail", scale=2)
    with gr.Accordion("Reviewer notes", open=True, elem_id="gb-notes"):
        notes_list = gr.Markdown(elem_id="gb-notes-list")
        with gr.Row(equal_height=True):
            reviewer = gr.Textbox(label="Reviewer", max_length=80, elem_id="gb-note-reviewer", min_width=140)
            label = gr.Radio(list(LABELS), value="flag", label="Label", elem_id="gb-note-label", min_width=200)
            on_span = gr.Checkbox(label="On the span chosen above", elem_id="gb-note-on-span", min_width=150)
        with gr.Row(equal_height=True):
            note_text = gr.Textbox(label="Note", max_length=4000, elem_id="gb-note-text", scale=4)
            note_button = gr.Button("Add note", elem_id="gb-note-add", scale=0, min_width=110)
    with gr.Accordion("Replay this run", open=False, elem_id="gb-replay"):
        with gr.Row(equal_height=True):
            speed = gr.Radio(list(REPLAY_SPEEDS), value="1×", label="Speed", elem_id="gb-replay-speed", scale=3)
            replay_button = gr.Button("Replay here", elem_id="gb-replay-button", scale=0, min_width=120)
            replay_chat_button = gr.Button("Replay in the Chat tab", elem_id="gb-replay-in-chat", scale=0,
                                           min_width=190)
        with gr.Row(equal_height=False):
            replay_chat = gr.Chatbot(label="Replay (as it happened)", height=360, layout="bubble",
                                     elem_id="gb-replay-chat", scale=3)
            with gr.Column(scale=2, min_width=300):
                replay_panel = gr.HTML(elem_id="gb-replay-panel")
    with gr.Accordion("Compare with another run", open=False, elem_id="gb-compare"):
        with gr.Row(equal_height=True):
            other_box = gr.Textbox(label="The other run's id", max_length=128, elem_id="gb-compare-run", scale=4)
            compare_button = gr.Button("Compare", elem_id="gb-compare-button", scale=0, min_width=100)
        comparison = gr.Markdown(elem_id="gb-comparison")

    private = {"api_visibility": "private"}
    filters = [status, text, thread, model, knowledge, min_ttft, min_latency, since, until, noted, order]  # _query's order
    listed = [table, ids, label, offset, previous, following]
    viewed = [summary, waterfall, span_choice, span_detail, spans, download]
    export_button.click(export_found, [*filters, visitor], export_file, **private)
    note_button.click(add_note, [run_box, reviewer, label, on_span, span_choice, note_text, visitor],
                      [notes_list, note_text], **private)
    replay_button.click(replay, [run_box, speed, visitor], [replay_chat, replay_panel], concurrency_limit=None,
                        **private)
    replay_chat_button.click(to_chat, [run_box, visitor], tabs, **private).then(
        replay_in_chat, [run_box, speed, chat.level, visitor],
        [chat.thread_id, chat.chatbot, chat.panel, chat.run_events, *chat.charts, chat.activity],
        concurrency_limit=None, **private)
    import_button.upload(import_file, [import_button, visitor], None, **private).then(
        search, [*filters, visitor], listed, **private)
    for trigger in (search_button.click, text.submit, thread.submit, tab.select):
        trigger(search, [*filters, visitor], listed, **private)
    previous.click(page(-1), [*filters, offset, visitor], listed, **private)
    following.click(page(+1), [*filters, offset, visitor], listed, **private)
    tab.select(lambda: gr.update(choices=[ANY, *(_names(glassbox))]), None, knowledge, **private)
    tab.select(offer_models, visitor, model, **private)
    table.select(pick, ids, run_box, **private).then(open_run, [run_box, visitor], viewed, **private).then(
        show_notes, [run_box, visitor], notes_list, **private)
    for trigger in (open_button.click, run_box.submit):
        trigger(open_run, [run_box, visitor], viewed, **private).then(show_notes, [run_box, visitor], notes_list,
                                                                      **private)
    span_choice.input(show_span, [span_choice, spans], span_detail, **private)
    compare_button.click(compare, [run_box, other_box, visitor], comparison, **private)
    demo.load(from_link, [visitor], [tabs, run_box, *viewed], **private).then(
        show_notes, [run_box, visitor], notes_list, **private).then(None, None, None, js=SHOW_A_LINKED_RUN)

    def from_chart(selected: gr.SelectData):
        run_id = run_in(glassbox.table, selected.index)
        if run_id is None:
            return gr.skip(), gr.skip()
        return gr.Tabs(selected="traces"), run_id

    for chart in chat.charts:
        chart.select(from_chart, None, [tabs, run_box], **private).then(open_run, [run_box, visitor], viewed,
                                                                         **private).then(
            show_notes, [run_box, visitor], notes_list, **private).then(None, None, None, js=SHOW_THE_RUN)


async def _nothing():
    return
    yield


def _query(filters: tuple, offset: int, limit: int) -> RunQuery:
    """The tab's filters, in the order of its `filters` list, as a store query."""
    status, text, thread, model, knowledge, min_ttft, min_latency, since, until, noted, order = filters
    note = None if noted in (ANY, None, "") else "any" if noted == "with notes" else noted
    return RunQuery(status=_chosen(status), q=(text or "").strip()[:200] or None, note=note,
                    thread_id=(thread or "").strip()[:128] or None, model=_chosen(model),
                    knowledge_base=_chosen(knowledge),
                    min_ttft_s=(min_ttft / 1000) if min_ttft else None,
                    min_latency_s=(min_latency / 1000) if min_latency else None,
                    since=_stored_time(since), until=_stored_time(until), order=ORDERS.get(order, "newest"),
                    limit=limit, offset=max(0, int(offset or 0)))


def _chosen(value: str | None) -> str | None:
    return None if value in (ANY, "", None) else value


def _stored_time(text: str | None) -> str | None:
    """A typed or picked time as the store writes created_at (stored_time); None when empty or
    unreadable (no bound: _warn_of_unread_times says so)."""
    try:
        return stored_time((text or "").strip()[:40])
    except ValueError:
        return None


def _warn_of_unread_times(filters: tuple) -> None:
    unread = [name for name, text in zip(("From", "To"), filters[7:9], strict=True)
              if (text or "").strip() and _stored_time(text) is None]
    if unread:
        gr.Warning(f"{' and '.join(unread)}: write a time as 2026-11-23 14:30 (UTC), or leave it empty. "
                   "Runs were found without that bound.")


def _export_file(lines: str, name: str) -> str:
    """Write an export where Gradio can serve it (the temp dir: APP_STATE_DIR/tmp under `python app.py`);
    exports older than an hour are removed first."""
    folder = Path(tempfile.gettempdir()) / "glassbox-exports"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.jsonl"):
        if time.time() - old.stat().st_mtime > 3600:
            old.unlink(missing_ok=True)
    handle, path = tempfile.mkstemp(prefix=f"glassbox-{name}-", suffix=".jsonl", dir=folder)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(lines)
    return path


def _names(glassbox: Glassbox) -> list[str]:
    library = glassbox.service.knowledge
    return library.names() if library is not None else []






