"""Who is asking: the caller every store call that touches user data takes explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "user"]


@dataclass(frozen=True)
class Caller:
    """An owner of threads, runs and tokens, and what it may do.

    `owner` is stored on everything the caller creates: "local" (the one trusted user of
    AUTH_MODE=local), "admin" (ADMIN_TOKEN), "token:<id>" (an API token), "visitor:<id>"
    (an anonymous browser or API client), "session:<hash>" (an anonymous gradio_client),
    or "hf:<username>" (signed in with Hugging Face).
    """

    owner: str
    role: Role = "user"

    @property
    def is_admin(self) -> bool:
        """Return whether this caller sees and manages everything."""
        return self.role == "admin"

    def may_see(self, owner: str) -> bool:
        """Return whether this caller may read and change what `owner` owns."""
        return self.is_admin or owner == self.owner


LOCAL = Caller("local", "admin")  # AUTH_MODE=local: one trusted user who may do everything
