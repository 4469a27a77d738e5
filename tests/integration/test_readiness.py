"""Ready means ready for every service: health checks, published ports, wait strategies, one-shots."""

from __future__ import annotations

import http.client
import os
import socket
import time

import pytest

import dockyard
from dockyard.stack.compose import ComposeModel

from .helpers import NOTHING, Projects, project_resources
from .servers import bare_service, echo_server, http_server, shell

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]


def get(port: int, path: str = "/") -> int:
    """GET over the published host port, as a test would; the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def echo(port: int, line: bytes = b"ping\n") -> bytes:
    """One line sent to an echo service over its published host port, and its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(line)
        return sock.recv(100)


def test_a_port_without_health_check_is_ready_only_once_the_container_serves_it(make_project: Projects) -> None:
    """docker-proxy accepts on the host port at once; the service listens only 4 s later."""
    slow = "services:\n" + bare_service("slow", http_server(8000, delay=4), ports=["8000:8000"])
    project = make_project("race", "23600-23699", slow)
    lines: list[str] = []
    with dockyard.running_stack(project.settings, progress=lines.append) as stack:
        assert get(stack.port("slow", 8000)) == 200  # right after `up`: served, not reset
    assert any("waiting for published port(s) 8000 served by the container" in line for line in lines), lines


@pytest.mark.parametrize("ports", [[], ["8000"]], ids=["no-ports", "ports"])
def test_a_service_that_crashed_at_start_is_never_ready(make_project: Projects, ports: list[str]) -> None:
    crash = "services:\n" + bare_service("crash", shell("echo starting; exit 3"), ports=ports)
    project = make_project(f"crashed{len(ports)}", "23750-23799" if ports else "23700-23749", crash)
    with pytest.raises(dockyard.StackUnhealthy) as caught, dockyard.running_stack(project.settings):
        pass
    assert caught.value.services == ("crash",)
    assert "service 'crash' exited with code 3" in str(caught.value)
    assert "starting" in str(caught.value)  # its last log lines
    assert project_resources(project.settings.project_name(0)) == NOTHING


def test_every_wait_strategy_passes_when_its_service_is_ready(make_project: Projects) -> None:
    stack_text = "services:\n" + "".join(
        [
            bare_service(
                "web",
                http_server(8000, delay=2),
                ports=["8000"],
                extra=["x-dockyard: {wait: 'http://:8000/health'}"],
            ),
            bare_service("tcp", echo_server(9000, delay=2)),  # wait from pyproject.toml; nothing published
            bare_service(
                "logs",
                shell('sleep 2; echo "ready to accept connections"; exec sleep infinity'),
                extra=["x-dockyard: {wait: 'log:ready to accept connections'}"],
            ),
            bare_service("seed", shell("sleep 2; exit 0"), extra=["restart: 'no'"]),  # one-shot, by depends_on
            bare_service(
                "app",
                ["sleep", "infinity"],
                extra=["depends_on: {seed: {condition: service_completed_successfully}}"],
            ),
        ]
    )
    project = make_project("waits", "23800-23899", stack_text)
    with (project.root / "pyproject.toml").open("a") as fh:
        fh.write('[tool.dockyard.services.tcp]\nwait = "tcp://:9000"\n')
    lines: list[str] = []
    began = time.monotonic()
    with dockyard.running_stack(project.settings, progress=lines.append) as stack:
        took = time.monotonic() - began
        assert get(stack.port("web", 8000), "/health") == 200
        states = {s.service: s for s in stack.ps()}
        assert (states["seed"].state, states["seed"].exit_code) == ("exited", 0)
        assert states["app"].state == "running"
    text = "\n".join(lines)
    for waited in (
        "web: probing health: waiting for http://:8000/health",
        "tcp: probing health: waiting for tcp://:9000",
        "logs: probing health: waiting for log:ready to accept connections",
        "seed: probing health: waiting for exit:0",
        "app: probing health: waiting for 2s of running",
    ):
        assert waited in text, text
    assert took > 4, f"ready after {took:.1f}s: seed (2 s) and app's settle (2 s) run one after the other"


