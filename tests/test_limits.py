"""One limit per thing: a message the chat accepts is searched and read, and every error is in our words."""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from chat.components import load_components
from chat.config import Settings, SettingsError, local_message_chars
from chat.prompts import TOOL_FAILED
from chat.service import AgentService
from chat.tickets import TicketStore
from chat.tools import SEARCH_QUERY_CHARS, build_tools
from rag.bases import UnknownKnowledgeBase
from tests.conftest import Reply, in_memory_checkpointer, run_message

LIBRARY_TEXT = re.compile(r"pydantic|String should have|validation error for|type=|https?://", re.IGNORECASE)
KB = Path(__file__).resolve().parent.parent / "data" / "kb"


def full_length(text: str, chars: int) -> str:
    """Return `text` repeated and cut to exactly `chars` characters."""
    return (text * (chars // len(text) + 1))[:chars]


def shown_text(events: list) -> str:
    """Return every field of every event as one string: all a reader of the stream could see."""
    return " ".join(str(asdict(event)) for event in events)


async def test_a_message_of_the_full_length_is_searched_by_the_model_without_a_library_error(
    make_service, scripted_model, knowledge_base
):
    limit = Settings.from_env({}).max_message_chars
    message = full_length("My kettle arrived broken and I would like to return it for a refund. ", limit)
    scripted_model.replies = [Reply(tool_calls=[{"name": "search_knowledge_base", "args": {"query": message}}]),
                              Reply(tokens=["Within 45 days."])]

    events = await run_message(make_service(max_message_chars=limit), message)

    assert len(message) == limit and events[-1].status == "completed"
    ends = [e for e in events if e.type == "tool_end"]
    assert len(ends) == 2 and all(e.error is None and "45 days" in e.output for e in ends)
    # Both searches (the graph's and the model's) read the message's beginning, as far as the search reads.
    assert knowledge_base.queries == [message[:SEARCH_QUERY_CHARS]] * 2
    assert not LIBRARY_TEXT.search(shown_text(events))
    assert not LIBRARY_TEXT.search(scripted_model.prompts[-1][-1].content)  # nor what the model was told


async def test_input_a_tool_cannot_use_is_described_in_our_words(make_service, scripted_model):
    scripted_model.replies = [
        Reply(tool_calls=[{"name": "search_knowledge_base", "args": {"query": ""}}]),
        Reply(tool_calls=[{"name": "create_support_ticket", "args": {"summary": "x", "severity": "apocalyptic"}}]),
        Reply(tokens=["Sorry."]),
    ]
    events = await run_message(make_service(open_checkpointer=in_memory_checkpointer()), "open a ticket")

    search, ticket = [e.error for e in events if e.type == "tool_end" and e.error]
    assert "query is empty" in search
    assert "summary is too short (at least 5 characters)" in ticket and "severity must be one of" in ticket
    assert "apocalyptic" not in ticket  # what the model sent is not echoed back
    assert not LIBRARY_TEXT.search(shown_text(events)) and events[-1].status == "completed"
    assert "severity must be one of" in scripted_model.prompts[-1][-1].content  # the model can correct itself


@pytest.mark.parametrize(("failure", "shown"), [
    (RuntimeError("sqlite3.OperationalError: disk I/O error at /srv/secret/chroma.sqlite3"),
     TOOL_FAILED.format(tool="search_knowledge_base")),
    (UnknownKnowledgeBase("There is no knowledge base named 'gone'."), "There is no knowledge base named 'gone'."),
])
async def test_a_failing_tool_shows_our_sentence_never_the_librarys(make_service, knowledge_base, monkeypatch,
                                                                     failure, shown):
    def broken(query: str, k: int) -> list:
        raise failure

    monkeypatch.setattr(knowledge_base, "search", broken)
    events = await run_message(make_service(), "How long can I return a faulty item?")

    assert next(e for e in events if e.type == "tool_end").error == shown
    assert "secret" not in shown_text(events) and events[-1].status == "completed"


def test_the_local_models_message_limit_fits_its_context():
    assert Settings.from_env({}).max_message_chars == 4000 <= local_message_chars(2048, 384)
    # A smaller context lowers the default, so the chat box refuses what the model could not read.
    smaller = Settings.from_env({"LOCAL_N_CTX": "1024"})
    assert smaller.max_message_chars == local_message_chars(1024, 384) < 4000
    # A remote model's context is its endpoint's: the limit is the operator's choice.
    assert Settings.from_env({"OPENAI_API_KEY": "k", "MAX_MESSAGE_CHARS": "20000"}).max_message_chars == 20000


@pytest.mark.parametrize(("env", "named"), [
    ({"MAX_MESSAGE_CHARS": "20000"}, "Lower MAX_MESSAGE_CHARS, or raise LOCAL_N_CTX"),
    ({"LOCAL_N_CTX": "512"}, "Raise LOCAL_N_CTX or lower MAX_ANSWER_TOKENS"),
])
def test_limits_the_local_model_cannot_honour_are_refused_at_start_up(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


@pytest.fixture(scope="module")
def local_service(tmp_path_factory):
    """The real local stack, with the message limit its settings derive and no relevance floor (to reach the model).

    A smaller context than the default makes the derived limit (2,232 characters) the one that binds,
    and short answers keep the test quick; the defaults' 4,000 is checked against its context above.
    """
    state = tmp_path_factory.mktemp("state")
    settings = Settings.from_env({"APP_STATE_DIR": str(state), "LOCAL_N_CTX": "1024", "MAX_ANSWER_TOKENS": "24"})
    assert settings.max_message_chars == local_message_chars(1024, 24) < 4000
    components = load_components(settings)
    tools = build_tools(lambda name: components.knowledge.get(name or "sample"), TicketStore(state / "t.sqlite3"),
                        top_k=1, min_score=0.0)
    service = AgentService(lambda: replace(components, tools=tools), max_message_chars=settings.max_message_chars)
    service.warm_up()
    return service


async def test_a_full_length_message_of_prose_is_read_by_the_local_model(local_service):
    prose = " ".join(path.read_text() for path in sorted(KB.glob("*.md")))
    message = full_length(prose, local_service.max_message_chars)

    events = await run_message(local_service, message, "prose")

    end = events[-1]
    assert end.status == "completed" and not [e for e in events if e.type == "error"]
    assert end.input_tokens > len(message) // 5  # the whole message reached the model, not a cut of it


async def test_a_dense_message_the_local_model_cannot_read_gets_a_sentence_a_user_can_act_on(local_service):
    # Within MAX_MESSAGE_CHARS, yet about a token a character: over the context.
    message = full_length(" ".join(f"zq{i}x" for i in range(2000)), local_service.max_message_chars)

    events = await run_message(local_service, message, "dense")

    error = next(e for e in events if e.type == "error")
    assert error.kind == "input" and events[-1].status == "failed"
    assert "LOCAL_N_CTX" not in error.message and "raise" not in error.message.lower()
    chars = int(re.search(r"Shorten it to about ([\d,]+) characters", error.message)[1].replace(",", ""))
    # Doing what it says works: the message cut to that length is read and answered.
    shortened = await run_message(local_service, message[:chars], "dense-shortened")
    assert 0 < chars < len(message) and shortened[-1].status == "completed"
