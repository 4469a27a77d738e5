"""Test data for the journeys: every account and note is new and unique.

Usernames carry a random part, so tests never collide with each other, with a previous run
against a kept stack, or with another session's data.
"""

# factory_boy's declarations (Faker, LazyFunction) have no annotations, so calling them is an
# "untyped call" under mypy --strict; everything else in this module stays strictly checked.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

import uuid

from factory.base import Factory
from factory.declarations import LazyFunction
from factory.faker import Faker

from .models import Account, NoteDraft

__all__ = ["Account", "AccountFactory", "NoteDraft", "NoteDraftFactory"]


class AccountFactory(Factory[Account]):
    """A new, unique account: ``AccountFactory.build()``."""

    class Meta:
        model = Account

    username = LazyFunction(lambda: f"user-{uuid.uuid4().hex[:12]}")
    password = Faker("password", length=16)


class NoteDraftFactory(Factory[NoteDraft]):
    """A note with a made-up title and body: ``NoteDraftFactory.build()``."""

    class Meta:
        model = NoteDraft

    title = Faker("sentence", nb_words=4)
    body = Faker("paragraph", nb_sentences=3)
