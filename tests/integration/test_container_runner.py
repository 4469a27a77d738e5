"""The test runner in a container (a CI job with the host's Docker socket mounted).

dockyard finds the runner's container on the engine, attaches it to each stack's networks,
hands out service addresses that work from there, and detaches it again before the networks
are removed, on `down` and when a dead session's stack is reaped.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import dockyard
from dockyard.dirs import ensure_lock_dir
from dockyard.engine.endpoints import engine_name, sdk
from dockyard.pool.reaping import reap_berth

from .helpers import (
    DOCKYARD,
    IMAGE,
    TOKEN,
    Projects,
    clean_env,
    compose,
    docker,
    ids,
    leftovers,
    service,
    wait_for,
)
from .runner_image import PURPOSE, REPO, ensure_runner_image

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

RUN_TIMEOUT = 840  # the demo journeys from a container: well under a minute here, minutes on a loaded CI host


def _socket() -> Path:
    engine = engine_name()
    if not engine.startswith("unix://"):
        pytest.skip(f"the runner container needs the engine's unix socket; the engine is {engine}")
    return Path(engine.removeprefix("unix://"))


@pytest.fixture
def foreign() -> Iterator[str]:
    """A running container that is not dockyard's (like a CI job's own), removed afterwards."""
    name = f"dockyard-foreign-{TOKEN}-{secrets.token_hex(2)}"
    labels = [arg for key, value in PURPOSE.items() for arg in ("--label", f"{key}={value}")]
    docker("run", "-d", "--init", "--name", name, *labels, IMAGE, "sleep", "infinity")
    try:
        yield name
    finally:
        docker("rm", "-f", name, check=False)


def _networks_of(name: str) -> set[str]:
    return set(sdk().api.inspect_container(name)["NetworkSettings"]["Networks"])


@pytest.mark.parametrize("teardown", ["down", "reaper"])
def test_a_foreign_container_on_the_network_does_not_block_teardown(
    make_project: Projects, foreign: str, teardown: str
) -> None:
    port_range = {"down": "26600-26649", "reaper": "26650-26699"}[teardown]
    project = make_project(f"foreign{teardown}", port_range, compose(service("web", ports=["80"])))
    settings = project.settings
    with dockyard.acquire_berth(settings, with_ports=False) as berth:
        said: list[str] = []
        stack = dockyard.Stack(settings, berth, progress=said.append)
        stack.up()
        try:
            (network,) = ids("network", f"com.docker.compose.project={stack.project}")
            docker("network", "connect", network, foreign)  # what a runner container's attach does
            if teardown == "reaper":
                reap_berth(sdk(), berth.lock_path)  # the watchdog's and the next holder's sweep
                assert not leftovers(project.prefix)  # by the sweep itself, before `down` below
        finally:
            stack.down()
    assert not leftovers(project.prefix)
    # Detached before `compose down`: it did not fail (Compose 2.40 only warns that the network is in use).
    assert not [line for line in said if "compose down" in line], said
    # Only disconnected: still running, on its own network.
    assert docker("inspect", "--format", "{{.State.Running}}", foreign).strip() == "true"
    assert _networks_of(foreign) == {"bridge"}


@pytest.fixture
def runner_image(base_image: str) -> str:
    """The runner image, with the demo's images built on the host first (both cached by content)."""
    built = subprocess.run([DOCKYARD, "images"], cwd=REPO, env=clean_env(), capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr[-2000:]
    return ensure_runner_image(base_image)


def runner(image: str, name: str, prefix: str, *command: str, options: Sequence[str] = ()) -> list[str]:
    """``docker run`` of ``command`` in a runner container, as the README tells users to start one."""
    sock = _socket()
    # The host's pool: the container's berths must not take port blocks that host sessions hold.
    lock_dir = dockyard.load_settings(REPO, env=clean_env()).lock_dir
    ensure_lock_dir(lock_dir)
    labels = [arg for key, value in PURPOSE.items() for arg in ("--label", f"{key}={value}")]
    return [
        "docker", "run", "--rm", "--init", "--name", name, *labels, *options,
        "--user", f"{os.getuid()}:{os.getgid()}", "--group-add", str(os.stat(sock).st_gid),
        "-v", f"{sock}:/var/run/docker.sock",
        "-v", f"{lock_dir}:{lock_dir}",
        # The checkout at the same path: compose files, build contexts and bind mounts mean the same there.
        "-v", f"{REPO}:{REPO}", "-w", str(REPO),
        # Its own project names, for the leak check beside other sessions' stacks.
        "-e", f"DOCKYARD_LOCK_DIR={lock_dir}", "-e", f"DOCKYARD_PROJECT_PREFIX={prefix}", "-e", "CI=1",
        image, *command,
    ]  # fmt: skip


def test_the_demo_journeys_pass_from_a_runner_container(runner_image: str) -> None:
    """`dockyard run -- pytest tests/e2e`, then tests/infra, in a container with the host socket and lock dir."""
    prefix, name = f"crt{TOKEN}", f"dockyard-runner-{TOKEN}-{secrets.token_hex(2)}"
    # The journeys, then per-test fresh state (its DSN and Redis URL) against the infra services.
    script = (
        "dockyard run -- pytest tests/e2e -p no:cacheprovider && "
        "DOCKYARD_COMPOSE_FILES=compose/infra.yml dockyard run -- pytest tests/infra -p no:cacheprovider"
    )
    command = runner(runner_image, name, prefix, "sh", "-c", script)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    finally:
        docker("rm", "-f", name, check=False)
    output = f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-3000:]}"
    assert result.returncode == 0, output
    assert "attaching it to the stack's networks" in result.stderr, output
    # Both pytest runs' summary lines, all passed (none failed, errored or skipped).
    summaries = re.findall(r"^=+ (.*) in [\d.]+s", result.stdout, re.MULTILINE)
    assert len(summaries) == 2, output
    assert all(re.fullmatch(r"\d+ passed", summary) for summary in summaries), output
    assert not leftovers(prefix), leftovers(prefix)
    assert not docker("ps", "-aq", "--filter", f"name={name}").strip()


