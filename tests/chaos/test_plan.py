"""The chaos suite's own arithmetic: what its plans send, when a session is past a phase, port claims.

No Docker needed (the suite's fixtures still check the engine): the plan and the claims are
what the counts at the end of a chaos run rest on.
"""

from __future__ import annotations

import socket
from collections import Counter

import pytest

from dockyard.sessions.phases import PHASES

from .host import PortClaims
from .session import Strike, went_past
from .tally import LONG_PER_PHASE, LONG_SIGKILLS, LONG_TRIALS, TRIALS_DEFAULT, Tally, plan


@pytest.fixture(autouse=True)
def base_image_still_there() -> None:
    """Nothing here runs a container: no base image to check."""


@pytest.fixture(autouse=True)
def no_leftovers() -> None:
    """Nothing here makes a project: nothing to look for in Docker."""


@pytest.mark.parametrize("seed", [0, 1, 4242])
def test_the_long_plan_sends_what_the_long_run_must_land(seed: int) -> None:
    trials = plan(seed, LONG_TRIALS)
    kills = Counter(t.phase for t in trials if t.sigkill)
    assert all(kills[phase] >= LONG_PER_PHASE for phase in PHASES), kills
    assert sum(kills.values()) >= LONG_SIGKILLS
    assert {t.mode for t in trials} >= {"kill", "killpg", "term", "termpg", "int"}, "orderly signals too"


def test_the_short_plan_sends_every_phase_a_sigkill() -> None:
    trials = plan(7, TRIALS_DEFAULT)
    assert {t.phase for t in trials if t.sigkill} == set(PHASES)
    assert plan(7, TRIALS_DEFAULT) == trials, "a seed replays its plan"


@pytest.mark.parametrize(
    ("phase", "marks", "passed"),
    [
        ("build", ["acquire", "up"], False),  # up begins before the build
        ("build", ["acquire", "up", "build", "up"], True),  # and resumes after it
        ("build", ["acquire", "up", "test"], True),  # nothing was built
        ("up", ["acquire"], False),
        ("test", ["acquire", "up", "test"], False),
        ("down", ["acquire", "up", "test", "down", "release"], True),
        ("release", [], False),
    ],
)
def test_when_a_session_went_past_a_phase(phase: str, marks: list[str], passed: bool) -> None:
    assert went_past(phase, marks) is passed


def test_two_runs_claim_different_ports_and_skip_a_listener() -> None:
    first, second = PortClaims(), PortClaims()
    try:
        a = first.take(20)
        low = int(a.split("-")[0])
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", low + 25))  # in the block after the first claim
            listener.listen()
            b = second.take(20)
        start, end = map(int, b.split("-"))
        assert start > int(a.split("-")[1]), "the second run took ports the first had claimed"
        assert not start <= low + 25 <= end, "a port something listens on was claimed"
    finally:
        first.release()
        second.release()


def test_a_run_short_of_its_sigkills_or_of_overlaps_says_what_it_missed() -> None:
    tally = Tally(seed=7, planned=plan(7, TRIALS_DEFAULT), soak_planned=3, soak_runs=3)
    for trial in tally.planned:
        if trial.sigkill and trial.phase != "release":
            tally.land(Strike(trial.mode, trial.phase, 0.0, None))
    assert tally.shortfalls(long=False) == [
        "release: 0 SIGKILLs landed, 1 wanted",
        "no two soak sessions held their berths at once: the soak proved nothing",
    ]
    tally.land(Strike("kill", "release", 0.0, None))
    tally.overlaps = 1
    assert tally.shortfalls(long=False) == []
    assert "8 wanted" in tally.shortfalls(long=True)[0], "the long run wants 8 per phase whatever its plan"
