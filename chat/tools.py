"""The agent's tools: knowledge-base search and support-ticket escalation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal, Protocol

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field, ValidationError

from chat.invalid_input import problem, where
from chat.prompts import facts_list
from chat.tickets import TicketStore
from rag.types import Hit

SEARCH_TOOL = "search_knowledge_base"
TICKET_TOOL = "create_support_ticket"


class Searchable(Protocol):
    """What the search tool needs from a knowledge base (an `asearch` coroutine is used if it has one)."""

    def search(self, query: str, k: int) -> list[Hit]: ...


# How much of a query the search reads: its beginning, up to this many characters. The search takes
# a query of any length rather than refusing a long one, because the chat accepts messages of up to
# MAX_MESSAGE_CHARS and a user expects a long message to be searched too; the embedding model
# (all-MiniLM-L6-v2) reads only its first 256 word pieces, about 1,000 characters of English, so
# the rest would change nothing. One limit, here, for every query: the graph's and the model's.
SEARCH_QUERY_CHARS = 1000


def search_query(text: str) -> str:
    """Return the part of `text` the search reads: its first SEARCH_QUERY_CHARS characters."""
    return text[:SEARCH_QUERY_CHARS]


class SearchInput(BaseModel):
    query: str = Field(min_length=1, description="What to look up.")


class TicketInput(BaseModel):
    summary: str = Field(
        min_length=5, max_length=500, description="One or two sentences: what the customer needs."
    )
    severity: Literal["low", "normal", "high", "urgent"] = Field(
        description="How urgent the problem is for the customer."
    )


def describe_invalid_input(tool: str, error: ValidationError) -> str:
    """Return, in our words, why a tool call's input does not fit the tool's schema.

    Built from pydantic's structured `errors()`, never its text (chat/invalid_input.py).
    """
    problems = [f"{where(item)} {problem(item)}" for item in error.errors()]
    return f"The tool {tool} was given input it cannot use, so nothing was done: {'; '.join(problems)}."


def needs_approval(tool: BaseTool | None) -> bool:
    """Return whether a tool changes something outside the conversation, so a person must approve it."""
    return bool(tool is not None and (tool.metadata or {}).get("side_effects"))


def format_hits(hits: list[Hit]) -> str:
    """Render hits as the facts block the model reads."""
    return facts_list([hit.text for hit in hits])


def knowledge_base_of(config: RunnableConfig | None) -> str | None:
    """Return the name of the knowledge base a run uses (None: the default)."""
    return ((config or {}).get("configurable") or {}).get("knowledge_base")


def build_tools(library: Callable[[str | None], Searchable], tickets: TicketStore, top_k: int,
                *, min_score: float = 0.0) -> list[BaseTool]:
    """Return the agent's tools: search over the run's knowledge base (`library(name)`), and tickets.

    Hits scoring below `min_score` are dropped: an off-topic sentence must not become a fact.
    """

    def relevant(hits: list[Hit]) -> tuple[str, list[Hit]]:
        kept = [hit for hit in hits if hit.score >= min_score]
        return format_hits(kept), kept

    def search_knowledge_base(query: str, config: RunnableConfig) -> tuple[str, list[Hit]]:
        return relevant(library(knowledge_base_of(config)).search(search_query(query), top_k))

    async def asearch_knowledge_base(query: str, config: RunnableConfig) -> tuple[str, list[Hit]]:
        kb = library(knowledge_base_of(config))
        query = search_query(query)
        asearch = getattr(kb, "asearch", None)
        return relevant(await (asearch(query, top_k) if asearch else asyncio.to_thread(kb.search, query, top_k)))

    def create_support_ticket(summary: str, severity: str, config: RunnableConfig) -> str:
        thread_id = config.get("configurable", {}).get("thread_id")
        ticket_id = tickets.create(summary, severity, thread_id)
        return f"Created support ticket {ticket_id} ({severity}). A person will follow up."

    return [
        StructuredTool.from_function(
            search_knowledge_base,
            coroutine=asearch_knowledge_base,  # the graph's path: awaits the embedding, holds no thread
            name=SEARCH_TOOL,
            description="Search the support knowledge base for facts about orders, "
            "returns, shipping, warranty, payments and products.",
            args_schema=SearchInput,
            response_format="content_and_artifact",
        ),
        StructuredTool.from_function(
            create_support_ticket,
            name=TICKET_TOOL,
            description="Escalate to a human: open a support ticket and return its id.",
            args_schema=TicketInput,
            metadata={"side_effects": True},  # it writes a ticket: runs only once a person approves
        ),
    ]
