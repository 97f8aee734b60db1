"""Faults say what happened: bounded error kinds, messages in our words, and memory that stays whole."""

from __future__ import annotations

import asyncio
import logging
import socket

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_openai.chat_models.base import OpenAIConnectionError, OpenAITimeoutError
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphRecursionError
from prometheus_client import CollectorRegistry

from bench.scripted_openai import Script
from chat.failures import describe_failure
from metrics.registry import AgentMetrics
from tests.conftest import Reply, cancel_like_a_web_server, run_message

# What a library might put in its error text: none of it may reach the user.
RAW = "Incorrect API key provided: sk-abc123 (request req_42 to https://internal.example/v1)"
REQUEST = httpx.Request("POST", "https://internal.example/v1/chat/completions")


def status_error(cls: type[openai.APIStatusError], status: int) -> openai.APIStatusError:
    """Build the exception the openai SDK raises for an HTTP `status` answer."""
    return cls(RAW, response=httpx.Response(status, request=REQUEST), body={"error": {"message": RAW}})


def describe(error: Exception, node: str | None = "agent", started: bool = False) -> tuple[str, str]:
    return describe_failure(error, node, recursion_limit=12, timeout_s=60, started=started)


@pytest.mark.parametrize(
    ("error", "kind", "says"),
    [
        (status_error(openai.RateLimitError, 429), "rate_limited", ["429", "Wait a minute"]),
        (status_error(openai.AuthenticationError, 401), "auth", ["refused our key (401)", "OPENAI_API_KEY"]),
        (status_error(openai.PermissionDeniedError, 403), "auth", ["403", "OPENAI_API_KEY"]),
        (status_error(openai.NotFoundError, 404), "model", ["404", "OPENAI_MODEL"]),
        (status_error(openai.BadRequestError, 400), "input", ["400", "shorter message"]),
        (status_error(openai.InternalServerError, 500), "unavailable", ["server error (500)"]),
        (status_error(openai.APIStatusError, 502), "unavailable", ["server error (502)"]),
        (status_error(openai.ConflictError, 409), "model", ["refused the request (409)", "logs"]),
        # As ChatOpenAI raises them: openai's classes, also LangChain's provider-neutral ones.
        (OpenAIConnectionError(message=RAW, request=REQUEST), "unavailable", ["connection", "OPENAI_BASE_URL"]),
        (OpenAITimeoutError(REQUEST), "timeout", ["60 s", "MODEL_TIMEOUT_S"]),
        (TimeoutError(), "timeout", ["went silent for 60 s", "MODEL_TIMEOUT_S"]),  # our own stall timer
        (GraphRecursionError(RAW), "recursion_limit", ["12 steps", "AGENT_RECURSION_LIMIT"]),
        (ConnectionError(RAW), "model", ["The model failed", "Send the message again"]),
    ],
)
def test_each_failure_has_a_bounded_kind_and_a_message_in_our_words(error, kind, says):
    got_kind, message = describe(error)

    assert got_kind == kind
    assert all(part in message for part in says), message
    assert "sk-abc123" not in message and "internal.example" not in message and "req_42" not in message
    assert "Traceback" not in message


def test_the_message_says_whether_the_model_had_started_answering():
    error = status_error(openai.RateLimitError, 429)

    assert "before it answered" in describe(error, started=False)[1]
    assert "after it had started answering; the partial answer is kept" in describe(error, started=True)[1]
    assert describe(ConnectionError(RAW), started=True)[1].startswith("The model failed mid-answer; the partial")
    assert describe(ConnectionError(RAW), started=False)[1].startswith("The model failed before it answered")
    assert "partial answer is kept" in describe(GraphRecursionError(), started=True)[1]


def test_a_failure_outside_the_model_is_internal_and_names_the_step():
    kind, message = describe(KeyError(RAW), node="tools")

    assert kind == "internal" and "'tools' step" in message and "sk-abc123" not in message


def test_exactly_the_eight_kinds_are_counted_from_the_start():
    registry = CollectorRegistry()
    AgentMetrics(registry)
    labels = {
        s.labels["kind"] for m in registry.collect() if m.name == "agent_errors" for s in m.samples
        if s.name == "agent_errors_total"
    }
    assert labels == {"rate_limited", "auth", "unavailable", "model", "timeout", "recursion_limit", "input", "internal"}


# Through the real ChatOpenAI client and the scripted OpenAI-compatible server.


@pytest.mark.parametrize(
    ("status", "kind", "says"),
    [
        (401, "auth", "OPENAI_API_KEY"),
        (429, "rate_limited", "Wait a minute"),
        (500, "unavailable", "server error (500)"),
        (404, "model", "OPENAI_MODEL"),
        (400, "input", "shorter message"),
    ],
)
async def test_an_endpoint_refusing_before_the_answer_fails_the_run_with_its_kind(
    server, openai_service, status, kind, says
):
    retried = status == 429 or status >= 500  # openai retries these once (max_retries=1)
    server.enqueue(*[Script(status=status)] * (2 if retried else 1))
    service = openai_service(server.base_url)

    events = await run_message(service, "returns?")

    error, end = events[-2], events[-1]
    assert error.type == "error" and error.kind == kind and says in error.message
    assert "before it answered" in error.message and "scripted" not in error.message
    assert end.status == "failed" and end.answer == "" and end.ttft_s is None
    server.enqueue(Script(reply="45 days."))
    assert (await run_message(service, "returns?"))[-1].answer == "45 days."  # the next message works


async def test_an_unreachable_endpoint_is_unavailable(openai_service):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    events = await run_message(openai_service(f"http://127.0.0.1:{port}/v1"), "returns?")

    assert events[-2].kind == "unavailable" and "OPENAI_BASE_URL" in events[-2].message


