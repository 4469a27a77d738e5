"""The `dockyard` console script against the real engine: validate, up/status/down, run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dockyard
from dockyard.pool.berth import lock_is_held
from dockyard.sessions.keeper_client import KEEPER_PATH

from .helpers import NOTHING, Project, Projects, clean_env, compose, project_resources, service, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]

TWO_SERVICES = compose(service("web", ports=["80"]), service("db", ports=["5432"]))


def test_validate_quick_passes_in_a_good_project(make_project: Projects) -> None:
    project = make_project("validok", "23000-23099", TWO_SERVICES)
    result = project.cli("validate", "--quick")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    checks = [line.split(":", 1)[0].split(None, 1)[1] for line in lines if line.startswith("ok  ")]
    assert {"docker", "compose", "compose config", "parallel safety", "lock directory", "free berths"} <= set(checks)
    assert not [line for line in lines if line.startswith("FAIL")]


def test_validate_says_the_daemon_is_unreachable(make_project: Projects, tmp_path: Path) -> None:
    project = make_project("validnodaemon", "23100-23199", TWO_SERVICES)
    socket = tmp_path / "nonexistent.sock"
    result = project.cli("validate", "--quick", env=clean_env(DOCKER_HOST=f"unix://{socket}"))
    output = result.stdout + result.stderr
    assert result.returncode == int(dockyard.ExitCode.DOCKER_UNAVAILABLE), output
    assert f"FAIL docker: the Docker daemon at unix://{socket} is unreachable" in result.stdout
    assert any(line.strip().startswith("-> ") for line in result.stdout.splitlines()), output
    assert "Traceback" not in output


def test_validate_names_the_line_of_a_container_name(make_project: Projects) -> None:
    text = compose(service("web", ports=["80"], extra=["container_name: fixed-web"]), service("db"))
    project = make_project("validname", "23200-23299", text)
    line = text.splitlines().index("    container_name: fixed-web") + 1
    result = project.cli("validate", "--quick")
    assert result.returncode == int(dockyard.ExitCode.BAD_CONFIGURATION), result.stdout + result.stderr
    assert f"compose.yaml:{line}: web: fixed `container_name`" in result.stdout


def released(lock: Path) -> Callable[[], bool]:
    """Whether nobody holds ``lock`` any more (for :func:`wait_for`)."""
    return lambda: not lock_is_held(lock)


def stop_keepers(settings: dockyard.Settings) -> None:
    """Stop any keeper `dockyard up` left holding a berth of ``settings``' pool (after a failure)."""
    pool = dockyard.BerthPool(settings)
    for status in pool.statuses():
        if status.state is dockyard.State.LIVE and status.record is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(status.record.pid, signal.SIGTERM)
            wait_for(f"berth {status.index} to be released", released(pool.lock_path(status.index)))


def berth_row(project: Project, index: int) -> dict[str, Any]:
    """Berth ``index`` as `dockyard status --json` shows it."""
    result = project.cli("status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return next(row for row in rows if row["index"] == index)


def test_up_status_down(make_project: Projects) -> None:
    project = make_project("cliup", "23300-23399", TWO_SERVICES)
    settings = project.settings
    try:
        up = project.cli("up", "--json")
        assert up.returncode == 0, up.stdout + up.stderr
        info = json.loads(up.stdout)
        assert info["index"] == 0
        assert info["project"] == settings.project_name(0)
        assert info["port_block"] == [23300, 23309]
        assert sorted(info["ports"]) == ["db", "web"]
        assert {int(host) for ports in info["ports"].values() for host in ports.values()} <= set(range(23300, 23310))

        row = berth_row(project, 0)
        assert row["state"] == "live"
        assert row["project"] == info["project"]
        assert row["ports"] == info["ports"]  # the contract: status --json names the published ports too
        assert row["holder"]["pid"] != os.getpid()
        os.kill(row["holder"]["pid"], 0)  # the keeper is alive
        assert row["holder"]["command"].startswith(KEEPER_PATH)  # forked from the CLI, recorded as a keeper
        containers = project_resources(info["project"])["container"]
        assert sorted(c["State"]["Health"]["Status"] for c in containers) == ["healthy", "healthy"]

        down = project.cli("down")
        assert down.returncode == 0, down.stdout + down.stderr
        row = berth_row(project, 0)
        assert row["state"] == "free"
        assert row["holder"] is None
        assert project_resources(info["project"]) == NOTHING
    finally:
        stop_keepers(settings)


def test_run_hands_the_berth_to_the_command(make_project: Projects) -> None:
    project = make_project("clirun", "23400-23499", TWO_SERVICES)
    settings = project.settings
    code = "import os,json; print(json.loads(os.environ['DOCKYARD_BERTH'])['project'])"
    result = project.cli("run", "--", sys.executable, "-c", code)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == settings.project_name(0)
    assert project_resources(settings.project_name(0)) == NOTHING

    failing = project.cli("run", "--", sys.executable, "-c", "raise SystemExit(7)")
    assert failing.returncode == 7, failing.stdout + failing.stderr
    assert project_resources(settings.project_name(0)) == NOTHING
