"""What a killed session leaves behind is reaped; what is not ours is never touched."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

import pytest

import dockyard
from dockyard.engine.labels import labels_for

from .helpers import (
    IMAGE,
    NOTHING,
    TOKEN,
    Project,
    Projects,
    clean_env,
    compose,
    docker,
    project_resources,
    service,
    wait_for,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]

# `first` never turns healthy (nothing creates the marker) and `second` waits for it, so
# `docker compose up` is still running, with both containers created, when the session dies.
MARKER = "/tmp/ready"  # noqa: S108 - a path inside the container, never created
SLOW = compose(
    service("first", health=["CMD", "test", "-f", MARKER], retries=1000, extra=["volumes: [data:/data]"]),
    service("second", extra=["depends_on: {first: {condition: service_healthy}}"]),
    volumes=["data"],
)
SESSION = """
import sys
import dockyard
from dockyard.engine.labels import labels_for
with dockyard.running_stack(dockyard.load_settings(sys.argv[1], env={})):
    raise SystemExit("the stack came up, but it never should")
"""


def kill_during_up(project: Project) -> int:
    """Start a session that runs the stack, SIGKILL it (and its compose) mid-`up`; its pid."""
    settings = project.settings
    record = settings.lock_dir / "berth-0.json"
    compose_project = settings.project_name(0)
    log = project.root / "session.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SESSION, str(project.root)],
            cwd=project.root,
            # Without its watchdog, which would reap at once: these tests are of the fallbacks.
            env={**clean_env(), "DOCKYARD_WATCHDOG": "0"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def containers_created() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the session ended by itself ({proc.returncode}):\n{log.read_text()}")
        if not record.exists():
            return False
        rows = docker(
            *("ps", "-a", "--filter", f"label=com.docker.compose.project={compose_project}"),
            *("--format", '{{.Label "com.docker.compose.service"}}={{.State}}'),
        ).split()
        states = dict(row.split("=", 1) for row in rows)
        return states == {"first": "running", "second": "created"}  # compose waits for `first`

    try:
        wait_for("the session's containers", containers_created)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the whole session: python and its `docker compose up`
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return proc.pid


def assert_left_behind(project_name: str) -> None:
    """The killed session's containers, network and volume exist, labelled as ours."""
    resources = project_resources(project_name)
    assert {kind: len(items) for kind, items in resources.items()} == {"container": 2, "network": 1, "volume": 1}
    states = {c["Config"]["Labels"]["com.docker.compose.service"]: c["State"]["Status"] for c in resources["container"]}
    assert states == {"first": "running", "second": "created"}
    assert all(c["Config"]["Labels"]["dockyard.managed"] == "true" for c in resources["container"])


@pytest.mark.usefixtures("orphans_alone")
def test_cleanup_removes_what_a_killed_session_left(make_project: Projects) -> None:
    project = make_project("killed", "22600-22699", SLOW, health_timeout=120)
    settings = project.settings
    pid = kill_during_up(project)
    assert_left_behind(settings.project_name(0))
    status = next(dockyard.BerthPool(settings).statuses())
    assert status.state is dockyard.State.STALE
    assert status.record is not None
    assert status.record.pid == pid

    cleanup = project.cli("cleanup")
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert "removing" in cleanup.stdout
    assert project_resources(settings.project_name(0)) == NOTHING
    assert next(dockyard.BerthPool(settings).statuses()).state is dockyard.State.FREE


@pytest.mark.usefixtures("orphans_alone")
def test_next_holder_reaps_what_a_killed_session_left(make_project: Projects) -> None:
    project = make_project("reaped", "22700-22799", SLOW, health_timeout=120)
    settings = project.settings
    pid = kill_during_up(project)
    assert_left_behind(settings.project_name(0))

    with dockyard.acquire_berth(settings, with_ports=False) as berth:
        assert berth.index == 0
        assert berth.stale is not None
        assert berth.stale.pid == pid
        assert berth.stale.project == settings.project_name(0)
        assert project_resources(berth.project) == NOTHING


def managed_network(name: str, berth: dockyard.Berth) -> None:
    """A network labelled exactly as a stack in ``berth`` would label it."""
    labels = labels_for(berth.index, berth.project, berth.lock_path, berth.record.lease_id, berth.record.started)
    docker("network", "create", *(f"--label={k}={v}" for k, v in labels.items()), name)


@pytest.mark.usefixtures("orphans_alone")
def test_cleanup_all_spares_lookalikes_and_other_pools(make_project: Projects) -> None:
    project = make_project("lookalikes", "22800-22899", compose(service("web")))
    settings = project.settings
    # Another project with its own lock_dir: another pool, as another user's would be.
    other = make_project("otherpool", "22900-22999", compose(service("web"))).settings
    fake_project = settings.project_name(0)
    # Named like ours and labelled like a compose project (even a `dockyard.` label), but not managed.
    lookalike = ["--label", f"com.docker.compose.project={fake_project}", "--label", "dockyard.berth=0"]
    running, created = f"test-{TOKEN}-lookalike", f"dockyard-{TOKEN}-lookalike"
    networks = [f"{fake_project}_default", f"dockyard-{TOKEN}-lookalike"]
    volume = f"test-{TOKEN}-lookalike"
    ours, theirs = f"{fake_project}-held", f"{other.project_name(0)}-held"
    try:
        docker("run", "-d", "--init", "--name", running, *lookalike, IMAGE, "sleep", "infinity")
        docker("create", "--name", created, *lookalike, IMAGE, "true")
        for network in networks:
            docker("network", "create", *lookalike, network)
        docker("volume", "create", *lookalike, volume)
        with (
            dockyard.acquire_berth(settings, with_ports=False) as mine,
            dockyard.acquire_berth(other, with_ports=False) as another,
        ):
            managed_network(ours, mine)  # held, in this pool: --all removes it
            managed_network(theirs, another)  # held, in another pool: a live stack to leave alone
            cleanup = project.cli("cleanup", "--all")
            assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
            assert docker("network", "ls", "-q", "--filter", f"name=^{ours}$") == ""
            assert docker("network", "ls", "-q", "--filter", f"name=^{theirs}$") != "", "another pool's live stack"

        assert docker("inspect", "-f", "{{.State.Status}}", running).strip() == "running"
        assert docker("inspect", "-f", "{{.State.Status}}", created).strip() == "created"
        for network in networks:
            docker("network", "inspect", network)
        docker("volume", "inspect", volume)
    finally:
        docker("rm", "-f", running, created, check=False)
        docker("network", "rm", *networks, ours, theirs, check=False)
        docker("volume", "rm", volume, check=False)