async def test_the_library_detail_goes_to_the_log_with_the_run_id(server, openai_service, caplog):
    caplog.set_level(logging.WARNING, logger="glassbox.stream")
    server.enqueue(Script(status=401))
    events = await run_message(openai_service(server.base_url), "returns?")

    record = next(r for r in caplog.records if r.name == "glassbox.stream" and r.getMessage() == "run failed")
    assert record.run_id == events[-1].run_id and record.kind == "auth"
    assert "scripted 401" in str(record.exc_info[1])


async def test_after_a_broken_stream_the_next_request_alternates_and_holds_the_partial_answer(server, openai_service):
    server.enqueue(Script(reply="Faulty items can be returned", fail_after_tokens=3), Script(reply="Yes."))
    service = openai_service(server.base_url)
    failed = await run_message(service, "returns?")
    await run_message(service, "and then?")

    sent = server.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[2]["content"].startswith(failed[-1].answer) and failed[-1].answer
    assert "[answer cut off" in sent[2]["content"]


async def test_a_message_the_endpoint_refused_is_not_sent_again(server, openai_service):
    server.enqueue(Script(status=400))
    service = openai_service(server.base_url)
    await run_message(service, "a very long message " * 50)
    await run_message(service, "short one")

    sent = server.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert "a very long message" not in str(sent) and sent[-1]["content"] == "short one"


# Memory after a failed or stopped turn, with the scripted chat model.


def assert_alternates(prompt: list) -> None:
    """Check a prompt as a chat API wants it: user and assistant turns alternate, tool calls answered."""
    for before, after in zip(prompt, prompt[1:]):
        assert not (type(before) is type(after) and isinstance(after, HumanMessage | AIMessage)), [
            f"{type(m).__name__}: {m.text[:40]}" for m in prompt
        ]
    asked = {c["id"] for m in prompt if isinstance(m, AIMessage) for c in m.tool_calls}
    assert asked <= {m.tool_call_id for m in prompt if isinstance(m, ToolMessage)}


async def test_after_a_failure_the_next_turn_sees_the_partial_answer(service_with_memory, scripted_model):
    scripted_model.replies = [Reply(tokens=["Faulty ", "items ", "can"], fail_after=2), Reply(tokens=["Fine."])]
    service = service_with_memory()
    await run_message(service, "returns?")
    await run_message(service, "and then?")

    prompt = scripted_model.prompts[-1]
    assert_alternates(prompt)
    assert [m.text for m in prompt if isinstance(m, HumanMessage)] == ["returns?", "and then?"]
    assert any(isinstance(m, AIMessage) and m.text.startswith("Faulty items") for m in prompt)


async def test_after_a_stop_the_next_turn_sees_the_partial_answer(service_with_memory, scripted_model):
    scripted_model.replies = [Reply(tokens=[f"w{i} " for i in range(200)], delay_s=0.01), Reply(tokens=["Fine."])]
    service = service_with_memory()
    async for event in service.stream("tell me everything", "t"):
        if event.type == "token" and event.text == "w2 ":
            service.cancel("t")
    await run_message(service, "go on")

    prompt = scripted_model.prompts[-1]
    assert_alternates(prompt)
    assert any(isinstance(m, AIMessage) and m.text.startswith("w0 w1 w2") for m in prompt)


async def test_a_web_server_cancelling_again_and_again_still_leaves_memory_whole(service_with_memory, scripted_model):

    scripted_model.replies = [Reply(tokens=[f"w{i} " for i in range(300)], delay_s=0.01), Reply(tokens=["Fine."])]
    seen = []
    service = service_with_memory(listeners=[seen.append])
    await cancel_like_a_web_server(service, "tell me everything", "t")
    for _ in range(100):  # the run ends in the background once the handler is gone
        if seen[-1].type == "run_end":
            break
        await asyncio.sleep(0.02)
    assert seen[-1].status == "cancelled"
    await run_message(service, "go on")

    assert_alternates(scripted_model.prompts[-1])


async def test_a_second_cancel_during_the_memory_repair_still_ends_the_run(make_service, scripted_model):
    class SlowSaver(InMemorySaver):
        slow = False

        async def aget_tuple(self, config):
            if self.slow:
                await asyncio.sleep(0.3)
            return await super().aget_tuple(config)

    saver = SlowSaver()

    async def open_saver():
        return saver

    scripted_model.replies = [Reply(tokens=[f"w{i} " for i in range(200)], delay_s=0.01), Reply(tokens=["Fine."])]
    service = make_service(open_checkpointer=open_saver)
    events = []

    async def read() -> None:
        async for event in service.stream("tell me everything", "t"):
            events.append(event)
            if event.type == "token" and event.text == "w2 ":
                saver.slow = True
                service.cancel("t")  # Stop...
                asyncio.get_running_loop().call_later(0.1, service.cancel, "t")  # ...and Stop again

    await asyncio.wait_for(read(), 5)
    saver.slow = False
    await run_message(service, "go on")

    assert events[-1].type == "run_end" and events[-1].status == "cancelled"
    assert_alternates(scripted_model.prompts[-1])


async def test_a_run_stopped_by_the_recursion_limit_leaves_no_tool_call_open(service_with_memory, scripted_model):
    scripted_model.replies = [
        Reply(tool_calls=[{"name": "search_knowledge_base", "args": {"query": "again"}, "id": f"call-{i}"}])
        for i in range(20)
    ]
    service = service_with_memory(recursion_limit=4)  # stops after the agent asked for a tool
    assert (await run_message(service, "loop forever"))[-2].kind == "recursion_limit"
    scripted_model.replies = [Reply(tokens=["Fine."])]
    await run_message(service, "something else")

    assert_alternates(scripted_model.prompts[-1])
