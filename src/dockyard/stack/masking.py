"""Masking by value: every secret replaced before dockyard shows or writes text.

What is a secret (:func:`find_secrets`): the password of any URL-shaped value
(``scheme://user:PW@host``), whatever its key; values of secret-looking keys of a service's
environment and build args; values interpolated from secret-looking variables; the contents
of compose ``secrets:`` (files, or the variables they name); and the ``mask`` setting's
values. Values shorter than four characters are not masked (except those of ``mask``): they
would mangle every line they occur in.

Each secret is masked in the forms it may be written in: plain, JSON-escaped, URL-encoded,
URL-decoded and XML-escaped (a shard's JUnit XML). A secret one redactor learnt is masked by
every redactor of the process from then on (:data:`SESSION`): a value seen once stays masked
in every later output.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, unquote

from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.settings import Settings
    from dockyard.stack.compose import ComposeModel

MASK = "********"
MIN_LENGTH = 4
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|PWD", re.IGNORECASE)
# scheme://user:PASSWORD@host: the user may be empty (redis://:PW@host); the password ends at
# the last "@" before the host, so one holding "@" unencoded is still masked whole.
URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:([^\s/]+)@[^\s@]")
VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def forms(secret: str) -> set[str]:
    """The ways ``secret`` may be written: plain, JSON-escaped, URL-encoded, URL-decoded, XML-escaped."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret),
        unquote(secret),
        xml_text(secret),  # in an element's text
        xml_text(secret).replace('"', "&quot;"),  # in an attribute
    }


def xml_text(text: str) -> str:
    """``text`` XML-escaped, as ``html.escape(text, quote=False)`` does.

    Spelt out: ``html`` loads its table of every named entity (~3 ms of each start), and
    ``xml.sax.saxutils.escape`` imports urllib.request (~10 ms).
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Registry:
    """Every secret value this process has learnt, in all its forms, longest first."""

    def __init__(self) -> None:
        self._forms: set[str] = set()
        self.ordered: list[str] = []

    def learn(self, secrets: Iterable[str]) -> None:
        """Remember ``secrets`` (and their forms) for every later redaction."""
        new = {form for s in secrets if s for form in forms(s) if form} - self._forms
        if new:
            self._forms |= new
            # Longest first, so a secret that contains another is masked whole.
            self.ordered = sorted(self._forms, key=len, reverse=True)


SESSION = Registry()


class Redactor:
    """Replaces known secret values in text: its own and every one the process learnt before."""

    def __init__(self, secrets: Iterable[str], registry: Registry = SESSION) -> None:
        self.registry = registry
        registry.learn(secrets)

    @property
    def secrets(self) -> list[str]:
        """Every form of every secret it masks, longest first."""
        return self.registry.ordered

    def __call__(self, text: str) -> str:
        for secret in self.registry.ordered:
            if secret in text:
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


def strings(value: object) -> Iterator[str]:
    """Every string in a JSON-like value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def url_passwords(text: str) -> list[str]:
    """The passwords of the URLs in ``text``."""
    return URL_PASSWORD.findall(text)


def dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of an env file (quotes stripped); {} when it cannot be read."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    found = {}
    for line in lines:
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key and not key.startswith("#"):
            found[key.strip()] = value.strip().strip("'\"")
    return found


def interpolated(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Values of the variables the compose files interpolate, whose names look secret."""
    env = os.environ if env is None else env
    known = {**dotenv(settings.root / ".env"), **dotenv(settings.compose_files[0].parent / ".env"), **env}
    names: set[str] = set()
    for path in settings.compose_files:
        try:
            names.update(VARIABLE.findall(path.read_text()))
        except (OSError, UnicodeDecodeError):
            continue
    return {name: known[name] for name in names if SECRET_NAME.search(name) and known.get(name)}


def secret_files(config: Mapping[str, Any], env: Mapping[str, str] | None = None) -> set[str]:
    """The contents of the configuration's ``secrets:`` (a file, or the variable one names)."""
    env = os.environ if env is None else env
    found = set()
    for entry in (config.get("secrets") or {}).values():
        spec = entry or {}
        text = None
        if spec.get("file"):
            try:
                text = Path(spec["file"]).read_text()
            except (OSError, UnicodeDecodeError):
                continue
        elif spec.get("environment"):
            text = env.get(spec["environment"])
        if text:
            found |= {text, text.strip(), *(line.strip() for line in text.splitlines())}
    return found


def find_secrets(config: Mapping[str, Any], settings: Settings | None = None) -> set[str]:
    """Every secret value of a compose configuration (see the module's docstring)."""
    found: set[str] = set()
    for svc in (config.get("services") or {}).values():
        for mapping in (svc.get("environment") or {}, (svc.get("build") or {}).get("args") or {}):
            for key, value in mapping.items():
                if value and SECRET_NAME.search(key):
                    found.add(str(value))
    for text in strings(config):
        found.update(url_passwords(text))
    found |= secret_files(config)
    if settings is not None:
        found.update(interpolated(settings).values())
    found = {s for s in found if len(s) >= MIN_LENGTH}
    if settings is not None:
        found.update(s for s in settings.mask if s)
    return found


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
