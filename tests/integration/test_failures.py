"""A stack that does not become healthy: the error names the service and shows the evidence."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import dockyard
from dockyard.sessions import keeper_client

from .helpers import NOTHING, Projects, compose, project_resources, service

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]

SECRET = "plantedsecret123"  # noqa: S105 - planted to prove it is masked everywhere
# The service prints the password to its log and its health check prints it in its output,
# so a bundle or message that is not masked shows it.
SICK = compose(
    service("fine"),
    service(
        "sick",
        command=["sh", "-c", 'echo "connecting with password $$DB_PASSWORD"; sleep infinity'],
        health=["CMD", "sh", "-c", 'echo "db refused password $$DB_PASSWORD"; false'],
        retries=2,
        extra=["environment:", f"  DB_PASSWORD: {SECRET}"],
    ),
)
CRASHING = compose(service("fine"), service("crash", command=["sh", "-c", "exit 3"]))


def start(settings: dockyard.Settings) -> None:
    """Bring the stack up and down again (it is expected to fail on the way up)."""
    with dockyard.running_stack(settings):
        pass


def test_unhealthy_service_is_named_with_its_evidence_and_no_secret(make_project: Projects) -> None:
    project = make_project("unhealthy", "22300-22399", SICK, health_timeout=20)
    settings = project.settings
    with pytest.raises(dockyard.StackUnhealthy) as caught:
        start(settings)
    error = caught.value
    text = str(error)
    assert error.services == ("sick",)
    assert "service 'sick' is unhealthy" in text
    assert "db refused password ********" in text  # the health-check output, masked
    assert SECRET not in text
    assert error.exit_code == dockyard.ExitCode.STACK_UNHEALTHY

    assert error.bundle is not None
    bundle = Path(error.bundle)
    assert bundle.is_dir()
    assert bundle.parent == settings.artifacts_dir
    files = {p.name for p in bundle.iterdir()}
    assert {"sick.log", "sick.inspect.json", "ps.json", "compose-config.json"} <= files
    assert "connecting with password ********" in (bundle / "sick.log").read_text()
    inspected = json.loads((bundle / "sick.inspect.json").read_text())
    assert inspected["State"]["Health"]["Status"] == "unhealthy"
    assert "db refused password ********" in inspected["State"]["Health"]["Log"][-1]["Output"]
    health = {row["service"]: row["health"] for row in json.loads((bundle / "ps.json").read_text())}
    assert health["sick"] == "unhealthy"
    assert "sick" in json.loads((bundle / "compose-config.json").read_text())["services"]
    for path in bundle.iterdir():
        assert SECRET not in path.read_text(), path.name

    assert project_resources(settings.project_name(0)) == NOTHING


def test_service_exiting_at_start_reports_its_exit_code(make_project: Projects) -> None:
    project = make_project("crashing", "22400-22499", CRASHING, health_timeout=20)
    settings = project.settings
    with pytest.raises(dockyard.StackUnhealthy) as caught:
        start(settings)
    assert caught.value.services == ("crash",)
    assert "service 'crash' exited with code 3" in str(caught.value)
    assert project_resources(settings.project_name(0)) == NOTHING


@pytest.mark.usefixtures("orphans_alone")
def test_keep_on_failure_leaves_the_stack_running(make_project: Projects) -> None:
    project = make_project("keep", "22500-22599", SICK, health_timeout=20, keep_on_failure=True)
    settings = project.settings
    with pytest.raises(dockyard.StackUnhealthy) as caught:
        start(settings)
    assert "keep_on_failure" in str(caught.value)
    assert SECRET not in str(caught.value)
    containers = project_resources(settings.project_name(0))["container"]
    states = {c["Config"]["Labels"]["com.docker.compose.service"]: c["State"]["Status"] for c in containers}
    assert states == {"fine": "running", "sick": "running"}

    # The session has ended: the error's own advice must take the kept stack down.
    advice = re.search(r"take it down with `dockyard ([^`]+)`", str(caught.value))
    assert advice is not None, str(caught.value)
    cleanup = project.cli(*advice[1].split())
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert project_resources(settings.project_name(0)) == NOTHING


def test_the_keepers_error_reaches_up_as_its_own_class(make_project: Projects) -> None:
    """`dockyard up`'s keeper runs the stack in another process; its StackUnhealthy crosses the pipe whole."""
    project = make_project("keptsick", "27200-27299", CRASHING, health_timeout=20)
    settings = project.settings
    with pytest.raises(dockyard.StackUnhealthy) as caught:
        keeper_client.start_keeper(settings, build=False)
    assert caught.value.services == ("crash",)
    assert caught.value.exit_code == dockyard.ExitCode.STACK_UNHEALTHY
    assert caught.value.bundle is not None
    assert Path(caught.value.bundle).parent == settings.artifacts_dir
    assert "service 'crash' exited with code 3" in str(caught.value)
    assert project_resources(settings.project_name(0)) == NOTHING
