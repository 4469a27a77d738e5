"""Failure evidence: the error a failed start raises, and the artifact bundle it leaves.

A bundle holds, per service, its logs and its inspect output (with the health-check
history), plus ``ps`` of the project and the effective compose config. Secrets are the
values of secret-looking environment variables and build args; they are replaced before
anything is written or shown.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from dockyard.dirs import private_dir
from dockyard.errors import DockyardError, StackUnhealthy
from dockyard.settings import Settings
from dockyard.stack.compose import ComposeModel
from dockyard.stack.project import ComposeProject
from dockyard.stack.services import SERVICE_LABEL

if TYPE_CHECKING:
    from docker.models.containers import Container

LOG_TAIL = 30


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
    redact: Callable[[str], str],
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
        service = container.labels.get(SERVICE_LABEL, container.name)
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


class Evidence:
    """Turns a failed start into its evidence: the error text, the bundle, and the teardown."""

    def __init__(self, settings: Settings, project: ComposeProject, model: ComposeModel) -> None:
        self.settings = settings
        self.project = project
        self.model = model

    def fail(
        self, reason: str, services: Sequence[str], *, teardown: Callable[[], None], ports: Mapping[str, Any]
    ) -> NoReturn:
        """Collect the evidence of ``services``, write the bundle, tear down (unless kept), raise.

        ``ports`` are the host ports shown when ``keep_on_failure`` leaves the stack running.
        """
        containers = self.project.containers()
        parts = [f"stack {self.project.name} did not become healthy: {reason}"]
        for c in containers:
            service = c.labels.get(SERVICE_LABEL, c.name)
            if service not in services:
                continue
            if health := health_output(c):
                parts.append(f"--- {service}: health check ---\n{health}")
            parts.append(f"--- {service}: last log lines ---\n{log_tail(c).rstrip()}")
        bundle = write_bundle(
            self.settings.artifacts_dir,
            project=self.project.name,
            reason=parts[0],
            containers=containers,
            config=self._bundle_config(),
            redact=self.project.redact,
        )
        if self.settings.keep_on_failure:
            parts.append(
                f"keep_on_failure: {self.project.name} is left running; ports: {json.dumps(ports)}"
                # `down` only knows berths kept by `dockyard up`; once this session ends
                # and its berth is free, the stack is an orphan that `cleanup` removes.
                "; take it down with `dockyard cleanup` once this session has ended"
            )
        else:
            teardown()
        raise StackUnhealthy(self.project.redact("\n".join(parts)), services=services, bundle=str(bundle))

    def _bundle_config(self) -> dict[str, Any]:
        """The effective configuration for a failure bundle; what is known of it if Compose fails now."""
        try:
            return self.model.config
        except DockyardError:
            return {"dockyard": "`docker compose config` failed while the bundle was written", **self.model.shape}
