"""The chat-model factory: the embedded local model, or any OpenAI-compatible endpoint."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from chat.config import Settings
from chat.local_model import LlamaCppChatModel, default_model_path, load_llama


def build_chat_model(settings: Settings) -> tuple[BaseChatModel, str]:
    """Return the chat model the settings ask for, and the name to show for it."""
    if settings.llm_provider == "openai":
        from chat.openai_model import ReasoningChatOpenAI

        model = ReasoningChatOpenAI(
            model=settings.openai_model,
            base_url=settings.openai_base_url,
            # Local servers (vLLM, Ollama, llama.cpp) accept any key; the client needs one.
            api_key=settings.openai_api_key or "not-needed",
            streaming=True,
            stream_usage=True,
            timeout=settings.model_timeout_s,
            max_retries=1,
            max_completion_tokens=settings.max_answer_tokens,
        )
        return model, settings.openai_model
    path = settings.local_model_path or default_model_path()
    name = path.stem
    llama = load_llama(path, settings.local_n_ctx)
    model = LlamaCppChatModel(llama=llama, model_name=name, max_tokens=settings.max_answer_tokens,
                              given_numbers_only=settings.local_given_numbers_only,
                              no_denied_yes=settings.local_no_denied_yes,
                              fact_opening=settings.local_fact_opening)
    model.read_vocabulary()  # 0.2 s, at start rather than in the first answer
    return model, name
