"""The Chat tab: chat, the live event panel, the observability panel, the sidebar, and their handlers.

`add_chat_tab(glassbox, demo, tab, visitor)` builds it inside the page (ui/page.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr

from auth.callers import Caller
from chat.service import AgentService, MessageRefused, NotYours, ThreadBusy, WrongKnowledgeBase
from chat.team import TEAM
from metrics.counters import counters_markdown
from ui.activity import AGENT_GRAPH_CHOICES, activity_html
from ui.conversations import choices, remember, reopen
from ui.observability import ObservabilityFeed, status_markdown
from ui.panel import ALL_AGENTS, LEVELS, panel_html
from ui.render import RUN_LINK, TurnView, inert
from ui.visitors import caller_of

if TYPE_CHECKING:
    from app import Glassbox

UI_FRAME_S = 0.05  # while tokens stream, redraw the page at most this often
INTRO = ("Ask a question about the documents. The answer streams into the chat; beside it (below it, on a "
         "phone), every step the agent takes appears as it happens: searching the documents, calling a tool, "
         "the model writing. Further down: how fast the answers came.")
GLOSSARY = """
- **Run**: one question and everything the agent did to answer it. Each answer ends with a link to its run.
- **Retrieval**: searching the knowledge base's documents for the passages that answer the question.
- **Tool call**: the agent using a tool, such as that search, or making a support ticket (which waits for your approval).
- **TTFT, time to first token**: how long until the first words of the answer appeared.
- **Latency**: how long the whole answer took, from sending the question to its last word.
- **p50, p90, p95**: half, 90% or 95% of answers were at least this fast.
- **met / missed**: whether that figure is within the target set for this app (TTFT p90 under 1 s, latency p95 under 2 s).
- **Grounded**: the answer's facts were found in the documents it cites; *not supported* means check it.
"""
# Stay at the newest event while a run streams, unless the visitor scrolled up to read.
FOLLOW_THE_RUN = """() => {
  if (!window.gbFollow) {
    window.gbFollow = true;
    document.addEventListener('scroll', (e) => {
      const el = e.target;
      if (el && el.classList && el.classList.contains('gb-panel'))
        window.gbFollow = el.scrollTop + el.clientHeight >= el.scrollHeight - 24;
    }, true);
  }
  const el = document.querySelector('#gb-panel .gb-panel');
  if (el && window.gbFollow) el.scrollTop = el.scrollHeight;
}"""
SECTIONS = "Jump to: [the chat](#gb-chat) · [the agent's steps](#gb-panel) · [how fast](#gb-observability)"
WATCH_LIFETIME_S = 60.0  # a page's observability watcher ends after this; the page's timer starts the next
# Tall enough to read an answer and its sources, short enough that the message box stays on screen
# under the page's header on a 900-pixel-high laptop screen (it fell below the fold at 520 px).
CHAT_HEIGHT = "clamp(360px, calc(100vh - 520px), 640px)"

CSS = """
.gb-panel { max-height: min(70vh, 640px); overflow-y: auto; font-size: 0.85em; }
.gb-panel td:nth-child(2) { white-space: nowrap; }
.gb-panel td:nth-child(3) { overflow-wrap: anywhere; }
.gb-panel details.gb-raw summary { color: var(--body-text-color-subdued); font-size: 0.85em; cursor: pointer; }
.gb-panel pre { white-space: pre-wrap; font-size: 0.85em; margin: 2px 0; }
#gb-sections { display: none; }
@media (max-width: 767px) {
  #gb-sections { display: block; position: sticky; top: 0; z-index: 5; background: var(--background-fill-primary); }
  .gb-panel { max-height: 45vh; }
}
.gb-panel table { width: 100%; border-collapse: collapse; }
.gb-panel td, .gb-panel th { padding: 2px 6px; border-bottom: 1px solid var(--border-color-primary); vertical-align: top; }
.gb-panel td:first-child { white-space: nowrap; color: var(--body-text-color-subdued); font-variant-numeric: tabular-nums; }
.gb-error td, .gb-cancelled td { color: var(--error-text-color); }
.gb-run_end td { font-weight: 600; }
.gb-empty { color: var(--body-text-color-subdued); padding: 1em; }
/* The charts' axes end at their outermost points, and Vega clips marks to the plot: the highest,
   first and last points were drawn cut in half. Axis limits sent with each update left Gradio's
   plot stale or empty at times (tried and reverted); letting the points overhang the edge is safe. */
