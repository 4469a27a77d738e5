"""A shard's turn to start its stack: a byte on a pipe from `dockyard parallel`, or the pipe closing.

Real pipes and a real waiting thread; no Docker.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from dockyard.errors import DockyardError
from dockyard.sessions.run import TURN_ENV, await_turn
from dockyard.shards.supervise import give_turn


def test_without_the_variable_there_is_no_turn_to_wait_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TURN_ENV, raising=False)
    assert await_turn() is None


def test_the_shard_waits_until_its_turn_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    turn, go = os.pipe()
    monkeypatch.setenv(TURN_ENV, str(turn))
    given = threading.Event()
    told: list[bool] = []

    def later() -> None:
        time.sleep(0.2)  # the shard must still be waiting by then
        given.set()
        told.append(give_turn(go))

    threading.Thread(target=later, daemon=True).start()
    waited = await_turn()
    assert given.is_set()
    assert told == [True]
    assert waited is not None
    assert waited >= 0.15
    assert TURN_ENV not in os.environ  # the command run later does not inherit it
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(turn)  # read and closed


def test_a_closed_pipe_means_the_parallel_run_is_stopping(monkeypatch: pytest.MonkeyPatch) -> None:
    turn, go = os.pipe()
    os.close(go)
    monkeypatch.setenv(TURN_ENV, str(turn))
    with pytest.raises(DockyardError, match="stopped before this shard's turn"):
        await_turn()


@pytest.mark.parametrize("value", ["not-a-number", "987654"])
def test_a_variable_naming_no_pipe_says_so(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(TURN_ENV, value)
    with pytest.raises(DockyardError, match=f"{TURN_ENV}={value} is not a pipe") as caught:
        await_turn()
    assert f"unset {TURN_ENV}" in str(caught.value.remedy)


def test_a_turn_for_a_shard_that_ended_is_not_an_error() -> None:
    turn, go = os.pipe()
    os.close(turn)
    assert give_turn(go) is False
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(go)
