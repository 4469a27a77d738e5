"""Readiness without Docker: strategy choice and specs, the wait loop over a fake engine, settle."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any, cast

import pytest

from dockyard.errors import ConfigError, DockyardError
from dockyard.settings import Settings, load_settings
from dockyard.stack.compose import ComposeModel
from dockyard.stack.project import ComposeProject
from dockyard.stack.readiness import POLL, Readiness
from dockyard.stack.services import ServiceState
from dockyard.stack.waits.choice import Chooser, parse, unwaited, wait_specs
from dockyard.stack.waits.exit import ExitZero
from dockyard.stack.waits.healthcheck import HealthCheck
from dockyard.stack.waits.http import Http
from dockyard.stack.waits.log import Log
from dockyard.stack.waits.ports import PortsServed
from dockyard.stack.waits.protocol import Seen, Target
from dockyard.stack.waits.settle import Settle
from dockyard.stack.waits.tcp import REFUSED_AGAIN, Tcp
from dockyard.ui.progress import Lines, as_reporter

MakeSettings = Callable[..., Settings]
HEALTHCHECK = {"Config": {"Healthcheck": {"Test": ["CMD", "true"]}}}
PUBLISHING = {"NetworkSettings": {"Ports": {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "20001"}]}}}


@pytest.mark.parametrize(
    ("spec", "kind", "name"),
    [
        ("http://:8000/health", Http, "http://:8000/health"),
        ("http://:8000", Http, "http://:8000/"),
        ("tcp://:5432", Tcp, "tcp://:5432"),
        ("log:ready to accept connections", Log, "log:ready to accept connections"),
        ("exit:0", ExitZero, "exit:0"),
    ],
)
def test_specs_parse_to_their_strategy(spec: str, kind: type, name: str) -> None:
    strategy = parse(spec)
    assert isinstance(strategy, kind)
    assert strategy is not None
    assert strategy.name == name


@pytest.mark.parametrize("spec", ["tcp://db:5432", "tcp://:5432/x", "http://:99999/", "log:", "exit:3", "sleep:5"])
def test_other_specs_are_not_strategies(spec: str) -> None:
    assert parse(spec) is None


def test_the_choice_goes_spec_one_shot_health_check_ports_settle() -> None:
    chooser = Chooser({"db": "tcp://:5432"}, one_shot={"migrate"})

    assert isinstance(chooser("db", HEALTHCHECK), Tcp)
    assert isinstance(chooser("migrate", HEALTHCHECK), ExitZero)
    assert isinstance(chooser("api", HEALTHCHECK), HealthCheck)
    assert isinstance(chooser("web", PUBLISHING), PortsServed)
    assert isinstance(chooser("worker", {}), Settle)
    assert isinstance(chooser("off", {"Config": {"Healthcheck": {"Test": ["NONE"]}}}), Settle)


def test_wait_specs_come_from_x_dockyard_and_the_settings(make_settings: MakeSettings) -> None:
    settings = make_settings()
    settings.compose_files[0].write_text(
        "services:\n  db:\n    image: x\n    x-dockyard: {wait: 'tcp://:5432'}\n  web:\n    image: x\n"
    )
    model = ComposeModel(settings, {"services": {"db": {"x-dockyard": {"wait": "tcp://:5432"}}, "web": {}}})
    assert wait_specs(model, settings) == {"db": "tcp://:5432"}

    root = settings.root
    with (root / "pyproject.toml").open("a") as fh:
        fh.write('[tool.dockyard.services.web]\nwait = "http://:8000/health"\n')
    again = load_settings(root, env={})
    assert again.service("web") == {"wait": "http://:8000/health"}
    assert wait_specs(ComposeModel(again, model.shape), again) == {"db": "tcp://:5432", "web": "http://:8000/health"}


def test_a_bad_wait_setting_names_the_key_and_the_forms(make_settings: MakeSettings) -> None:
    settings = make_settings()
    with (settings.root / "pyproject.toml").open("a") as fh:
        fh.write('[tool.dockyard.services.web]\nwait = "sleep 10"\n')
    with pytest.raises(ConfigError, match=r"services.*\[web\] wait must be one of .*tcp://:PORT"):
        load_settings(settings.root, env={})


def test_validate_warns_for_published_ports_without_check_or_strategy(make_settings: MakeSettings) -> None:
    settings = make_settings()
    config = {
        "services": {
            "app": {"ports": [{"target": 8000}]},
            "checked": {"ports": [{"target": 8001}], "healthcheck": {"test": ["CMD", "true"]}},
            "worker": {},
        }
    }
    (finding,) = unwaited(ComposeModel(settings, config), settings)
    assert finding.service == "app"
    assert finding.location == "compose.yaml:2"  # the line of `app:` in the conftest's compose file
    assert "tcp://:8000" in finding.problem


class FakeApi:
    """The engine calls a wait makes: inspect only."""

    def inspect_container(self, name: str) -> dict[str, Any]:
        return {"State": {"StartedAt": f"{name}-run-1", "Status": "running"}}


class FakeProject:
    """A project whose containers are in the states a test sets."""

    def __init__(self, *states: ServiceState) -> None:
        self.now = list(states)
        self.api = FakeApi()

    def states(self) -> list[ServiceState]:
        return list(self.now)


class Scripted:
    """A strategy that says what it is told to, look after look."""

    def __init__(self, *answers: Seen) -> None:
        self.answers = list(answers)
        self.name = "scripted"

    def check(self, target: Target) -> Seen:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def running(service: str, state: str = "running", code: int | None = None) -> ServiceState:
    return ServiceState(service, f"p-{service}-1", state, "", code)


def readiness(project: FakeProject, strategy: Scripted, lines: list[str], timeout: float = 5) -> Readiness:
    return Readiness(
        cast(ComposeProject, project),
        lambda: ["web"],
        timeout,
        as_reporter(Lines(lines.append)),
        chooser=lambda _service, _info: strategy,
    )


def test_a_wait_ends_when_the_strategy_says_ready() -> None:
    lines: list[str] = []
    strategy = Scripted(Seen.not_yet("connection refused"), Seen(ready=True))
    wait = readiness(FakeProject(running("web")), strategy, lines)

    assert wait.wait() is None
    assert lines[0] == "web: probing health: waiting for scripted"
    assert lines[-1].startswith("web: healthy")
    assert wait.passed == {"p-web-1": "p-web-1-run-1"}


class Clocked(Scripted):
    """A scripted strategy that notes when each look came."""

    def __init__(self, *answers: Seen) -> None:
        super().__init__(*answers)
        self.looks: list[float] = []

    def check(self, target: Target) -> Seen:
        self.looks.append(time.monotonic())
        return super().check(target)


class ListingProject(FakeProject):
    """A project that notes when the engine's listing was asked for."""

    def __init__(self, *states: ServiceState) -> None:
        super().__init__(*states)
        self.listings: list[float] = []

    def states(self) -> list[ServiceState]:
        self.listings.append(time.monotonic())
        return super().states()