#gb-ttft-plot g.mark-symbol, #gb-latency-plot g.mark-symbol { clip-path: none; }
/* On a phone the percentiles' table broke words mid-way ("valu e"); whole words, tighter cells. */
#gb-targets th, #gb-targets td { word-break: normal; overflow-wrap: normal; padding: 4px 8px; }
"""


@dataclass(frozen=True)
class ChatViews:
    """The Chat tab's parts another tab writes to: a replay plays into them, a chart point opens a run."""

    chatbot: gr.Chatbot
    panel: gr.HTML
    level: gr.Radio
    thread_id: gr.State
    run_events: gr.State
    charts: tuple[gr.ScatterPlot, gr.ScatterPlot]
    activity: gr.HTML  # the team's "now working" line


def run_of_answer(history: list, index: object) -> str | None:
    """The run an answer belongs to: the first run link at or after it (each turn ends with one)."""
    position = index[0] if isinstance(index, (list, tuple)) else index
    if not isinstance(position, int) or not 0 <= position < len(history):
        return None
    for message in history[position:]:
        content = message.get("content") if isinstance(message, dict) else getattr(message, "content", "")
        found = RUN_LINK.search(content if isinstance(content, str) else str(content))
        if found:
            return found.group(1)
    return None


async def run_turn(service: AgentService, message: str, thread_id: str, caller: Caller,
                   knowledge_base: str | None = None, agent_graph: str | None = None) -> AsyncIterator[TurnView]:
    """Yield the turn's view after each event; a service fault becomes a note in it."""
    view = TurnView()
    try:
        async for event in service.stream(message, thread_id, caller, knowledge_base, agent_graph):
            view.add(event)
            yield view
    except (ThreadBusy, NotYours, WrongKnowledgeBase) as error:
        view.note(f"⚠️ {error}")
        yield view


