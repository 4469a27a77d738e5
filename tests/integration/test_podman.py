"""The demo stack on Podman's Docker-compatible API: validate, its journeys, nothing left behind.

Podman differs from Docker Engine where dockyard looks closest: without systemd it never runs
a container's health check, its detached execs never report that they ended, and its Docker
API splits a ``CMD`` check's arguments at spaces (the demo's own checks are of that kind). The
journeys pass only if dockyard runs each check itself, as the compose files wrote it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import DOCKYARD, clean_env
from .podman_engine import PodmanEngine, podman_engine, unavailable_reason

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def podman() -> Iterator[PodmanEngine]:
    """A Podman service of this module's own, the demo's images built on the main engine first.

    dockyard copies a stack's images from another engine of this host that has them, as it
    does between Docker engines, so the demo is built once, by Docker.
    """
    if reason := unavailable_reason():
        pytest.skip(f"Podman cannot be tested here: {reason}")
    built = subprocess.run(
        [str(DOCKYARD), "images"], check=False, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stdout + built.stderr
    with podman_engine() as engine:
        yield engine


def on(engine: PodmanEngine, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``dockyard`` in the demo project against ``engine``."""
    env = clean_env(DOCKER_HOST=engine.endpoint, CONTAINERS_CONF=str(engine.root / "containers.conf"))
    return subprocess.run(
        [str(DOCKYARD), *args], check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_validate_names_podman_and_its_smoke_passes(podman: PodmanEngine) -> None:
    done = on(podman, "validate")

    assert done.returncode == 0, done.stdout + done.stderr
    docker_line = next(line for line in done.stdout.splitlines() if line.split()[1:2] == ["docker:"])
    assert "Podman" in docker_line
    assert "runs each health check itself" in docker_line
    assert "smoke: up and down in a spare berth (4 services healthy)" in done.stdout
    assert podman.managed() == []


def test_the_demo_journeys_pass_on_podman(podman: PodmanEngine) -> None:
    done = on(podman, "run", "--", sys.executable, "-m", "pytest", "tests/e2e", "-q", "-p", "no:randomly")

    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert re.search(r"\b\d+ passed\b", out), out
    assert not re.search(r"\b\d+ (failed|errors?)\b", out), out
    assert "dockyard: run passed" in out
    assert podman.managed() == []
    assert podman.podman("ps", "--all", "--quiet") == ""  # the demo's containers, whatever their labels
