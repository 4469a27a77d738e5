"""A shard's pipe from `dockyard parallel`: its turn to start its stack, then its tests, or the pipe closing.

Real pipes and a real waiting thread; no Docker.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

import pytest

from dockyard.errors import DockyardError
from dockyard.sessions.turn import TURN_ENV, Turn
from dockyard.shards.supervise import give_turn, hand_tests


@pytest.fixture
def pipe(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, int]]:
    """A pipe whose read end this process's ``DOCKYARD_START_TURN`` names, as a shard's would."""
    read, write = os.pipe()
    monkeypatch.setenv(TURN_ENV, str(read))
    yield read, write
    for fd in (read, write):
        with contextlib.suppress(OSError):  # closed by the code under test, as it should be
            os.close(fd)


def closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def later(action: object, delay: float = 0.2) -> threading.Event:
    """Run ``action()`` in a thread after ``delay`` (the shard must still be waiting then); set once done."""
    done = threading.Event()

    def go() -> None:
        time.sleep(delay)
        action()  # type: ignore[operator]
        done.set()

    threading.Thread(target=go, daemon=True).start()
    return done


def test_without_the_variable_there_is_no_turn_to_wait_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TURN_ENV, raising=False)
    assert Turn.from_env() is None


def test_the_shard_waits_for_its_turn_and_then_for_its_tests(pipe: tuple[int, int]) -> None:
    read, write = pipe
    turn = Turn.from_env()
    assert turn is not None
    assert TURN_ENV not in os.environ  # the command run later does not inherit it
    told: list[bool] = []
    given = later(lambda: told.append(give_turn(write)))
    assert turn.start() is True
    assert given.wait(5)  # its write was read; its thread may not have said so yet
    assert turn.waited["turn"] >= 0.15
    assert not closed(write)  # open: the tests come later
    handed = later(lambda: told.append(hand_tests(write, tests=True)))
    assert turn.tests() is True
    assert handed.wait(5)
    assert turn.waited["tests"] >= 0.15
    assert told == [True, True]
    assert closed(read)
    assert closed(write)


def test_tests_known_at_the_turn_come_with_it(pipe: tuple[int, int]) -> None:
    read, write = pipe
    turn = Turn.from_env()
    assert turn is not None
    assert give_turn(write, tests=True) is True
    assert closed(write)
    assert turn.start() is True
    assert turn.tests() is True
    assert turn.waited["tests"] < 0.1  # nothing more to wait for
    assert closed(read)


def test_a_shard_the_split_left_empty_ends_before_its_stack(pipe: tuple[int, int]) -> None:
    read, write = pipe
    turn = Turn.from_env()
    assert turn is not None
    assert give_turn(write, tests=False) is True
    assert turn.start() is False
    assert closed(read)


def test_a_shard_given_its_turn_may_be_given_no_tests(pipe: tuple[int, int]) -> None:
    _, write = pipe
    turn = Turn.from_env()
    assert turn is not None
    assert give_turn(write) is True
    assert turn.start() is True
    assert hand_tests(write, tests=False) is True
    assert turn.tests() is False


def test_a_closed_pipe_before_the_turn_means_the_parallel_run_is_stopping(pipe: tuple[int, int]) -> None:
    _, write = pipe
    os.close(write)
    turn = Turn.from_env()
    assert turn is not None
    with pytest.raises(DockyardError, match="stopped before this shard's turn"):
        turn.start()


def test_a_closed_pipe_before_the_tests_means_the_parallel_run_is_stopping(pipe: tuple[int, int]) -> None:
    _, write = pipe
    turn = Turn.from_env()
    assert turn is not None
    assert give_turn(write) is True
    assert turn.start() is True
    os.close(write)
    with pytest.raises(DockyardError, match="stopped before handing this shard its tests"):
        turn.tests()


def test_a_line_out_of_turn_is_named(pipe: tuple[int, int]) -> None:
    _, write = pipe
    os.write(write, b"tests\n")
    turn = Turn.from_env()
    assert turn is not None
    with pytest.raises(DockyardError, match=r"sent b'tests\\n' where b'start\\n' or b'none\\n' was due"):
        turn.start()


@pytest.mark.parametrize("value", ["not-a-number", "987654"])
def test_a_variable_naming_no_pipe_says_so(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(TURN_ENV, value)
    with pytest.raises(DockyardError, match=f"{TURN_ENV}={value} is not a pipe") as caught:
        Turn.from_env()
    assert f"unset {TURN_ENV}" in str(caught.value.remedy)


@pytest.mark.parametrize("tests", [None, True, False])
def test_a_turn_for_a_shard_that_ended_is_not_an_error(tests: bool | None) -> None:
    turn, go = os.pipe()
    os.close(turn)
    assert give_turn(go, tests=tests) is False
    assert closed(go)
