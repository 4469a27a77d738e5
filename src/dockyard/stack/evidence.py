"""Artifact bundles: what is saved when a stack fails, with every secret masked.

A bundle holds, per service, its logs and its inspect output (with the health-check
history), plus ``ps`` of the project and the effective compose config. Secrets are the
values of secret-looking environment variables and build args; they are replaced before
anything is written or shown.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.dirs import private_dir

if TYPE_CHECKING:
    from docker.models.containers import Container

MASK = "********"
LOG_TAIL = 30


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
        return _Withholding(reason)


class _Withholding(Redactor):
    def __init__(self, reason: str) -> None:
        super().__init__(())
        self.reason = reason

    def __call__(self, text: str) -> str:
        return f"(withheld: {self.reason})" if text.strip() else text


def health_output(container: Container, last: int = 3) -> str:
    """The last health-check results of ``container``, one line each."""
    health = (container.attrs.get("State") or {}).get("Health") or {}
    entries = (health.get("Log") or [])[-last:]
    return "\n".join(f"exit {e.get('ExitCode')}: {(e.get('Output') or '').strip()[:300]}" for e in entries)


def log_tail(container: Container, lines: int = LOG_TAIL) -> str:
    """The last ``lines`` lines of the container's output."""
    raw: bytes = container.logs(tail=lines, stdout=True, stderr=True)
    return raw.decode("utf-8", "replace")


def write_bundle(
    artifacts_dir: Path,
    *,
    project: str,
    reason: str,
    containers: Iterable[Container],
    config: dict[str, Any],
    redact: Redactor,
) -> Path:
    """Write the bundle of ``project`` and return its directory."""
    bundle = private_dir(artifacts_dir / f"{project}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")

    def write(name: str, text: str) -> None:
        path = bundle / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(redact(text))

    rows = []
    for container in containers:
        container.reload()
        service = container.labels.get("com.docker.compose.service", container.name)
        state = container.attrs.get("State") or {}
        rows.append(
            {
                "service": service,
                "name": container.name,
                "status": state.get("Status"),
                "health": (state.get("Health") or {}).get("Status"),
                "exit_code": state.get("ExitCode"),
                "ports": container.attrs.get("NetworkSettings", {}).get("Ports"),
            }
        )
        write(f"{service}.log", container.logs(stdout=True, stderr=True, timestamps=True).decode("utf-8", "replace"))
        write(f"{service}.inspect.json", json.dumps(container.attrs, indent=2))
    write("ps.json", json.dumps(rows, indent=2))
    write("compose-config.json", json.dumps(config, indent=2))
    write("summary.txt", reason + "\n")
    return bundle


def artifacts_since(artifacts_dir: Path, since: float) -> list[Path]:
    """Bundles and per-test logs written under ``artifacts_dir`` at or after ``since`` (epoch seconds).

    What a run left for the user to look at, for its summary; oldest first.
    """
    found = []
    for parent in (artifacts_dir, artifacts_dir / "tests"):
        try:
            entries = list(parent.iterdir())
        except OSError:  # no artifacts written (yet), or not ours to read
            continue
        for entry in entries:
            if entry.name == "tests" and parent == artifacts_dir:
                continue
            try:
                mtime = entry.stat().st_mtime
            except OSError:  # removed meanwhile (another run's pruning)
                continue
            if mtime >= since:
                found.append((mtime, entry))
    return [entry for _, entry in sorted(found)]
