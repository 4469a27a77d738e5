"""When a starting container's port times out: not served yet, or out of this host's reach; no Docker.

A scripted ``connect`` stands in for the network: what each connect to a container's address
answers, in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest

from dockyard.stack.services import ServiceState
from dockyard.stack.waits import healthcheck, tcp
from dockyard.stack.waits.healthcheck import HealthCheck
from dockyard.stack.waits.protocol import Target
from dockyard.stack.waits.tcp import REFUSED_AGAIN, Tcp, closed_port, served

Answers = Callable[..., None]


def container(address: str, network: str = "net-1", port: int = 8000) -> dict[str, Any]:
    """Inspect output of a container on ``network`` publishing ``port``, with a health check."""
    return {
        "Config": {"Healthcheck": {"Test": ["CMD", "probe"]}},
        "NetworkSettings": {
            "Networks": {"demo_default": {"NetworkID": network, "IPAddress": address}},
            "Ports": {f"{port}/tcp": [{"HostIp": "127.0.0.1", "HostPort": "20000"}]},
        },
    }


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Answers:
    """Script the answers of ``connect``, per address; no network is known reachable at first."""
    script: dict[str, list[str | None]] = {}
    monkeypatch.setattr(tcp, "_reached", set())
    monkeypatch.setattr(tcp, "connect", lambda address, port: script[address].pop(0))

    def give(address: str, *seen: str | None) -> None:
        script.setdefault(address, []).extend(seen)

    return give


class Engine:
    """Execs that are started, never run; what a strategy looks at closer must not be asked for."""

    def __init__(self) -> None:
        self.created: list[list[str]] = []

    def exec_create(self, container: str, command: list[str], **_: object) -> dict[str, str]:
        self.created.append(command)
        return {"Id": f"e{len(self.created)}"}

    def exec_start(self, exec_id: str, *, detach: bool) -> None:
        assert detach


def test_a_timeout_where_no_container_was_ever_reached_is_left_to_the_check(answers: Answers) -> None:
    answers("10.0.0.5", "timed out", "timed out")

    assert closed_port(container("10.0.0.5")) is None  # a remote engine: its networks are out of reach
    assert closed_port(container("10.0.0.5")) is None


def test_a_timeout_on_a_network_that_answered_means_not_served_yet(answers: Answers) -> None:
    answers("10.0.0.2", None)  # postgres, up: its network answers here
    answers("10.0.0.5", "timed out", "connection refused", None)

    assert closed_port(container("10.0.0.2", port=5432)) is None
    assert closed_port(container("10.0.0.5")) == (8000, "timed out")
    assert closed_port(container("10.0.0.5")) == (8000, "connection refused")
    assert closed_port(container("10.0.0.5")) is None


def test_another_network_is_not_taken_for_reachable(answers: Answers) -> None:
    answers("10.0.0.2", "connection refused")
    answers("10.1.0.5", "timed out")

    assert closed_port(container("10.0.0.2")) == (8000, "connection refused")
    assert closed_port(container("10.1.0.5", network="net-2")) is None


def test_the_check_starts_only_once_the_port_accepts(monkeypatch: pytest.MonkeyPatch, answers: Answers) -> None:
    monkeypatch.setattr(healthcheck, "is_podman", lambda api: False)
    answers("10.0.0.2", None)
    answers("10.0.0.5", "timed out", "timed out", None)
    engine = Engine()
    closed_port(container("10.0.0.2", port=5432))
    target = Target(ServiceState("auth", "c1", "running", "starting", None), container("10.0.0.5"), cast(Any, engine))
    check = HealthCheck()

    seen = [check.check(target) for _ in range(3)]

    assert [s.detail for s in seen] == ["port 8000: timed out", "port 8000: timed out", "the check is running"]
    assert seen[0].again == REFUSED_AGAIN
    assert engine.created == [["probe"]]  # one run, started after the port accepted


def test_a_tcp_wait_on_a_reachable_network_does_not_list_the_containers_sockets(answers: Answers) -> None:
    answers("10.0.0.2", "connection refused")
    answers("10.0.0.5", "timed out", None)
    closed_port(container("10.0.0.2"))
    target = Target(ServiceState("auth", "c1", "running", "", None), container("10.0.0.5"), cast(Any, None))

    assert served(target, 8000) == "timed out"  # an exec would need the engine: there is none here
    assert Tcp(8000).check(target).ready
