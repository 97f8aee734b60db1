"""Conversation memory in SQLite (chat/sqlite_memory.py): LangGraph's tables, one thread hop per call."""

from __future__ import annotations

import asyncio

import aiosqlite
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import START, MessagesState, StateGraph

from chat.sqlite_memory import ThreadedSqliteSaver


def echo_graph(saver):
    async def answer(state: MessagesState) -> dict:
        return {"messages": [AIMessage(f"heard {len(state['messages'])}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    return builder.compile(checkpointer=saver)


def thread(name: str) -> dict:
    return {"configurable": {"thread_id": name}}


async def test_a_conversation_stored_by_the_async_saver_is_remembered(tmp_path):
    # Memory written before this saver (AsyncSqliteSaver, aiosqlite) is read as it was.
    path = tmp_path / "checkpoints.sqlite3"
    async with aiosqlite.connect(path) as connection:
        await echo_graph(AsyncSqliteSaver(connection)).ainvoke({"messages": [HumanMessage("one")]}, thread("t1"))

    saver = ThreadedSqliteSaver.open(path)
    try:
        state = await echo_graph(saver).ainvoke({"messages": [HumanMessage("two")]}, thread("t1"))
        assert [m.content for m in state["messages"]] == ["one", "heard 1", "two", "heard 3"]
        assert len([c async for c in saver.alist(thread("t1"))]) >= 2
    finally:
        saver.close()


async def test_concurrent_conversations_each_keep_their_own_memory_and_can_be_forgotten(tmp_path):
    saver = ThreadedSqliteSaver.open(tmp_path / "checkpoints.sqlite3")
    graph = echo_graph(saver)
    try:
        names = [f"t{i}" for i in range(25)]
        for turn in ("first", "second"):
            await asyncio.gather(*(graph.ainvoke({"messages": [HumanMessage(f"{turn} {n}")]}, thread(n)) for n in names))
        for name in names:
            messages = (await graph.aget_state(thread(name))).values["messages"]
            assert [m.content for m in messages] == [f"first {name}", "heard 1", f"second {name}", "heard 3"]

        await saver.adelete_thread("t0")
        assert await saver.aget_tuple(thread("t0")) is None
        assert await saver.aget_tuple(thread("t1")) is not None
    finally:
        saver.close()
