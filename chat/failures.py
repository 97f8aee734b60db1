"""What went wrong in a run, in our words: an error kind from a bounded set and a message saying what to do.

A library's error text can carry request ids, URLs or parts of the prompt, so it goes to the
log, never to the user. The kinds become the `kind` label of agent_errors_total.
"""

from __future__ import annotations

from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from langgraph.errors import GraphRecursionError

from chat.events import ErrorKind
from chat.prompts import RECURSION_LIMIT_MESSAGE, RETRY
from chat.state import ANSWER_NODE


def describe_failure(
    error: Exception, node: str | None, recursion_limit: int, timeout_s: float, *, started: bool = False
) -> tuple[ErrorKind, str]:
    """Return the error kind and a message: what went wrong, how far the answer got, what to do.

    The message is in our words only: a library's error text can carry request ids, URLs or
    parts of the prompt, so it goes to the log instead.
    """
    kept = " The partial answer is kept." if started else ""
    if isinstance(error, GraphRecursionError):
        return "recursion_limit", RECURSION_LIMIT_MESSAGE.format(limit=recursion_limit) + kept
    if getattr(error, "kind", None) in ("input", "model"):  # our own error that explains itself
        return error.kind, str(error) + kept
    endpoint = _endpoint_failure(error, timeout_s)
    if endpoint is not None:
        kind, what, advice = endpoint
        phase = "after it had started answering; the partial answer is kept" if started else "before it answered"
        return kind, f"{what} {phase}. {advice}"
    if node == ANSWER_NODE:  # e.g. the stream broke off
        if started:
            return "model", f"The model failed mid-answer; the partial answer is kept. {RETRY}"
        return "model", f"The model failed before it answered. {RETRY}"
    step = f" in its '{node}' step" if node else ""
    return "internal", f"The agent failed{step}.{kept} {RETRY}"


def _endpoint_failure(error: Exception, timeout_s: float) -> tuple[ErrorKind, str, str] | None:
    """Return (kind, what happened, what to do) for what the model's endpoint or its client reported.

    LangChain's provider-neutral model errors come first (ChatOpenAI raises them as subclasses of
    openai's own), then the HTTP status any SDK error carries (openai's `APIStatusError.status_code`).
    """
    status = getattr(error, "status_code", None)
    status = status if isinstance(status, int) else None
    if isinstance(error, (TimeoutError, ModelTimeoutError)):
        return ("timeout", f"The model went silent for {timeout_s:g} s (MODEL_TIMEOUT_S)",
                "It was stopped. Send the message again; if the model is just slow, the operator can raise "
                "MODEL_TIMEOUT_S.")
    if isinstance(error, ModelRateLimitError) or status == 429:
        return ("rate_limited", "The model's endpoint turned the request away for too many requests (429)",
                "Wait a minute and send it again; if it keeps happening, the operator should check the "
                "endpoint's rate limits and quota.")
    if isinstance(error, ModelAuthenticationError) or status == 401:
        return "auth", "The model's endpoint refused our key (401)", "The operator should check OPENAI_API_KEY."
    if isinstance(error, ModelPermissionDeniedError) or status == 403:
        return ("auth", "The model's endpoint denied our key access to the model (403)",
                "The operator should check that OPENAI_API_KEY may use OPENAI_MODEL.")
    if isinstance(error, ModelNotFoundError) or status == 404:
        return ("model", "The model's endpoint does not know the model we asked for (404)",
                "The operator should check OPENAI_MODEL (and OPENAI_BASE_URL).")
    if isinstance(error, (ContextOverflowError, ModelInvalidRequestError)) or status in (400, 413, 422):
        return ("input", f"The model's endpoint refused the request as invalid ({status or 400})",
                "Most often the message or the conversation is too long for the model: send a shorter "
                "message, or start a new conversation.")
    if isinstance(error, ModelConnectionError):  # could not connect, or the connection broke mid-stream
        return ("unavailable", "The connection to the model's endpoint failed",
                "Try again in a moment; if it keeps happening, the operator should check OPENAI_BASE_URL "
                "and that the endpoint is up.")
    if isinstance(error, ModelAPIError) or (status or 0) >= 500:
        return ("unavailable", f"The model's endpoint had a server error ({status or '5xx'})",
                "Try again in a moment; if it keeps happening, the endpoint is down or overloaded.")
    if status is not None:
        return "model", f"The model's endpoint refused the request ({status})", RETRY
    return None
