"""What dockyard does differently on Podman, without an engine: the checks it runs, the fixes it names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest

from dockyard.engine.endpoints import is_podman
from dockyard.errors import ComposeError, StackUnhealthy, engine_remedy
from dockyard.settings import Settings
from dockyard.stack.compose import ComposeModel
from dockyard.stack.services import ServiceState
from dockyard.stack.waits import healthcheck
from dockyard.stack.waits.choice import Chooser, health_tests
from dockyard.stack.waits.healthcheck import HealthCheck
from dockyard.stack.waits.protocol import Target

MakeSettings = Callable[..., Settings]
WRITTEN = ["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/')"]
# What Podman's Docker API hands back for it: the arguments split at their spaces.
SPLIT = ["CMD", "python3", "-c", "import", "urllib.request;", "urllib.request.urlopen('http://127.0.0.1:8000/')"]


class FakeApi:
    """An engine's version answer, counted."""

    def __init__(self, components: list[dict[str, Any]], url: str) -> None:
        self.components = components
        self.base_url = url
        self.asked = 0

    def version(self) -> dict[str, Any]:
        self.asked += 1
        return {"Version": "4.3.1", "Components": self.components}


def test_podman_is_told_by_its_engine_component_and_asked_once() -> None:
    podman = FakeApi([{"Name": "Podman Engine", "Version": "4.3.1"}], "http+docker://podman-a")
    docker = FakeApi([{"Name": "Engine", "Version": "28.2.2"}, {"Name": "containerd"}], "http+docker://docker-a")

    assert is_podman(cast(Any, podman))
    assert is_podman(cast(Any, podman))
    assert not is_podman(cast(Any, docker))
    assert podman.asked == 1


def test_health_tests_are_the_compose_files_own(make_settings: MakeSettings) -> None:
    config = {
        "services": {
            "api": {"healthcheck": {"test": WRITTEN}},
            "db": {"healthcheck": {"test": ["CMD-SHELL", "pg_isready -q"]}},
            "old": {"healthcheck": {"test": "redis-cli ping"}},
            "off": {"healthcheck": {"test": ["NONE"]}},
            "none": {},
        }
    }
    tests = health_tests(ComposeModel(make_settings(), config))

    assert tests == {"api": WRITTEN, "db": ["CMD-SHELL", "pg_isready -q"], "old": ["CMD-SHELL", "redis-cli ping"]}


class Recorder:
    """Stands in for running a check in the container: records the command, says it passed."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, target: Target, command: list[str], limit: float) -> int:
        self.commands.append(command)
        return 0


def test_the_check_run_is_the_one_written_not_the_engines_copy(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    monkeypatch.setattr(healthcheck, "run_check", recorder)
    monkeypatch.setattr(healthcheck, "closed_port", lambda info: None)
    monkeypatch.setattr(healthcheck, "is_podman", lambda api: True)  # the check is run to its end
    model = ComposeModel(make_settings(), {"services": {"api": {"healthcheck": {"test": WRITTEN}}}})
    info = {"Config": {"Healthcheck": {"Test": SPLIT, "Timeout": 2e9}}}
    strategy = Chooser.of(model, make_settings())("api", info)
    running = ServiceState("api", "c1", "running", "starting", None)

    assert isinstance(strategy, HealthCheck)
    assert strategy.check(Target(running, info, cast(Any, None))).ready
    assert recorder.commands == [WRITTEN[1:]]
    # Without the compose files' copy (a container dockyard did not start), the engine's is run.
    assert HealthCheck().check(Target(running, info, cast(Any, None))).ready
    assert recorder.commands[-1] == SPLIT[1:]


@pytest.mark.parametrize(
    ("engine_said", "fix"),
    [
        (
            "container create: container-init binary not found on the host: stat /usr/libexec/podman/catatonit: "
            "no such file or directory",
            "install catatonit",
        ),
        (
            "runc create failed: unable to start container process: error during container init: error setting "
            "rlimits for ready process: error setting rlimit type 7: operation not permitted",
            "default_ulimits",
        ),
    ],
)
def test_known_podman_faults_get_their_fix(engine_said: str, fix: str) -> None:
    unhealthy = StackUnhealthy(f"service 'db' could not start: {engine_said}", services=["db"], bundle="/b")
    compose = ComposeError(
        "up --no-start", ["docker", "compose", "up"], 1, f"Error response from daemon: {engine_said}"
    )

    assert fix in (engine_remedy(engine_said) or "")
    assert unhealthy.remedy is not None
    assert fix in unhealthy.remedy
    assert unhealthy.remedy.endswith("see the artifact bundle in /b")
    assert compose.remedy is not None
    assert fix in compose.remedy


def test_other_faults_keep_the_usual_remedy() -> None:
    assert engine_remedy("port is already allocated") is None
    unhealthy = StackUnhealthy("service 'db' exited with code 3 during start", services=["db"], bundle="/b")
    assert unhealthy.remedy == "see the artifact bundle in /b"
    compose = ComposeError("up", ["docker", "compose", "up"], 1, "no such service: x")
    assert compose.remedy == "run `dockyard validate` to check the compose files and the engine"
