"""The graph's state: the conversation plus what the last retrieval found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

RETRIEVE_NODE = "retrieve"  # the node that searches the knowledge base before the model answers
ANSWER_NODE = "agent"  # the node whose model output is the answer: streamed, timed, repaired


class AgentState(TypedDict, total=False):
    """State carried between nodes and checkpointed per thread."""

    messages: Annotated[list[AnyMessage], add_messages]
    # What the retrieval that opens every run found; replaced each run.
    facts: list[str]


@dataclass(frozen=True)
class GraphShape:
    """What a reader of a graph's stream needs to know of it: its agents, and whose words are the answer."""

    name: str  # AGENT_GRAPH: "support" or "team"
    agents: dict[str, str] = field(default_factory=dict)  # agent name -> its role; empty: a single agent
    answering_agent: str = ""  # the agent whose tokens are the answer ("" for a single agent)
    routing_agent: str = ""  # the agent that chooses the others: its time is the TTFT's routing phase
    searches_message: bool = False  # its first step searches the knowledge base for the message itself


SUPPORT = GraphShape("support", searches_message=True)
