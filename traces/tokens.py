"""API tokens for programs: named, stored only as a hash, revocable."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from contextlib import closing
from typing import Any

from chat.text import clean_text

PREFIX = "gbx_"  # so a leaked token is recognisable in logs and secret scanners


def token_hash(secret: str) -> str:
    """Return the stored form of a token: its SHA-256 (tokens are random, so no salt is needed)."""
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


class TokenStore:
    """Create, list, revoke and look up API tokens in the trace store's database."""

    def __init__(self, connect: Callable[[], Any], now: Callable[[], str]) -> None:
        self._connect, self.now = connect, now  # the trace store's database (TraceStore.connect) and schema

    def create(self, name: str) -> dict[str, Any]:
        """Store a new token; return its record with the secret, which is shown only this once."""
        secret = PREFIX + secrets.token_urlsafe(32)
        record = {"id": uuid.uuid4().hex[:16], "name": clean_text(name), "created_at": self.now()}
        with closing(self._connect()) as db, db:
            db.execute("INSERT INTO api_tokens (id, name, hash, created_at) VALUES (?, ?, ?, ?)",
                       (record["id"], record["name"], token_hash(secret), record["created_at"]))
        return {**record, "token": secret}

    def list(self) -> list[dict[str, Any]]:
        """Return every token's id, name and dates (never the secret or its hash)."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT id, name, created_at, revoked_at FROM api_tokens ORDER BY created_at")
            return [dict(row) for row in rows.fetchall()]

    def revoke(self, token_id: str) -> bool:
        """Revoke a token; return whether an active one had that id."""
        with closing(self._connect()) as db, db:
            return db.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                              (self.now(), token_id)).rowcount > 0

    def find(self, secret: str) -> str | None:
        """Return the id of the active token with this secret, or None."""
        if not secret.startswith(PREFIX):
            return None
        with closing(self._connect()) as db:
            row = db.execute("SELECT id FROM api_tokens WHERE hash = ? AND revoked_at IS NULL",
                             (token_hash(secret),)).fetchone()
        return row["id"] if row else None
