"""The page: one tab per module (ui/chat_page.py, knowledge_page.py, traces_page.py, evals_page.py), and who
is looking.

`build_page(glassbox)` returns the Blocks; app.py adds the /ask API and mounts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr

from ui import activity, chat_page, evals_page, knowledge_page, traces_page
from ui.visitors import visitor_state

if TYPE_CHECKING:
    from app import Glassbox

CLOSE_SIDEBAR_ON_A_PHONE = """() => {
  if (window.innerWidth < 768) {
    const sidebar = document.querySelector('#gb-sidebar');
    if (sidebar && sidebar.classList.contains('open')) sidebar.querySelector('.toggle-button')?.click();
  }
}"""
CSS = chat_page.CSS + activity.CSS + knowledge_page.CSS + traces_page.CSS + evals_page.CSS


def build_page(glassbox: Glassbox) -> gr.Blocks:
    """Build the page: the Chat tab first, then Knowledge, Traces and Evaluations."""
    with gr.Blocks(title="Glassbox") as demo:
        visitor = visitor_state(glassbox.access)
        sidebar = gr.Sidebar(label="Conversations", elem_id="gb-sidebar")  # the Chat tab fills it
        with gr.Tabs(elem_id="gb-tabs") as tabs:
            with gr.Tab("Chat", id="chat", elem_id="gb-tab-chat") as chat:
                chat_views = chat_page.add_chat_tab(glassbox, demo, chat, visitor, sidebar)
            with gr.Tab("Knowledge", id="knowledge", elem_id="gb-tab-knowledge") as knowledge:
                knowledge_page.add_knowledge_tab(glassbox, demo, knowledge, visitor)
            with gr.Tab("Traces", id="traces", elem_id="gb-tab-traces") as runs:
                traces_page.add_traces_tab(glassbox, demo, runs, tabs, visitor, chat_views)
            with gr.Tab("Evaluations", id="evals", elem_id="gb-tab-evals") as evals:
                evals_page.add_evals_tab(glassbox, demo, evals, visitor)
        # On a phone the open sidebar covers the whole page: it starts closed there, one tap away.
        demo.load(None, None, None, js=CLOSE_SIDEBAR_ON_A_PHONE)
    return demo