def test_each_wait_strategy_names_itself_and_what_it_saw_when_it_fails(make_project: Projects) -> None:
    stack_text = "services:\n" + "".join(
        [
            bare_service(
                "web",
                http_server(8000, status=503),
                ports=["8000"],
                extra=["x-dockyard: {wait: 'http://:8000/health'}"],
            ),
            bare_service("tcp", ["sleep", "infinity"], extra=["x-dockyard: {wait: 'tcp://:9000'}"]),
            bare_service(
                "logs",
                shell("echo still warming up; exec sleep infinity"),
                extra=["x-dockyard: {wait: 'log:ready to accept connections'}"],
            ),
        ]
    )
    project = make_project("waitsfail", "23900-23999", stack_text, health_timeout=5)
    with pytest.raises(dockyard.StackUnhealthy) as caught, dockyard.running_stack(project.settings):
        pass
    text = str(caught.value)
    assert caught.value.services == ("logs", "tcp", "web")
    assert "not healthy after 5s (health_timeout)" in text
    assert "'web' waited for http://:8000/health, last saw: status 503" in text
    assert "'tcp' waited for tcp://:9000, last saw: port 9000: connection refused" in text
    assert "'logs' waited for log:ready to accept connections, last saw: last log line 'still warming up'" in text


def test_exit_zero_fails_on_another_exit_code(make_project: Projects) -> None:
    stack_text = "services:\n" + bare_service(
        "migrate", shell("echo migration failed; exit 2"), extra=["x-dockyard: {wait: 'exit:0'}"]
    )
    project = make_project("exitfail", "24000-24099", stack_text)
    with pytest.raises(dockyard.StackUnhealthy) as caught, dockyard.running_stack(project.settings):
        pass
    assert "service 'migrate' exited with code 2" in str(caught.value)
    assert "(waiting for exit:0)" in str(caught.value)


# Rounds of the repeated check below: the readiness claim was measured with 50 (about 8 s each).
RUNS = int(os.environ.get("DOCKYARD_READINESS_RUNS", "3"))


@pytest.mark.timeout(120 + 20 * RUNS)
def test_a_stack_without_health_checks_passes_its_checks_every_time(make_project: Projects) -> None:
    """Up, then at once what a test suite does first; never a connection error (``DOCKYARD_READINESS_RUNS``)."""
    runs = RUNS
    stack_text = "services:\n" + "".join(
        [
            bare_service("web", http_server(8000, delay=1.5), ports=["8000"]),
            bare_service("db", echo_server(5432, delay=1), ports=["5432"]),
            bare_service("worker", ["sleep", "infinity"]),
        ]
    )
    project = make_project("journeys", "24100-24199", stack_text)
    errors: list[str] = []
    for run in range(runs):
        with dockyard.running_stack(project.settings) as stack:
            try:
                assert get(stack.port("web", 8000)) == 200
                assert echo(stack.port("db", 5432)) == b"ping\n"
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"run {run + 1}: {type(exc).__name__}: {exc}")
        print(f"readiness run {run + 1}/{runs}: {len(errors)} connection error(s) so far")
    assert errors == [], f"{len(errors)} of {runs} runs hit a connection error:\n" + "\n".join(errors)


def test_a_wait_strategy_in_an_included_file_is_used(make_project: Projects) -> None:
    """`include:` pulls in a service whose `x-dockyard` only the effective configuration shows."""
    top = "include:\n  - parts/inner.yaml\nservices:\n" + bare_service("outer", ["sleep", "infinity"])
    inner = "services:\n" + bare_service(
        "inner", echo_server(9000, delay=2), extra=["x-dockyard: {wait: 'tcp://:9000', settle: 9}"]
    )
    project = make_project("included", "24600-24699", top)
    (project.root / "parts").mkdir()
    (project.root / "parts" / "inner.yaml").write_text(inner)

    for _ in ("asked of Compose", "from the memo"):
        model = ComposeModel.load(project.settings)  # Compose itself reads the include
        assert model.extension("inner") == {"wait": "tcp://:9000", "settle": 9}
        assert model.extension("outer") == {}
    assert model.locate("x-dockyard") == "parts/inner.yaml:8"

    lines: list[str] = []
    with dockyard.running_stack(project.settings, progress=lines.append) as stack:
        assert {s.service: s.state for s in stack.ps()} == {"inner": "running", "outer": "running"}
    text = "\n".join(lines)
    assert "inner: probing health: waiting for tcp://:9000" in text, text
    assert "outer: probing health: waiting for 2s of running" in text, text
