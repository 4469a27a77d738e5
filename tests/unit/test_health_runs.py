"""The service's own health check, run detached: each look only asks whether it ended; no Docker.

A fake engine API stands in for exec_create / exec_start / exec_inspect, with its own clock of
how long the check runs.
"""

from __future__ import annotations

import time
from typing import Any, cast

import docker.errors  # noqa: F401 - imported here, so that a look's time is the look's own
import pytest

from dockyard.stack.services import ServiceState
from dockyard.stack.waits import healthcheck
from dockyard.stack.waits.healthcheck import EXEC_POLL, HealthCheck
from dockyard.stack.waits.protocol import Target

CHECKED = {"Config": {"Healthcheck": {"Test": ["CMD", "probe"], "Timeout": 2e9}}}


class Engine:
    """Execs that run for ``runs`` seconds each and exit with the next of ``codes`` (None: forever)."""

    def __init__(self, runs: float, codes: list[int | None]) -> None:
        self.runs, self.codes = runs, codes
        self.execs: dict[str, tuple[float, int | None]] = {}
        self.created: list[tuple[str, list[str]]] = []

    def exec_create(self, container: str, command: list[str], **_: object) -> dict[str, str]:
        self.created.append((container, command))
        exec_id = f"e{len(self.created)}"
        self.execs[exec_id] = (0.0, self.codes.pop(0))
        return {"Id": exec_id}

    def exec_start(self, exec_id: str, *, detach: bool) -> None:
        assert detach  # the look must not wait for the command
        self.execs[exec_id] = (time.monotonic(), self.execs[exec_id][1])

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        began, code = self.execs[exec_id]
        running = code is None or time.monotonic() - began < self.runs
        return {"Running": running, "ExitCode": None if running else code}


@pytest.fixture(autouse=True)
def docker_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(healthcheck, "is_podman", lambda api: False)
    monkeypatch.setattr(healthcheck, "closed_port", lambda info: None)  # its ports accept


def target(engine: Engine, container: str = "c1") -> Target:
    return Target(ServiceState("api", container, "running", "starting", None), CHECKED, cast(Any, engine))


def look_until_done(check: HealthCheck, engine: Engine, limit: float = 5.0) -> tuple[int, Any]:
    looks, deadline = 0, time.monotonic() + limit
    while time.monotonic() < deadline:
        looks += 1
        seen = check.check(target(engine))
        if seen.ready or seen.detail != "the check is running":
            return looks, seen
        time.sleep(seen.again or 0)
    raise AssertionError("the check never ended")


def test_each_look_returns_at_once_while_the_check_runs() -> None:
    engine = Engine(runs=0.2, codes=[0])
    check = HealthCheck()
    began = time.monotonic()
    first = check.check(target(engine))
    assert time.monotonic() - began < 0.05  # it did not wait for the command
    assert first.detail == "the check is running"
    assert first.again == EXEC_POLL
    looks, seen = look_until_done(check, engine)
    assert seen.ready
    assert looks > 3  # it was looked at while it ran, not waited for
    assert engine.created == [("c1", ["probe"])]  # one run


def test_a_failed_check_runs_again_no_sooner_than_it_took() -> None:
    engine = Engine(runs=0.15, codes=[1, 0])
    check = HealthCheck()
    _, seen = look_until_done(check, engine)
    assert seen.detail == "the check exited 1"
    assert seen.again is not None
    assert seen.again >= 0.15  # a heavy check does not starve the service it checks
    _, seen = look_until_done(check, engine)
    assert seen.ready
    assert len(engine.created) == 2


def test_a_check_that_hangs_past_its_timeout_has_failed() -> None:
    engine = Engine(runs=0.0, codes=[None])
    check = HealthCheck()
    info = {"Config": {"Healthcheck": {"Test": ["CMD", "probe"], "Timeout": 0.2e9}}}
    hung = Target(ServiceState("api", "c1", "running", "starting", None), info, cast(Any, engine))
    deadline = time.monotonic() + 5
    while (seen := check.check(hung)).detail == "the check is running":
        assert time.monotonic() < deadline
        time.sleep(EXEC_POLL)
    assert seen.detail == "the check has not passed yet"
    assert check.running is None  # the next look starts it anew


def test_a_new_container_gets_a_run_of_its_own() -> None:
    engine = Engine(runs=10.0, codes=[0, 0])
    check = HealthCheck()
    check.check(target(engine, "c1"))
    check.check(target(engine, "c2"))  # recreated meanwhile: the first run says nothing of it
    assert [container for container, _ in engine.created] == ["c1", "c2"]
