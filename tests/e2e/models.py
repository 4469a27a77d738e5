"""What the journeys send: accounts and note drafts as plain values (no factory_boy, no Faker).

Kept apart from :mod:`.factories` so that a module that only names them (the fixtures, the API
client) does not load factory_boy's Faker, which costs ~0.35 s of every pytest start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Account:
    """Credentials of a demo user (not necessarily registered yet)."""

    username: str
    password: str

    def credentials(self) -> dict[str, str]:
        """The JSON body of ``/register`` and ``/login``."""
        return {"username": self.username, "password": self.password}


@dataclass(frozen=True)
class NoteDraft:
    """The JSON body of ``POST /notes`` and ``PUT /notes/{id}``."""

    title: str
    body: str

    def json(self) -> dict[str, Any]:
        """The request body."""
        return {"title": self.title, "body": self.body}
