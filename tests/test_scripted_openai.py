"""The scripted OpenAI-compatible server, driven by the real clients the app uses.

Offline: everything talks to a uvicorn server on 127.0.0.1 in a thread.
"""

from __future__ import annotations

import json
import math
import socket
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from gradio_client import Client
from langchain_core.messages import AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from bench.bare_relay import build_relay
from bench.openai_shapes import EMBEDDING_DIM, split_tokens
from bench.scripted_openai import Script, ScriptedServer

REPLY = "Refunds are issued within 14 days."


def chat_model(server: ScriptedServer, **kwargs: Any) -> ChatOpenAI:
    """Return a ChatOpenAI pointed at the scripted server, as the app builds it."""
    options: dict[str, Any] = {
        "streaming": True,
        "stream_usage": True,
        "max_retries": 0,
    }
    options.update(kwargs)
    return ChatOpenAI(base_url=server.base_url, api_key="test", model="scripted", **options)


def aggregate(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    """Add stream chunks together the way LangChain callers do."""
    total = chunks[0]
    for piece in chunks[1:]:
        total = total + piece
    return total


def wait_for(condition: Any, timeout_s: float = 5.0) -> bool:
    """Poll `condition()` until it is true or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


@tool
def search_knowledge_base(query: str) -> str:
    """Search the knowledge base."""
    return "Refunds take 14 days."


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(Script(reply=REPLY)) as running:
        yield running


def test_split_tokens_join_back_exactly() -> None:
    assert split_tokens(" Hello  world. ") == [" Hello", "  world.", " "]
    assert "".join(split_tokens(REPLY)) == REPLY


def test_chat_openai_streams_the_reply_token_by_token_with_usage(
    server: ScriptedServer,
) -> None:
    chunks = list(chat_model(server).stream("When do refunds arrive?"))

    texts = [c.content for c in chunks if c.content]
    assert texts == split_tokens(REPLY)
    total = aggregate(chunks)
    assert total.content == REPLY
    assert total.usage_metadata is not None
    assert total.usage_metadata["output_tokens"] == len(split_tokens(REPLY))
    assert total.usage_metadata["input_tokens"] == 4  # words of the question
    assert total.usage_metadata["total_tokens"] == 4 + len(split_tokens(REPLY))
    body = server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert server.requests[0].completed and server.requests[0].chunks_sent == len(texts)


def test_first_token_waits_for_ttft() -> None:
    with ScriptedServer(Script(reply="Hi there", ttft_s=0.3)) as server:
        started = time.perf_counter()
        first = next(c for c in chat_model(server).stream("hi") if c.content)
        assert first.content == "Hi"
        assert time.perf_counter() - started >= 0.3


def test_tool_calls_come_back_parsed_then_the_follow_up_gets_text() -> None:
    args = {"query": "refund policy"}
    script = Script(reply=REPLY, tool_calls=[("search_knowledge_base", args)])
    with ScriptedServer(script) as server:
        model = chat_model(server).bind_tools([search_knowledge_base])
        chunks = list(model.stream([HumanMessage("How do refunds work?")]))

        assert any(c.tool_call_chunks for c in chunks)
        total = aggregate(chunks)
        assert total.content == ""
        assert total.response_metadata["finish_reason"] == "tool_calls"
        [call] = total.tool_calls
        assert call["name"] == "search_knowledge_base" and call["args"] == args
        sent_tools = server.requests[0].body["tools"]
        assert [t["function"]["name"] for t in sent_tools] == ["search_knowledge_base"]

        history = [HumanMessage("How do refunds work?"), total]
        history.append(ToolMessage("Refunds take 14 days.", tool_call_id=call["id"]))
        follow_up = aggregate(list(model.stream(history)))
        assert follow_up.content == REPLY and not follow_up.tool_calls
        assert server.requests[1].body["messages"][-1]["role"] == "tool"


def test_queued_replies_answer_in_order_then_the_default() -> None:
    script = Script(reply="default", replies=[Script(reply="first"), Script(reply="second")])
    with ScriptedServer(script) as server:
        model = chat_model(server)
        answers = [model.invoke("q").content for _ in range(3)]
        server.enqueue(Script(reply="queued later"))
        answers.append(model.invoke("q").content)
    assert answers == ["first", "second", "default", "queued later"]


def test_non_streaming_returns_a_whole_completion(server: ScriptedServer) -> None:
    message = chat_model(server, streaming=False, stream_usage=False).invoke("Refunds?")
    assert message.content == REPLY
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == len(split_tokens(REPLY))
    assert server.requests[0].body.get("stream") in (None, False)


def test_a_break_mid_stream_raises_on_the_client_after_n_tokens() -> None:
    with ScriptedServer(Script(reply=REPLY, fail_after_tokens=3)) as server:
        received: list[str] = []
        with pytest.raises(openai.APIConnectionError):
            for chunk in chat_model(server).stream("Refunds?"):
                if chunk.content:
                    received.append(str(chunk.content))
        assert received == split_tokens(REPLY)[:3]
        assert not server.requests[0].completed


def test_a_hanging_stream_times_the_client_out() -> None:
    with ScriptedServer(Script(reply=REPLY, hang_after_tokens=2)) as server:
        received: list[str] = []
        started = time.perf_counter()
        with pytest.raises(openai.APITimeoutError):
            for chunk in chat_model(server, timeout=0.5).stream("Refunds?"):
                if chunk.content:
                    received.append(str(chunk.content))
        assert received == split_tokens(REPLY)[:2]
        assert 0.5 <= time.perf_counter() - started < 5
        assert wait_for(lambda: server.cancelled_requests == 1)


def test_closing_the_client_stream_stops_generation() -> None:
    reply = " ".join(f"word{i}" for i in range(50))
    with ScriptedServer(Script(reply=reply, token_interval_s=0.02)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        stream = client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "go"}], stream=True
        )
        chunks = iter(stream)
        for _ in range(3):  # the role chunk and two tokens
            next(chunks)
        stream.close()

        assert wait_for(lambda: server.cancelled_requests == 1)
        sent = server.requests[0].chunks_sent
        time.sleep(0.2)  # long enough for ten more tokens, were it still generating
        assert server.requests[0].chunks_sent == sent < 10
        assert not server.requests[0].completed


def test_embeddings_are_deterministic_unit_vectors(server: ScriptedServer) -> None:
    # check_embedding_ctx_length=False: otherwise LangChain tokenizes with tiktoken,
    # whose vocabulary file is downloaded on first use.
    embedder = OpenAIEmbeddings(
        base_url=server.base_url,
        api_key="test",
        model="scripted-embed",
        check_embedding_ctx_length=False,
    )
    refund, again, other = embedder.embed_documents(["refund policy", "Refund policy!", "shipping"])
    assert len(refund) == EMBEDDING_DIM
    assert math.isclose(math.fsum(v * v for v in refund), 1.0, rel_tol=1e-5)
    assert refund == pytest.approx(again)  # same words, same vector
    assert refund != pytest.approx(other)
    assert embedder.embed_query("refund policy") == pytest.approx(refund)
    assert server.requests[0].path == "/v1/embeddings"


def test_models_are_listed(server: ScriptedServer) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="test")
    assert [m.id for m in client.models.list()] == ["scripted"]


def test_chat_openai_drops_streamed_reasoning_content() -> None:
    """Document langchain-openai's behaviour: `delta.reasoning_content` is dropped.

    Each reasoning delta still yields an AIMessageChunk, but an empty one: the
    text is in neither content, content_blocks, additional_kwargs nor
    response_metadata. It only reaches `_convert_chunk_to_generation_chunk`'s
    raw chunk dict, where a subclass can pick it up.
    """
    script = Script(reply="The answer.", reasoning="Secret plan: look it up.")
    with ScriptedServer(script) as server:
        chunks = list(chat_model(server).stream("q"))
        whole = chat_model(server, streaming=False, stream_usage=False).invoke("q")
        raw_deltas: list[dict[str, Any]] = []

        class RecordingChatOpenAI(ChatOpenAI):
            def _convert_chunk_to_generation_chunk(
                self, chunk: dict, *args: Any, **kwargs: Any
            ) -> ChatGenerationChunk | None:
                raw_deltas.extend(choice["delta"] for choice in chunk.get("choices", []))
                return super()._convert_chunk_to_generation_chunk(chunk, *args, **kwargs)

        recording = RecordingChatOpenAI(
            base_url=server.base_url, api_key="test", model="scripted", streaming=True
        )
        list(recording.stream("q"))

    for c in chunks:
        assert "Secret" not in json.dumps([c.content, c.additional_kwargs, c.response_metadata])
        assert all(b["type"] == "text" for b in c.content_blocks)
    total = aggregate(chunks)
    assert total.content == "The answer."
    assert "reasoning_content" not in total.additional_kwargs
    assert "Secret" not in repr(whole)  # dropped from non-streaming replies too
    # One empty chunk per reasoning token: their timing survives, their text does not.
    leading_empty = next(i for i, c in enumerate(chunks) if c.content) - 1  # minus the role chunk
    assert leading_empty == len(split_tokens(script.reasoning or ""))
    reasoning = "".join(d.get("reasoning_content") or "" for d in raw_deltas)
    assert reasoning == script.reasoning


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_bare_relay_streams_partial_answers_through_gradio_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    with ScriptedServer(Script(reply=REPLY, token_interval_s=0.05)) as server:
        demo = build_relay(server.base_url, "scripted")
        port = free_port()
        demo.launch(
            prevent_thread_lock=True,
            server_name="127.0.0.1",
            server_port=port,
            quiet=True,
        )
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            job = client.submit("When do refunds arrive?", "thread-1", api_name="/ask")
            final = job.result(timeout=30)
            partials = job.outputs()
        finally:
            demo.close()
        assert final == REPLY
        assert partials[-1] == REPLY
        assert len(partials) > 1 and all(REPLY.startswith(p) for p in partials)
        assert server.requests[0].body["messages"] == [{"role": "user", "content": "When do refunds arrive?"}]
