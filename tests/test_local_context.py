"""Fitting a conversation into the local model's context window, and stopping the model when it loops."""

from __future__ import annotations

import pytest

from chat.local_model import ContextTooSmall, fit_to_context

TURNS = [{"role": r, "content": c} for r, c in
         [("system", "facts"), ("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2"), ("user", "q3")]]


def test_everything_is_kept_when_it_fits():
    payload, total = fit_to_context(TURNS, [10] * 6, budget=60)
    assert payload == TURNS and total == 60


def test_the_oldest_turns_go_first_and_the_system_prompt_and_question_stay():
    payload, total = fit_to_context(TURNS, [10] * 6, budget=35)
    assert [m["content"] for m in payload] == ["facts", "a2", "q3"] and total == 30


def test_a_message_too_long_for_the_context_says_how_long_it_may_be():
    long_question = [*TURNS[:-1], {"role": "user", "content": "q" * 2000}]
    with pytest.raises(ContextTooSmall, match="Shorten it to about 300 characters") as refused:
        fit_to_context(long_question, [10, 10, 10, 10, 10, 500], budget=100)  # 90 of 500 tokens: 360 chars, less a tenth
    assert "LOCAL_N_CTX" not in str(refused.value) and refused.value.kind == "input"  # a visitor can't raise it


def test_a_prompt_that_leaves_no_room_is_the_operators_to_fix():
    with pytest.raises(ContextTooSmall) as refused:
        fit_to_context(TURNS, [95, 10, 10, 10, 10, 500], budget=100)
    assert refused.value.kind == "model" and "Shorten" not in str(refused.value)


@pytest.mark.parametrize(("text", "loops"), [
    ("The cost is $25 per hour.\n\n- A minimum of \n- A minimum of \n- A minimum of \n", True),
    ("Returns take 45 days. " * 3, True),
    ("The cost is $25 per hour. It is $25 per hour.", False),  # said twice: not yet a loop
    ("ha ha ha ha ha", False),  # too short a run to tell from speech
    ("", False),
])
def test_a_run_of_text_said_three_times_over_is_a_loop(text: str, loops: bool) -> None:
    from chat.local_model import repeats_itself

    assert repeats_itself(text) is loops


def test_the_local_model_is_stopped_when_it_repeats_itself() -> None:
    from langchain_core.messages import HumanMessage

    from chat.local_model import LlamaCppChatModel

    class LoopingLlama:
        """Writes one sentence, then the same line for ever (as SmolLM2 sometimes does)."""

        def tokenize(self, data: bytes, **_) -> list[int]:
            return list(range(len(data.split())))

        def n_ctx(self) -> int:
            return 2048

        def create_chat_completion(self, **_):
            def parts():
                yield {"choices": [{"delta": {"content": "It costs $25 an hour."}, "finish_reason": None}]}
                while True:
                    yield {"choices": [{"delta": {"content": "\n- A minimum of "}, "finish_reason": None}]}
            return parts()

    model = LlamaCppChatModel(llama=LoopingLlama(), given_numbers_only=False, max_tokens=384)
    answer = model.invoke([HumanMessage("How much is the room?")])
    assert answer.content == "It costs $25 an hour." + "\n- A minimum of " * 3  # stopped at the third
    assert answer.usage_metadata["output_tokens"] == 4
