"""A start's Compose call, interrupted: Compose ends the call it is making before the teardown looks.

Real child processes stand in for Compose (a shell script with its own timing), no Docker.
The interruption is a signal to the test process turned into an exception, as dockyard turns
SIGINT and SIGTERM into ``KeyboardInterrupt`` and ``Terminated``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, SimpleNamespace

import psutil
import pytest

from dockyard.errors import ComposeError
from dockyard.stack.project import FINISH_NOTICE, ComposeProject


class Interrupted(BaseException):
    """What the test's signal raises in the main thread."""


# The stand-in for Compose: says its process group, waits for the test's go, then "creates".
COMPOSE = """
echo $$ > "$1/pid"
cut -d' ' -f5 /proc/$$/stat > "$1/pgid"
while [ ! -e "$1/go" ]; do sleep 0.01; done
echo created > "$1/created"
echo "the engine said no" >&2
exit "$2"
"""


@pytest.fixture
def interrupted() -> Iterator[None]:
    """SIGUSR1 raises :class:`Interrupted` in the main thread for the test's length."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, handler)
    yield
    signal.signal(signal.SIGUSR1, previous)


def project(tmp_path: Path, exit_code: int = 0) -> ComposeProject:
    compose = ComposeProject(SimpleNamespace(root=tmp_path), None, tmp_path / "override.yml")  # type: ignore[arg-type]
    compose.command = lambda verb, *args: ["sh", "-c", COMPOSE, "compose", str(tmp_path), str(exit_code)]  # type: ignore[method-assign]
    compose.cli_env = lambda: dict(os.environ)  # type: ignore[method-assign]
    return compose


def wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.005)  # polling a file the child writes, to a deadline


def interrupt() -> None:
    os.kill(os.getpid(), signal.SIGUSR1)


def signal_when(path: Path, then: Callable[[], object]) -> threading.Thread:
    """A thread that interrupts the main thread once ``path`` is written, and 0.2 s later runs ``then``."""

    def run() -> None:
        wait_for(path)
        interrupt()
        time.sleep(0.2)  # the main thread is waiting for Compose by now (or, wrongly, is past it)
        then()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.usefixtures("interrupted")
def test_an_interrupted_call_lets_compose_finish_in_its_own_group(tmp_path: Path) -> None:
    compose = project(tmp_path)
    # Interrupted first; Compose is told to go on only afterwards, so it must have been waited for.
    signal_when(tmp_path / "pgid", then=(tmp_path / "go").touch)
    with pytest.raises(Interrupted):
        compose.call("up", "--no-start")
    assert (tmp_path / "created").read_text() == "created\n"
    # A process group of its own: Ctrl-C at a terminal or `kill -- -PGID` reaches dockyard alone.
    assert int((tmp_path / "pgid").read_text()) != os.getpgrp()


@pytest.mark.usefixtures("interrupted")
def test_a_second_interruption_stops_compose_at_once(tmp_path: Path) -> None:
    compose = project(tmp_path)
    thread = signal_when(tmp_path / "pgid", then=interrupt)
    with pytest.raises(Interrupted):
        compose.call("up", "--no-start")
    thread.join(10)
    assert not psutil.pid_exists(int((tmp_path / "pid").read_text())), "Compose outlived the second signal"
    assert not (tmp_path / "created").exists()


def test_a_failed_call_raises_what_compose_said(tmp_path: Path) -> None:
    (tmp_path / "go").touch()
    with pytest.raises(ComposeError, match="the engine said no"):
        project(tmp_path, exit_code=3).call("up", "--no-start")
    assert (tmp_path / "created").exists()


@pytest.mark.usefixtures("interrupted")
def test_a_wait_for_compose_that_is_felt_is_said(tmp_path: Path) -> None:
    compose = project(tmp_path)
    said: list[str] = []

    def go_later() -> None:
        time.sleep(FINISH_NOTICE + 0.3)  # past the notice: the wait has been said by then
        (tmp_path / "go").touch()

    signal_when(tmp_path / "pgid", then=go_later)
    with pytest.raises(Interrupted):
        compose.call("up", "--no-start", say=said.append)
    assert (tmp_path / "created").exists()
    assert len(said) == 1, said
    assert "letting Compose end the call it is making" in said[0]
    assert "interrupt again to stop Compose now" in said[0]


@pytest.mark.usefixtures("interrupted")
def test_a_short_wait_for_compose_is_not_said(tmp_path: Path) -> None:
    compose = project(tmp_path)
    said: list[str] = []
    signal_when(tmp_path / "pgid", then=(tmp_path / "go").touch)  # Compose ends ~0.2 s after the signal
    with pytest.raises(Interrupted):
        compose.call("up", "--no-start", say=said.append)
    assert (tmp_path / "created").exists()
    assert said == []