def test_a_refused_port_is_looked_at_again_sooner_without_listing_the_containers_again() -> None:
    refused = Seen.not_yet("port 80: connection refused", REFUSED_AGAIN)
    strategy = Clocked(*[refused] * 5, Seen(ready=True))
    project = ListingProject(running("web"))

    assert readiness(project, strategy, []).wait() is None

    assert len(strategy.looks) == 6
    gaps = [b - a for a, b in zip(strategy.looks, strategy.looks[1:], strict=False)]
    assert all(REFUSED_AGAIN * 0.9 <= gap < POLL * 0.8 for gap in gaps), gaps
    took = strategy.looks[-1] - strategy.looks[0]
    assert len(project.listings) <= 1 + took / POLL + 1, (project.listings, took)


def test_a_look_that_says_nothing_of_its_pace_comes_back_at_the_usual_one() -> None:
    strategy = Clocked(Seen.not_yet("status 503"), Seen(ready=True))

    assert readiness(FakeProject(running("web")), strategy, []).wait() is None

    assert strategy.looks[1] - strategy.looks[0] >= POLL * 0.95


def test_the_port_strategies_ask_for_the_next_look_soon_only_when_the_port_was_refused() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        info = {"NetworkSettings": {"Networks": {"n": {"IPAddress": "127.0.0.1"}}, "Ports": {f"{port}/tcp": [{}]}}}
        target = Target(running("web"), info, cast(Any, None))
        assert Tcp(port).check(target) == Seen.not_yet(f"port {port}: connection refused", REFUSED_AGAIN)
        assert PortsServed([port]).check(target).again == REFUSED_AGAIN
        with_check = {**info, "Config": {"Healthcheck": {"Test": ["CMD", "true"]}}}
        assert HealthCheck().check(Target(running("web"), with_check, cast(Any, None))).again == REFUSED_AGAIN
    assert Tcp(port).check(Target(running("web", "created"), info, cast(Any, None))).again is None