def add_chat_tab(glassbox: Glassbox, demo: gr.Blocks, tab: gr.Tab, visitor: gr.BrowserState,
                 sidebar: gr.Sidebar) -> ChatViews:
    """Build the Chat tab and its handlers inside the page being built; its conversation list
    goes into the page's `sidebar` (a sidebar must sit at the top of the page, not in a tab).
    Returns the parts the Traces tab writes to (ui/page.py)."""
    settings, service, traces, access = glassbox.settings, glassbox.service, glassbox.traces, glassbox.access

    def page_caller(visitor: str, profile: gr.OAuthProfile | None) -> Caller:
        return caller_of(access, visitor, profile)

    def knowledge_bases() -> tuple[list[str], str]:
        """Return the knowledge bases visitors may choose among, and the default."""
        library, default = service.knowledge, service.default_knowledge_base
        return (library.names() if library else [default]), default

    def identity_of(name: str) -> tuple[str, list[dict[str, str]]]:
        """Return the chat's placeholder and clickable example questions for a knowledge base."""
        library = service.knowledge
        if library is None or not library.exists(name):
            return "Ask a question about the documents…", []
        manifest = library.manifest(name)
        about = manifest.description or f"the knowledge base {name}"
        return (f"**{inert(manifest.assistant_name[:1].upper() + manifest.assistant_name[1:])}** · {inert(about)}",
                [{"text": question} for question in manifest.examples])

    def chat_for(name: str):
        placeholder, examples = identity_of(name)
        return gr.update(value=[], placeholder=placeholder, examples=examples or None)

    async def show_knowledge_bases(current: str):
        while service.status == "warming up":  # the list is known once warm; sleeping holds no thread
            await asyncio.sleep(0.5)
        names, default = knowledge_bases()
        value = current if current in names else default
        return gr.update(choices=names, value=value), chat_for(value)

    def offer_knowledge_bases(current: str):
        """The admin may have added or deleted some in the Knowledge tab meanwhile."""
        names, default = knowledge_bases()
        return gr.update(choices=names, value=current if current in names else default)

    def switch_knowledge_base(name: str, thread_id: str, level: str):
        """A conversation answers from one knowledge base: choosing another starts a new one."""
        fresh, _, html, events, listed = new_conversation(thread_id, level)
        return fresh, chat_for(name), html, events, listed

    def feedback(history: list, visitor: str, reaction: gr.LikeData, profile: gr.OAuthProfile | None = None):
        """👍 or 👎 on an answer: a reviewer note on its run (pass or fail), by "the chat"."""
        run_id = run_of_answer(history, reaction.index)
        if run_id is None or reaction.liked is None:
            return
        noted = traces.add_note(page_caller(visitor, profile), run_id, "the chat", "pass" if reaction.liked else "fail",
                                "👍 in the chat" if reaction.liked else "👎 in the chat")
        if noted is not None:
            gr.Info("Thanks: noted on the run (see it in the Traces tab).")

    def ask_example(example: gr.SelectData):
        return example.value["text"] if isinstance(example.value, dict) else str(example.value)

    async def respond(message: str, history: list, thread_id: str, level: str, visitor: str,
                      knowledge: str, agent_graph: str, agent: str, profile: gr.OAuthProfile | None = None):
        """Stream one turn into the chat, the panel and the activity line; refuse bad input without losing it."""
        nothing = (gr.skip(),) * 7
        try:
            service.check(message or "")
        except MessageRefused as refused:  # the text stays in the box: nothing is lost
            gr.Warning(f"{refused} Your text is still in the box.")
            yield nothing
            return
        if not visitor and settings.auth_mode != "local" and profile is None:
            gr.Warning("The page is still starting; send again in a moment. Your text is still in the box.")
            yield nothing
            return
        if service.is_busy(thread_id):
            gr.Warning("An answer is still streaming here: wait for it, or press Stop. Your text is still in the box.")
            yield nothing
            return
        history = [*history, gr.ChatMessage(role="user", content=inert(message))]
        waiting = [gr.ChatMessage(role="assistant", content="⏳ Warming up: your question will be answered as soon as the model is ready.")]
        yield ("", history + (waiting if service.status == "warming up" else []), panel_html([], level), [], gr.skip(),
               gr.update(interactive=True), "")
        last_frame = 0.0
        view = TurnView()
        caller = page_caller(visitor, profile)
        async for view in run_turn(service, message, thread_id, caller, knowledge or None, agent_graph or None):
            latest = view.events[-1] if view.events else None
            # Every step is drawn; tokens at most once a frame. The run always ends on run_end,
            # which is drawn, so no token is left undrawn.
            if latest is None or latest.type != "token" or time.monotonic() - last_frame >= UI_FRAME_S:
                last_frame = time.monotonic()
                asking = gr.update(visible=view.pending_approval is not None)
                # Stop goes off in the same update that draws run_end: a separate, later update could
                # land after the next message had turned it on again. Every frame says it, rather than
                # skipping: Gradio sends a frame as a diff of the last, and a skip after "on" reads
                # as "delete interactive"; under load the button sometimes stayed off for a whole run.
                ended = latest is not None and latest.type == "run_end"
                stop = gr.update(interactive=not ended)
                yield (gr.skip(), history + view.messages(), panel_html(view.events, level, agent), view.events, asking,
                       stop, activity_html(view))
        if not (view.events and view.events[-1].type == "run_end"):  # refused (busy elsewhere): no run to stop
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.update(interactive=False), gr.skip()

    async def stop(thread_id: str) -> None:  # async: runs on the event loop, where the run's task lives
        service.cancel(thread_id)

    def decide(thread_id: str, by: str, approved: bool):
        """Answer the approval this conversation's run waits for (the thread is this page's own)."""
        waiting = service.approvals.pending_in_thread(thread_id)
        reason = "" if approved else "rejected in the chat"
        if waiting is None or not service.approvals.decide(waiting.run_id, approved, by, reason):
            gr.Warning("Nothing is waiting for approval any more.")
        return gr.update(visible=False)

    async def approve(thread_id: str):
        return decide(thread_id, "the chat", approved=True)

    async def reject(thread_id: str):
        return decide(thread_id, "the chat", approved=False)

    def new_conversation(thread_id: str, level: str):
        service.cancel(thread_id)
        return uuid.uuid4().hex, [], panel_html([], level), [], gr.update(value=None)

    def list_conversations(ids: list[str], current: str, caller: Caller, remember_current: bool = False):
        if remember_current and traces.get_thread(caller, current):
            ids = remember(ids, current)
        listed = choices(traces, caller, ids)
        value = current if current in {key for _, key in listed} else None
        return ids, gr.update(choices=listed, value=value)

    def show_conversations(ids: list[str], current: str, visitor: str, profile: gr.OAuthProfile | None = None):
        return list_conversations(ids, current, page_caller(visitor, profile))

    def show_conversations_after_turn(ids: list[str], current: str, visitor: str,
                                      profile: gr.OAuthProfile | None = None):
        return list_conversations(ids, current, page_caller(visitor, profile), remember_current=True)

    def open_conversation(selected: str, current: str, level: str, visitor: str,
                          profile: gr.OAuthProfile | None = None):
        caller = page_caller(visitor, profile)
        if not selected or traces.get_thread(caller, selected) is None:
            gr.Warning("That conversation is gone, or not yours.")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        service.cancel(current)
        history, events = reopen(traces, caller, selected)
        knowledge = traces.get_thread(caller, selected).get("knowledge_base") or gr.skip()
        return selected, history, panel_html(events, level), events, knowledge

    def rename_conversation(title: str, current: str, ids: list[str], visitor: str,
                            profile: gr.OAuthProfile | None = None):
        caller = page_caller(visitor, profile)
        if not title.strip():
            gr.Warning("Type the new title first.")
            return gr.skip(), gr.skip(), gr.skip()
        if not traces.rename_thread(caller, current, title):
            gr.Warning("Send a message first, then give the conversation a title.")
            return gr.skip(), gr.skip(), gr.skip()
        return "", *list_conversations(ids, current, caller)

    def delete_conversation(current: str, ids: list[str], level: str, visitor: str,
                            profile: gr.OAuthProfile | None = None):
        caller = page_caller(visitor, profile)
        traces.delete_thread(caller, current)  # soft: the API can still read it
        fresh, history, html, events, _ = new_conversation(current, level)
        remaining, listed = list_conversations([t for t in ids if t != current], fresh, caller)
        return fresh, history, html, events, remaining, listed

    def known_visitor(visitor: str) -> str:
        return visitor or uuid.uuid4().hex  # a browser's first visit: its anonymous identity

    feed = ObservabilityFeed(service, glassbox.table, glassbox.registry)

    async def watch_figures(drawn: int | None):  # async: on the loop, no worker thread per page
        async for figures in feed.watch(drawn, lifetime_s=WATCH_LIFETIME_S):
            yield figures

    thread_id = gr.State(lambda: uuid.uuid4().hex)  # a new browser session starts a new thread
    run_events = gr.State([])
    charts_drawn = gr.State(None)  # runs_recorded when this page's charts were last drawn
    browser_threads = gr.BrowserState([], storage_key="glassbox-threads", secret=access.secret)
    with sidebar:
        if settings.hf_oauth:  # a Space with hf_oauth: true; signed in, the Space's owner is admin
            gr.LoginButton(elem_id="gb-login")
        conversations = gr.Radio([], label="Your conversations", elem_id="gb-conversations",
                                 info="Your questions are kept here as conversations: pick one to reopen it.")
        title_box = gr.Textbox(placeholder="A new title for this conversation", show_label=False,
                               max_length=200, elem_id="gb-title")
        with gr.Row():
            rename_button = gr.Button("Rename", size="sm", elem_id="gb-rename")
            delete_button = gr.Button("Delete", size="sm", variant="stop", elem_id="gb-delete")
        with gr.Group(visible=False, elem_id="gb-delete-confirm") as confirm_delete:
            gr.Markdown("Delete this conversation? It leaves your list for good.")
            with gr.Row():
                delete_yes = gr.Button("Delete it", size="sm", variant="stop", elem_id="gb-delete-yes")
                delete_no = gr.Button("Keep it", size="sm", elem_id="gb-delete-no")
    with gr.Row(equal_height=False):
        gr.Markdown("## Glassbox · watch the agent think")
        status = gr.Markdown(status_markdown(service), elem_id="gb-status")
    gr.Markdown(INTRO, elem_id="gb-intro")
    with gr.Accordion("What the words on this page mean", open=False, elem_id="gb-glossary"):
        gr.Markdown(GLOSSARY)
    gr.Markdown(SECTIONS, elem_id="gb-sections")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            with gr.Row(equal_height=True):
                knowledge = gr.Dropdown([settings.knowledge_base], value=settings.knowledge_base,
                                        label="Knowledge base (choosing another starts a new conversation)",
                                        elem_id="gb-kb", allow_custom_value=False, scale=3, min_width=220)
                agent_graph = gr.Radio(AGENT_GRAPH_CHOICES, value=settings.agent_graph, label="Who answers",
                                       elem_id="gb-agent-graph", scale=2, min_width=220,
                                       info="A team: a coordinator, specialists side by side, one answer.")
            chatbot = gr.Chatbot(label="Chat", height=CHAT_HEIGHT, elem_id="gb-chat", layout="bubble",
                                 placeholder="Ask a question about the documents…")
            activity = gr.HTML("", elem_id="gb-activity")  # the team's "now working" line, by the input
            with gr.Row():
                box = gr.Textbox(placeholder="Ask a question and press Enter", show_label=False,
                                 scale=5, max_length=settings.max_message_chars, elem_id="gb-input")
                send = gr.Button("Send", variant="primary", scale=1, elem_id="gb-send")
            with gr.Row(visible=False, elem_id="gb-approval") as approval_row:
                approve_button = gr.Button("Approve", variant="primary", elem_id="gb-approve")
                reject_button = gr.Button("Reject", variant="stop", elem_id="gb-reject")
            with gr.Row():
                stop_button = gr.Button("Stop", variant="stop", elem_id="gb-stop", interactive=False)
                new_button = gr.Button("New conversation", elem_id="gb-new")
        with gr.Column(scale=2):
            with gr.Row():
                level = gr.Radio(list(LEVELS), value="full trace", label="Event level", elem_id="gb-level", scale=2)
                agent_filter = gr.Dropdown([ALL_AGENTS, *TEAM.agents], value=ALL_AGENTS, label="Agent",
                                           elem_id="gb-agent-filter", scale=1, allow_custom_value=False)
            panel = gr.HTML(panel_html([], "full trace"), elem_id="gb-panel")
    with gr.Accordion("Observability", open=True, elem_id="gb-observability"):
        with gr.Row():
            # A point per answer, not a line: runs are separate events, and a line through them
            # implied values between runs. Completed runs only, as in the percentiles.
            # Replicas on one database: every replica's runs, a colour each (app.show_the_fleet).
            # The unit is in the title too: Gradio drops the axis titles of a chart first drawn empty.
            fleet = {"color": "replica", "color_title": "replica"} if glassbox.replicas else {}
            ttft_plot = gr.ScatterPlot(x="time", y="ttft_s", title="Time to first token, seconds", **fleet,
                                       x_title="time", y_title="seconds", tooltip=["question", "ttft_s", "run"],
                                       height=220, y_lim=[0, None], x_axis_format="%H:%M:%S",
                                       elem_id="gb-ttft-plot")
            latency_plot = gr.ScatterPlot(x="time", y="latency_s", title="Latency end to end, seconds", **fleet,
                                          x_title="time", y_title="seconds", tooltip=["question", "latency_s", "run"],
                                          height=220, y_lim=[0, None], x_axis_format="%H:%M:%S",
                                          elem_id="gb-latency-plot")
        with gr.Row():  # side by side on a desktop, one above the other on a phone
            with gr.Column(min_width=300):
                counters = gr.Markdown(counters_markdown(glassbox.registry), elem_id="gb-counters")
            with gr.Column(min_width=300):
                target_table = gr.Markdown(elem_id="gb-targets")
    timer = gr.Timer(WATCH_LIFETIME_S + 1)  # starts the next watcher as the last one ends

    private = {"api_visibility": "private"}
    turn = [box, chatbot, thread_id, level, visitor, knowledge, agent_graph, agent_filter]
    outputs = [box, chatbot, panel, run_events, approval_row, stop_button, activity]
    listing = [browser_threads, conversations]
    for trigger in (box.submit, send.click):
        # "multiple": a message sent while an answer streams reaches respond, which says so (the default drops it).
        trigger(respond, turn, outputs, concurrency_limit=None, trigger_mode="multiple", **private).then(
            show_conversations_after_turn, [browser_threads, thread_id, visitor], listing, **private)
    stop_button.click(stop, [thread_id], None, queue=False, **private)
    approve_button.click(approve, [thread_id], approval_row, queue=False, **private)
    reject_button.click(reject, [thread_id], approval_row, queue=False, **private)
    new_button.click(new_conversation, [thread_id, level],
                     [thread_id, chatbot, panel, run_events, conversations], **private).then(
        lambda: "", None, activity, **private)
    conversations.input(open_conversation, [conversations, thread_id, level, visitor],
                        [thread_id, chatbot, panel, run_events, knowledge], **private).then(
        lambda: "", None, activity, **private)
    knowledge.input(switch_knowledge_base, [knowledge, thread_id, level],
                    [thread_id, chatbot, panel, run_events, conversations], **private)
    chatbot.like(feedback, [chatbot, visitor], None, **private)
    chatbot.example_select(ask_example, None, box, **private).then(
        respond, turn, outputs, concurrency_limit=None, **private).then(
        show_conversations_after_turn, [browser_threads, thread_id, visitor], listing, **private)
    rename_button.click(rename_conversation, [title_box, thread_id, browser_threads, visitor],
                        [title_box, *listing], **private)
    delete_button.click(lambda: gr.update(visible=True), None, confirm_delete, **private)
    delete_no.click(lambda: gr.update(visible=False), None, confirm_delete, **private)
    delete_yes.click(lambda: gr.update(visible=False), None, confirm_delete, **private).then(
        delete_conversation, [thread_id, browser_threads, level, visitor],
        [thread_id, chatbot, panel, run_events, browser_threads, conversations], **private)
    panel.change(None, None, None, js=FOLLOW_THE_RUN, **private)
    for choice in (level, agent_filter):
        choice.change(panel_html, [run_events, level, agent_filter], panel, **private)
    figures = [status, ttft_plot, latency_plot, counters, target_table, charts_drawn]
    # One long-lived watcher per page sends only changes (ObservabilityFeed.watch); no concurrency limit.
    for trigger in (demo.load, timer.tick):
        trigger(watch_figures, charts_drawn, figures, show_progress="hidden", concurrency_limit=None, **private)
    demo.load(show_knowledge_bases, knowledge, [knowledge, chatbot], show_progress="hidden", **private)
    tab.select(offer_knowledge_bases, knowledge, knowledge, show_progress="hidden", **private)
    demo.load(known_visitor, visitor, visitor, **private).then(
        show_conversations, [browser_threads, thread_id, visitor], listing, **private)
    return ChatViews(chatbot, panel, level, thread_id, run_events, (ttft_plot, latency_plot), activity)
