"""The page: one tab per module (ui/chat_page.py, ui/knowledge_page.py), and who is looking at it.

`build_page(glassbox)` returns the Blocks; app.py adds the /ask API and mounts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr

from ui import chat_page, knowledge_page
from ui.visitors import visitor_state

if TYPE_CHECKING:
    from app import Glassbox

CSS = chat_page.CSS + knowledge_page.CSS


def build_page(glassbox: Glassbox) -> gr.Blocks:
    """Build the page: the Chat tab first, then the Knowledge tab."""
    with gr.Blocks(title="Glassbox") as demo:
        visitor = visitor_state(glassbox.access)
        sidebar = gr.Sidebar(label="Conversations", elem_id="gb-sidebar")  # the Chat tab fills it
        with gr.Tabs(elem_id="gb-tabs"):
            with gr.Tab("Chat", id="chat", elem_id="gb-tab-chat") as chat:
                chat_page.add_chat_tab(glassbox, demo, chat, visitor, sidebar)
            with gr.Tab("Knowledge", id="knowledge", elem_id="gb-tab-knowledge") as knowledge:
                knowledge_page.add_knowledge_tab(glassbox, demo, knowledge, visitor)
    return demo
