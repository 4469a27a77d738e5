"""Masking: every secret value replaced before dockyard shows or writes text."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cached_property
from typing import TYPE_CHECKING

from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.stack.compose import ComposeModel

MASK = "********"


class Redactor:
    """Replaces known secret values in text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Also as JSON writes them (a quote or backslash escaped): bundles hold JSON documents.
        forms = {form for s in secrets if s for form in (s, json.dumps(s)[1:-1])}
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    @classmethod
    def withholding(cls, reason: str) -> Redactor:
        """A redactor for when the secrets are unknown: it withholds all text rather than risk one."""
        return Withholding(reason)


class Withholding(Redactor):
    """Withholds every non-blank text, saying why."""

    def __init__(self, reason: str) -> None:
        super().__init__(())
        self.reason = reason

    def __call__(self, text: str) -> str:
        return f"(withheld: {self.reason})" if text.strip() else text


class StackRedactor:
    """Masks the secrets of a stack's compose model, read from it at first need."""

    def __init__(self, model: ComposeModel) -> None:
        self.model = model

    @cached_property
    def redactor(self) -> Redactor:
        """The redactor of the model's secrets."""
        # Built at first need (a failure, `logs`): the secrets are in the complete configuration,
        # which the memo does not hold, and asking Compose for it costs ~150 ms.
        try:
            return Redactor(self.model.secrets())
        except DockyardError:
            # Compose cannot give the configuration now (its files broke under the running
            # stack, say). This runs in error paths: raising here would hide the error being
            # reported, and text shown unmasked might hold a secret, so it is withheld instead.
            return Redactor.withholding("`docker compose config` failed, so the secrets to mask are unknown")

    def __call__(self, text: str) -> str:
        return self.redactor(text)
