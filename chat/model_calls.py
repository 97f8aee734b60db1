"""What each model call was: the exact messages sent, the parameters, why it ended, its tokens.

LangChain tells callback handlers about every chat-model call (`on_chat_model_start`, each
streamed chunk, `on_llm_end` or `on_llm_error`); `ModelCalls` turns those into the run's
`model_start` and `model_end` events. The end is handed to the RunTranslator rather than emitted
at once: the stream may still hold the call's last tokens, and they come first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage

from chat.events import Event, FinishReason, ModelCallEnded, ModelCallStarted
from chat.text import clean_text, clean_value

if TYPE_CHECKING:
    from chat.stream import RunTranslator

MODEL_MESSAGE_CHARS = 8_000  # of each message kept in the trace; the rest is counted, not stored
PARAMETERS = ("model", "model_name", "temperature", "max_tokens", "max_completion_tokens", "top_p", "top_k",
              "frequency_penalty", "presence_penalty", "seed", "stop", "reasoning_effort", "given_numbers_only",
              "no_denied_yes", "fact_opening")
PROVIDERS = {"llama-cpp": "local", "openai-chat": "openai"}
FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
                                           "function_call": "tool_calls", "max_tokens": "length"}


@dataclass
class _Call:
    started: float
    agent: str = ""  # the team agent that made the call ("" in the single-agent graph)
    first_chunk: float | None = None


class ModelCalls(AsyncCallbackHandler):
    """Record every chat-model call of one run as model_start and model_end events."""

    # Awaited in place, like LangGraph's own stream handlers: otherwise LangChain runs the handler
    # in a task of its own (asyncio.gather) for every streamed token, and under 25 streams those
    # tasks were a share of the loop's time (bench/load.py).
    run_inline = True

    def __init__(self, translator: RunTranslator, emit: Callable[[Event], None]) -> None:
        self.translator, self.emit = translator, emit
        self._calls: dict[UUID, _Call] = {}

    async def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *,
                                  run_id: UUID, **kwargs: Any) -> None:
        params = kwargs.get("invocation_params") or {}
        clock = self.translator.clock
        agent = self.translator.agent_of(str((kwargs.get("metadata") or {}).get("langgraph_checkpoint_ns", "")))
        self._calls[run_id] = _Call(clock(), agent)
        self.translator.model_requested(self._calls[run_id].started)
        kind = str(params.get("_type", ""))
        model = str(params.get("model") or params.get("model_name") or self.translator.model_name or kind)
        parameters = {key: clean_value(params[key]) for key in PARAMETERS if params.get(key) is not None}
        self.emit(ModelCallStarted(**self.translator.ids, at=clock(), agent=agent, provider=PROVIDERS.get(kind, kind or "unknown"),
                                   model=clean_text(model), parameters=parameters,
                                   messages=tuple(_as_sent(m) for m in (messages[0] if messages else []))))

    async def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        call = self._calls.get(run_id)
        if call is not None and call.first_chunk is None:
            call.first_chunk = self.translator.clock()
            self.translator.model_first_chunk(call.first_chunk)

    async def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        generation = response.generations[0][0] if response.generations and response.generations[0] else None
        message = getattr(generation, "message", None)
        metadata = {**(getattr(generation, "generation_info", None) or {}),
                    **(getattr(message, "response_metadata", None) or {})}
        reason = FINISH_REASONS.get(str(metadata.get("finish_reason") or metadata.get("stop_reason") or ""), "stop")
        if getattr(message, "tool_calls", None):
            reason = "tool_calls"
        opened_with = metadata.get("opened_with")
        self._end(run_id, reason, getattr(message, "usage_metadata", None) or {},
                  opened_with if isinstance(opened_with, str) else "")

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, "cancelled" if isinstance(error, asyncio.CancelledError) else "error", {})

    def _end(self, run_id: UUID, reason: FinishReason, usage: dict[str, Any], opened_with: str = "") -> None:
        call = self._calls.pop(run_id, None)
        if call is None:
            return
        now = self.translator.clock()
        details = usage.get("output_token_details") or {}
        self.translator.model_ended(ModelCallEnded(
            **self.translator.ids, at=now, agent=call.agent, finish_reason=reason,
            first_chunk_s=None if call.first_chunk is None else call.first_chunk - call.started,
            duration_s=now - call.started, input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0), reasoning_tokens=int(details.get("reasoning") or 0),
            opened_with=opened_with))


def _as_sent(message: BaseMessage) -> dict[str, Any]:
    """One message as the model got it: role and text, with tool calls and the id a tool result answers."""
    text = clean_text(message.text if isinstance(message.text, str) else str(message.content))
    if len(text) > MODEL_MESSAGE_CHARS:
        text = text[:MODEL_MESSAGE_CHARS] + f" … [{len(text) - MODEL_MESSAGE_CHARS} more characters]"
    sent: dict[str, Any] = {"role": message.type, "content": text}
    if getattr(message, "tool_calls", None):
        sent["tool_calls"] = [{"name": call["name"], "args": clean_value(call["args"])} for call in message.tool_calls]
    if getattr(message, "tool_call_id", None):
        sent["tool_call_id"] = message.tool_call_id
    return sent
