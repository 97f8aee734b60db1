"""The JSON shapes of OpenAI's chat and embeddings API, built from plain values.

Only what the scripted server sends: chat.completion.chunk, chat.completion,
the usage block, the embeddings list and the models list. Kept apart from the
server so its timing logic reads without the dict noise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import time
from typing import Any

Delta = dict[str, Any]

EMBEDDING_DIM = 16

# A "token" is a word with the whitespace before it, so the pieces join back exactly.
_TOKEN = re.compile(r"\s*\S+|\s+$")
_WORD = re.compile(r"\w+")


def split_tokens(text: str) -> list[str]:
    """Split `text` into word-ish tokens that concatenate back to `text`."""
    return _TOKEN.findall(text)


def split_arguments(arguments: str, size: int = 8) -> list[str]:
    """Split a JSON arguments string into pieces, as models stream them."""
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def tool_call_id(index: int, name: str) -> str:
    """Return a stable OpenAI-looking id for the `index`-th tool call."""
    return f"call_{index}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def tool_call_deltas(tool_calls: list[tuple[str, dict[str, Any]]]) -> list[Delta]:
    """Return the `delta.tool_calls` pieces for these calls: header, then arguments."""
    deltas: list[Delta] = []
    for index, (name, args) in enumerate(tool_calls):
        header = {
            "index": index,
            "id": tool_call_id(index, name),
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        deltas.append({"tool_calls": [header]})
        for piece in split_arguments(json.dumps(args)):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    return deltas


def message_tool_calls(
    tool_calls: list[tuple[str, dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Return the whole `message.tool_calls` list of a non-streaming reply."""
    return [
        {
            "id": tool_call_id(index, name),
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for index, (name, args) in enumerate(tool_calls)
    ]


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """Return an OpenAI `usage` block."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chunk(
    completion_id: str,
    model: str,
    delta: Delta,
    finish_reason: str | None = None,
    include_usage: bool = False,
) -> dict[str, Any]:
    """Return one chat.completion.chunk carrying `delta`."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
    }
    if include_usage:
        body["usage"] = None  # OpenAI sends null here on every chunk but the last
    return body


def usage_chunk(completion_id: str, model: str, usage_block: dict[str, int]) -> dict[str, Any]:
    """Return the closing chunk of a stream with `include_usage`: no choices, only usage."""
    body = chunk(completion_id, model, {})
    body["choices"] = []
    body["usage"] = usage_block
    return body


def completion(
    completion_id: str,
    model: str,
    message: dict[str, Any],
    finish_reason: str,
    usage_block: dict[str, int],
) -> dict[str, Any]:
    """Return a whole (non-streaming) chat.completion object."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage_block,
    }


def sse(data: dict[str, Any] | str) -> str:
    """Frame one server-sent event line as OpenAI does (`data: ...` and a blank line)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n"


def count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Count words in the messages' text, a stand-in for a tokenizer."""
    total = 0
    for message in messages:
        content = message.get("content") or ""
        if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
            content = " ".join(str(part.get("text", "")) for part in content)
        total += len(split_tokens(str(content)))
    return total


def embed(text: str | list[int]) -> list[float]:
    """Return a deterministic unit vector: a hashed bag of words (or of token ids)."""
    words = [str(t) for t in text] if isinstance(text, list) else _WORD.findall(text.lower())
    vector = [0.0] * EMBEDDING_DIM
    for word in words:
        digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
        vector[int.from_bytes(digest, "little") % EMBEDDING_DIM] += 1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        vector[0], norm = 1.0, 1.0  # empty text still gets a valid unit vector
    return [v / norm for v in vector]


def encode_base64(vector: list[float]) -> str:
    """Encode a vector as the openai client asks by default: little-endian float32, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings_list(model: str, inputs: list[str] | list[list[int]], fmt: str) -> dict[str, Any]:
    """Return the /v1/embeddings response for `inputs` in `fmt` ("float" or "base64")."""
    data = []
    for index, item in enumerate(inputs):
        vector = embed(item)
        encoded: list[float] | str = encode_base64(vector) if fmt == "base64" else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    n_tokens = sum(len(item) if isinstance(item, list) else len(split_tokens(item)) for item in inputs)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }


def models_list(model_ids: list[str]) -> dict[str, Any]:
    """Return the /v1/models response."""
    return {
        "object": "list",
        "data": [
            {"id": mid, "object": "model", "created": 0, "owned_by": "glassbox-bench"} for mid in model_ids
        ],
    }
