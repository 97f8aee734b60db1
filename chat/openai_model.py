"""ChatOpenAI for any OpenAI-compatible endpoint, keeping the reasoning that langchain-openai drops."""

from __future__ import annotations

from typing import Any

from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI


class ReasoningChatOpenAI(ChatOpenAI):
    """ChatOpenAI that copies `reasoning_content` (vLLM, DeepSeek, llama.cpp's server) into messages.

    langchain-openai documents that it does not extract non-standard fields; this keeps the
    field in `additional_kwargs["reasoning_content"]`, where `chat.stream` looks for reasoning.
    """

    def _convert_chunk_to_generation_chunk(
        self, chunk: dict, default_chunk_class: type, base_generation_info: dict | None
    ) -> ChatGenerationChunk | None:
        generation = super()._convert_chunk_to_generation_chunk(chunk, default_chunk_class, base_generation_info)
        choices = chunk.get("choices") or chunk.get("chunk", {}).get("choices") or []
        reasoning = (choices[0].get("delta") or {}).get("reasoning_content") if choices else None
        if generation is not None and reasoning:
            generation.message.additional_kwargs["reasoning_content"] = reasoning
        return generation

    def _create_chat_result(self, response: Any, generation_info: dict | None = None) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)
        data = response if isinstance(response, dict) else response.model_dump()
        choices = data.get("choices") or []
        for generation, choice in zip(result.generations, choices):
            reasoning = (choice.get("message") or {}).get("reasoning_content")
            if reasoning:
                generation.message.additional_kwargs["reasoning_content"] = reasoning
        return result