def test_a_timed_out_wait_names_the_strategy_and_what_it_saw_last() -> None:
    lines: list[str] = []
    wait = readiness(FakeProject(running("web")), Scripted(Seen.not_yet("status 503")), lines, timeout=0.3)

    unready = wait.wait()

    assert unready is not None
    assert unready.services == ("web",)
    assert "service(s) 'web' not healthy after 0.3s (health_timeout); 'web' waited for scripted" in unready.reason
    assert unready.reason.endswith("last saw: status 503")


def test_an_exit_other_than_zero_is_never_ready() -> None:
    lines: list[str] = []
    wait = readiness(FakeProject(running("web", "exited", 3)), Scripted(Seen(ready=True)), lines)

    unready = wait.wait()

    assert unready is not None
    assert unready.reason == "service 'web' exited with code 3 during start"
    assert lines[-1] == "web: failed: exited with code 3 during start"


def test_settle_counts_running_time_and_restarts_the_count_on_a_restart() -> None:
    clock = [100.0]
    runs = ["run-1"]

    class Api:
        def inspect_container(self, _name: str) -> dict[str, Any]:
            return {"State": {"Status": "running", "StartedAt": runs[0]}}

    strategy = Settle(2, clock=lambda: clock[0])
    target = Target(running("worker"), {}, cast(Any, Api()))

    assert strategy.check(target) == Seen.not_yet("running for 0.0s of 2s")
    clock[0] += 2.5
    assert strategy.check(target).ready
    runs[0] = "run-2"  # restarted in between: the count starts again
    assert not strategy.check(target).ready
    assert strategy.check(Target(running("worker", "exited", 0), {}, cast(Any, Api()))).ready


def test_settle_time_comes_from_the_setting_and_each_service_overrides_it(make_settings: MakeSettings) -> None:
    settings = make_settings(settle=3.5)
    settings.compose_files[0].write_text(
        "services:\n  slow:\n    image: x\n    x-dockyard: {settle: 7}\n"
        "  worker:\n    image: x\n  quick:\n    image: x\n"
    )
    config = {"services": {"slow": {"x-dockyard": {"settle": 7}}, "worker": {}, "quick": {}}}
    with (settings.root / "pyproject.toml").open("a") as fh:
        fh.write("[tool.dockyard.services.quick]\nsettle = 0.5\n")
    settings = load_settings(settings.root, env={})
    chooser = Chooser.of(ComposeModel(settings, config), settings)

    chosen = {name: chooser(name, {}) for name in ("slow", "worker", "quick")}
    assert {name: cast(Settle, s).seconds for name, s in chosen.items()} == {"slow": 7.0, "worker": 3.5, "quick": 0.5}
    # The progress line says the settle time it waits for.
    assert chosen["worker"].name.startswith("3.5s of running (the settle time")
    # A service with a health check or published ports is not made to settle.
    assert isinstance(chooser("quick", HEALTHCHECK), HealthCheck)
    assert isinstance(chooser("slow", PUBLISHING), PortsServed)


def test_the_settle_time_is_said_in_the_progress_line() -> None:
    project, lines = FakeProject(running("worker")), list[str]()
    reporter = as_reporter(Lines(lines.append))
    readiness = Readiness(cast(ComposeProject, project), lambda: ["worker"], 30, reporter, Chooser(settle=0.2))
    assert readiness.wait() is None
    assert any("worker" in line and "waiting for 0.2s of running (the settle time" in line for line in lines), lines


@pytest.mark.parametrize("bad", [0, -1, "soon", True])
def test_a_bad_settle_time_names_the_key(make_settings: MakeSettings, bad: object) -> None:
    settings = make_settings()
    with (settings.root / "pyproject.toml").open("a") as fh:
        fh.write(f"[tool.dockyard.services.web]\nsettle = {json.dumps(bad)}\n")
    with pytest.raises(ConfigError, match=r"services.*\[web\] settle must be a number of seconds greater than 0"):
        load_settings(settings.root, env={})


def test_a_bad_x_dockyard_settle_names_the_service_and_file(make_settings: MakeSettings) -> None:
    settings = make_settings()
    settings.compose_files[0].write_text("services:\n  app:\n    image: x\n    x-dockyard: {settle: -2}\n")
    model = ComposeModel(settings, {"services": {"app": {"x-dockyard": {"settle": -2}}}})
    with pytest.raises(DockyardError, match=r"x-dockyard.settle of service 'app' in compose.yaml:4: settle must be"):
        Chooser.of(model, settings)
