"""The host the bench runs on: environments, compose command lines, the files' ports, leftovers.

Bare compose publishes the compose files' fixed ports (5432, 6379, 8000, 8001), so its runs
wait for those to be free; dockyard's run in berths of their own.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from bench import RESULTS, ROOT, BenchError
from bench.procs import run

DEMO_FILES = ("compose/infra.yml", "compose/app.yml")
INFRA_FILES = ("compose/infra.yml",)
# Bare compose cannot pull debian:bookworm-slim on a registry-less host; dockyard points the
# build argument at the base image it bootstrapped. Images are built already (`dockyard images`),
# so the value only has to make the compose files valid.
BASE_IMAGE = os.environ.get("BENCH_BASE_IMAGE", "dockyard/debian:bookworm-minbase")
FAST_CHECKS = RESULTS / "interval-1s.yml"


def compose_env() -> dict[str, str]:
    """Environment of the bare `docker compose` baselines."""
    return {**os.environ, "BASE_IMAGE": BASE_IMAGE}


def dockyard_env(files: Sequence[str] | None = None, **extra: str) -> dict[str, str]:
    """Environment of `dockyard` commands, on ``files`` (default: the project's own)."""
    env = {**os.environ, "NO_COLOR": "1", **extra}
    env.pop("BASE_IMAGE", None)  # dockyard resolves the base image itself
    if files is not None:
        env["DOCKYARD_COMPOSE_FILES"] = ",".join(files)
    return env


def dockyard_cmd(*args: str) -> list[str]:
    """``python -m dockyard ARGS`` with this interpreter: the console script, whatever PATH holds."""
    return [sys.executable, "-m", "dockyard", *args]


def compose_cmd(project: str, files: Sequence[str | Path], *args: str) -> list[str]:
    """``docker compose -p PROJECT -f FILE ... ARGS``."""
    cmd = ["docker", "compose", "-p", project]
    for path in files:
        cmd += ["-f", str(path)]
    return [*cmd, *args]


def compose_config(files: Sequence[str]) -> dict[str, Any]:
    """The effective compose config of ``files``, as compose resolves it."""
    proc = run(compose_cmd("bench-config", files, "config", "--format", "json"), timeout=60, env=compose_env())
    config = proc.check().json()
    if not isinstance(config, dict):
        raise BenchError(f"`docker compose config` of {list(files)} is not a mapping")
    return config


def published_ports(config: Mapping[str, Any]) -> dict[str, dict[int, int]]:
    """Service -> container port -> host port that a compose config publishes."""
    ports: dict[str, dict[int, int]] = {}
    for name, svc in config.get("services", {}).items():
        for port in svc.get("ports", []):
            if port.get("published"):
                ports.setdefault(name, {})[int(port["target"])] = int(port["published"])
    return ports


def interval_override(config: Mapping[str, Any], interval: str = "1s") -> str:
    """A compose override setting every health check of ``config`` to ``interval``.

    The best a compose user can hand-tune: `up --wait` waits for the engine's next check, so
    the interval is most of what bare compose waits. A disabled check stays disabled.
    """
    services = {
        name: {"healthcheck": {"interval": interval}}
        for name, svc in sorted(config.get("services", {}).items())
        if svc.get("healthcheck") and not svc["healthcheck"].get("disable")
    }
    head = f"# Written by the bench: every health check at a {interval} interval.\n"
    return head + yaml.safe_dump({"services": services}, sort_keys=True)


def fast_check_files(files: Sequence[str] = DEMO_FILES) -> tuple[str, ...]:
    """``files`` plus an override (written now) putting every health check at a 1 s interval."""
    FAST_CHECKS.parent.mkdir(parents=True, exist_ok=True)
    FAST_CHECKS.write_text(interval_override(compose_config(files)))
    return (*files, str(FAST_CHECKS.relative_to(ROOT)))


def port_free(port: int) -> bool:
    """Whether nothing listens on ``port`` of the host (any address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - compose publishes on every address
        except OSError:
            return False
    return True


def wait_ports_free(ports: Sequence[int], timeout: float = 120.0) -> None:
    """Wait to a deadline until nobody holds ``ports`` (the baselines publish the files' fixed ports)."""
    deadline = time.monotonic() + timeout
    while busy := [p for p in ports if not port_free(p)]:
        if time.monotonic() > deadline:
            raise BenchError(
                f"host ports {busy} stay busy, so bare compose cannot publish the demo's fixed ports; "
                "stop whatever listens there (`ss -ltnp`) and run the bench again"
            )
        time.sleep(1.0)  # polling the ports to a deadline


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200 right now (one try, 2 s)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - a loopback URL we built
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def resources(label: str) -> list[str]:
    """Containers, networks and volumes carrying ``label`` (``key=value``) on the engine."""
    found = []
    for kind in ("ps -a", "network ls", "volume ls"):
        out = run(["docker", *kind.split(), "-q", "--filter", f"label={label}"], timeout=60).check()
        found += [f"{kind.split()[0]} {line}" for line in out.stdout.split() if line]
    return found


def project_resources(project: str) -> list[str]:
    """Anything of compose project ``project`` still on the engine."""
    return resources(f"com.docker.compose.project={project}")


def compose_down_quietly(project: str, files: Sequence[str]) -> None:
    """Cleanup: remove whatever of ``project`` is left (idempotent)."""
    if project_resources(project):
        run(
            compose_cmd(project, files, "down", "-v", "--remove-orphans", "-t", "1"), timeout=120, env=compose_env()
        ).check()


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def versions() -> dict[str, str]:
    """Versions of what is measured and what it runs on."""
    found = {"python": platform.python_version()}
    for dist in ("dockyard", "testcontainers", "python-on-whales", "docker"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    for key, cmd in (
        ("docker_engine", ["docker", "version", "--format", "{{.Server.Version}}"]),
        ("docker_compose", ["docker", "compose", "version", "--short"]),
        ("git", ["git", "describe", "--always", "--dirty"]),
    ):
        with contextlib.suppress(BenchError, OSError):
            found[key] = run(cmd, timeout=30).check().stdout.strip()
    return found