def test_a_killed_session_in_a_runner_container_is_reaped_while_the_container_lives_on(runner_image: str) -> None:
    """SIGKILL of `dockyard run` in the container: its watchdog removes the stack, detaching the runner first."""
    prefix, name = f"crk{TOKEN}", f"dockyard-runner-{TOKEN}-{secrets.token_hex(2)}"
    # The session in the background (its pid noted); the container lives on after it.
    script = "dockyard run -- sleep infinity & echo $! > /tmp/session.pid; exec sleep infinity"
    report = "/tmp/run-report.json"  # noqa: S108 - inside the runner container: written once the stack is up
    options = ["-d", "-e", f"DOCKYARD_RUN_REPORT={report}", "-e", "DOCKYARD_COMPOSE_FILES=compose/infra.yml"]
    docker(*runner(runner_image, name, prefix, "sh", "-c", script, options=options)[1:])
    try:
        wait_for(
            "the stack in the runner container",
            lambda: _exists(name, report),
            timeout=180,
        )
        attached = {n for n in _networks_of(name) if n.startswith(f"{prefix}-")}
        assert attached, _networks_of(name)
        docker("exec", name, "sh", "-c", "kill -KILL $(cat /tmp/session.pid)")
        wait_for("the watchdog to reap the stack", lambda: not leftovers(prefix), timeout=60)
        # The runner itself is untouched: still running, off the removed networks.
        assert docker("inspect", "--format", "{{.State.Running}}", name).strip() == "true"
        assert _networks_of(name) == {"bridge"}
    finally:
        docker("rm", "-f", name, check=False)
    assert not leftovers(prefix), leftovers(prefix)


def _exists(container: str, path: str) -> bool:
    return subprocess.run(["docker", "exec", container, "test", "-s", path], check=False).returncode == 0
