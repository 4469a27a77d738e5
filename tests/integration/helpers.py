"""Helpers of the integration tests: the docker CLI, resource listings, test projects."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors as docker_errors

import dockyard

# The image every test stack runs: debian:bookworm-slim as dockyard's own builds get it (pulled
# where a registry answers, else its bootstrapped stand-in), under a name of the tests' own.
BASE = "debian:bookworm-slim"
IMAGE = "dockyard/test-base:bookworm"


def ensure_base_image() -> str:
    """Make sure ``IMAGE`` exists, through the path of dockyard's builds (once per engine)."""
    from dockyard.engine.base import ensure_base  # noqa: PLC0415 - only Docker tests need the engine
    from dockyard.engine.endpoints import sdk  # noqa: PLC0415
    from dockyard.ui.progress import SILENT  # noqa: PLC0415

    client = sdk()
    with contextlib.suppress(docker_errors.ImageNotFound):
        client.images.get(IMAGE)
        return IMAGE
    client.images.get(ensure_base(client, BASE, SILENT)).tag(IMAGE)
    return IMAGE


DOCKYARD = Path(sys.executable).parent / "dockyard"  # the console script of this venv
TOKEN = secrets.token_hex(2)  # keeps prefixes of concurrent runs on one host apart
KINDS = ("container", "network", "volume")
NOTHING: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}  # project_resources() of a removed stack


def docker(*args: str, check: bool = True) -> str:
    """Run the docker CLI; its stdout."""
    out = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def ids(kind: str, label: str) -> list[str]:
    """IDs (names for volumes) of every ``kind`` carrying ``label`` (``key`` or ``key=value``)."""
    command = {"container": ["ps", "-a"], "network": ["network", "ls"], "volume": ["volume", "ls"]}[kind]
    return docker(*command, "-q", "--filter", f"label={label}").split()


def inspect(kind: str, names: list[str]) -> list[dict[str, Any]]:
    """``docker inspect`` of ``names`` (IDs or names; empty list for none)."""
    if not names:
        return []
    result: list[dict[str, Any]] = json.loads(docker(kind, "inspect", *names))
    return result


def project_resources(project: str) -> dict[str, list[dict[str, Any]]]:
    """Inspect data of every container, network and volume of a compose project, by kind."""
    return {kind: inspect(kind, ids(kind, f"com.docker.compose.project={project}")) for kind in KINDS}


def leftovers(prefix: str) -> list[tuple[str, str, str]]:
    """(kind, id, project) of everything dockyard-labelled or compose-labelled under ``prefix``."""
    found = set()
    fields = '{{.ID}}\t{{.Label "dockyard.project"}}\t{{.Label "com.docker.compose.project"}}'
    for kind in KINDS:
        command = {"container": ["ps", "-a"], "network": ["network", "ls"], "volume": ["volume", "ls"]}[kind]
        for label in ("dockyard.managed", "com.docker.compose.project"):
            # Labels come with the listing: inspecting afterwards races with other tests' removals.
            listing = docker(
                *command,
                "--filter",
                f"label={label}",
                "--format",
                fields.replace(".ID", ".Name") if kind == "volume" else fields,
            )
            for line in listing.splitlines():
                rid, dockyard_project, compose_project = line.split("\t")
                project = dockyard_project or compose_project
                if project.startswith(f"{prefix}-"):
                    found.add((kind, rid, project))
    return sorted(found)


def remove(resources: list[tuple[str, str, str]]) -> None:
    """Remove resources, containers first (networks and volumes are in use until then)."""
    for kind in KINDS:
        doomed = [rid for k, rid, _ in resources if k == kind]
        if doomed:
            command = {"container": ["rm", "-f", "-v"], "network": ["network", "rm"], "volume": ["volume", "rm", "-f"]}
            docker(*command[kind], *doomed, check=False)


def ctrl_c_reaches_children() -> None:
    """Give the commands the tests start SIGINT at its default, as a terminal's commands have it.

    A test run started in the background by a non-interactive shell (``nox &``, some CI steps)
    has SIGINT ignored, and every command it starts would inherit that: a test's Ctrl-C
    (``dockyard watch`` stopping, a session interrupted) would test a signal never seen.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 60) -> None:
    """Poll ``condition`` to a deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without outer DOCKYARD_* settings (or a handed-down berth), plain output."""
    # PYTEST_XDIST_*: a pytest started by a test is no worker of this run's xdist.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "PYTEST_XDIST_"))}
    return {**env, "CI": "1", **extra}


@dataclass
class Project:
    """One test project: a directory with pyproject.toml and compose.yaml."""

    root: Path
    prefix: str
    compose: Path

    @property
    def settings(self) -> dockyard.Settings:
        """Its settings, read now, ignoring DOCKYARD_* variables of the outer environment."""
        return dockyard.load_settings(self.root, env={})

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``dockyard ARGS`` in the project directory."""
        return subprocess.run(
            [str(DOCKYARD), *args],
            cwd=self.root,
            env=env or clean_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )


@dataclass
class Projects:
    """Makes test projects and remembers their prefixes for the leak check."""

    tmp_path: Path
    prefixes: list[str] = field(default_factory=list)

    def __call__(self, name: str, port_range: str, compose: str, **options: object) -> Project:
        prefix = f"it{TOKEN}-{name}"
        root = self.tmp_path / name
        root.mkdir()
        table = {
            "compose_files": ["compose.yaml"],
            "project_prefix": prefix,
            "port_range": port_range,
            "block_size": 10,
            "max_berths": 3,
            "lock_dir": str(root / "locks"),
            "health_timeout": 30,
            "artifacts_dir": "artifacts",
            "stop_timeout": 1,
            **options,
        }
        # JSON scalars and arrays are valid TOML values.
        lines = ["[tool.dockyard]", *(f"{key} = {json.dumps(value)}" for key, value in table.items())]
        (root / "pyproject.toml").write_text("\n".join(lines) + "\n")
        compose_path = root / "compose.yaml"
        compose_path.write_text(compose)
        self.prefixes.append(prefix)
        return Project(root, prefix, compose_path)


def service(
    name: str,
    *,
    ports: Sequence[str] = (),
    command: Sequence[str] = ("sleep", "infinity"),
    health: Sequence[str] = ("CMD", "true"),
    retries: int = 30,
    interval: str = "1s",
    extra: Sequence[str] = (),
) -> str:
    """One service of ``IMAGE`` as compose YAML (JSON lists are YAML flow sequences); stops fast."""
    lines = [
        f"  {name}:",
        f"    image: {IMAGE}",
        f"    command: {json.dumps(list(command))}",
        "    init: true",
        "    stop_grace_period: 1s",
        f"    healthcheck: {{test: {json.dumps(list(health))}, interval: {interval}, timeout: 5s, retries: {retries}}}",
    ]
    if ports:
        lines.append(f"    ports: {json.dumps(list(ports))}")
    lines += [f"    {line}" for line in extra]
    return "\n".join(lines) + "\n"


def compose(*services: str, volumes: Sequence[str] = ()) -> str:
    """A compose file of ``services`` (from :func:`service`) and named ``volumes``."""
    text = "services:\n" + "".join(services)
    if volumes:
        text += "volumes:\n" + "".join(f"  {v}: {{}}\n" for v in volumes)
    return text
