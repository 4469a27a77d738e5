"""The chaos suite's plan of kill trials, its tally of what they found, and its options."""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dockyard.sessions.phases import PHASES
from integration.helpers import TOKEN

from .session import SIGNALS, Session, Strike

# -- the plan of kill trials --------------------------------------------------------------------

TRIALS_DEFAULT = 12  # signal trials of the short (CI) version: two per phase
SOAK_DEFAULT = 3  # soak rounds of the short version
LONG_TRIALS = 84  # `--chaos-long`: 14 per phase, at least 9 of them SIGKILLs
LONG_SOAK = 20
LONG_PER_PHASE, LONG_SIGKILLS = 8, 50  # what the long run must land, at the least
# Seconds each phase lasts on the small stack, before the run has measured it: the kill is
# aimed uniformly inside. Measured durations (medians of this run's sessions) replace these.
SPANS = {"acquire": 2.0, "build": 2.0, "up": 2.5, "test": 1.5, "down": 1.2, "release": 0.03}
# Two SIGKILLs (process, group) for every orderly signal: the kills are what the watchdog is for.
MODES = ("kill", "killpg", "term", "kill", "killpg", "int", "kill", "killpg", "termpg")
ATTEMPTS = 6  # sessions a trial may start before its signal lands in its phase
RECENT = 8  # sessions whose phase lengths aim the next trials


@dataclass(frozen=True)
class Trial:
    """One signal at one random moment (a fraction of the phase's length) of one phase."""

    number: int
    mode: str
    phase: str
    fraction: float

    @property
    def id(self) -> str:
        """The pytest id: number, signal, phase."""
        return f"{self.number:03d}-{self.mode}-{self.phase}"

    @property
    def sigkill(self) -> bool:
        """Whether its signal is a SIGKILL."""
        return SIGNALS[self.mode][0] is signal.SIGKILL


def plan(seed: int, count: int) -> list[Trial]:
    """``count`` trials drawn from ``random.Random(seed)``: every phase equally often, in shuffled rounds.

    Each phase goes through :data:`MODES` from its own offset, so even the short run sends
    every phase a SIGKILL.
    """
    rng = random.Random(seed)
    phases: list[str] = []
    while len(phases) < count:
        rounds = list(PHASES)
        rng.shuffle(rounds)
        phases += rounds
    seen: Counter[str] = Counter()
    trials = []
    for number, phase in enumerate(phases[:count]):
        mode = MODES[(2 * PHASES.index(phase) + seen[phase]) % len(MODES)]
        seen[phase] += 1
        trials.append(Trial(number, mode, phase, round(rng.random(), 3)))
    return trials


# -- the tally -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """When one session held which berth (wall-clock seconds, acquired to released)."""

    session: str
    index: int
    project: str
    block: tuple[int, int]
    start: float
    end: float

    def overlaps(self, other: Window) -> bool:
        """Both held at once."""
        return self.start < other.end and other.start < self.end

    def collides(self, other: Window) -> bool:
        """Both held at once, sharing a berth, project or ports."""
        same = (
            self.index == other.index
            or self.project == other.project
            or (self.block[0] <= other.block[1] and other.block[0] <= self.block[1])
        )
        return self.overlaps(other) and same


@dataclass
class Tally:
    """What the chaos suite did and found; printed as one line and written as JSON at the end."""

    seed: int
    planned: list[Trial] = field(default_factory=list)  # the trials of the plan
    soak_planned: int = 0  # soak sessions of the plan
    started_trials: int = 0  # signal trials begun (a -k selection begins fewer than planned)
    trials: int = 0  # signal trials whose signal landed in its phase
    landed: dict[str, Counter[str]] = field(default_factory=dict)  # phase -> signal name -> landed
    missed: int = 0  # sessions that went past the phase (or ended) before a look found them in it
    holders: Counter[str] = field(default_factory=Counter)  # holder kinds SIGKILLed and reaped
    leaks: int = 0  # resources, records, locks or processes still there after the deadline
    wedged: int = 0  # locks held after the deadline by nobody alive
    flaky: int = 0  # runs that should have passed and did not
    collisions: int = 0  # two berth holds at once sharing a berth, project or port block
    overlaps: int = 0  # pairs of berth holds that were held at once (the soak's point)
    soak_runs: int = 0
    faults: int = 0  # fault scenarios checked
    reap_seconds: list[float] = field(default_factory=list)
    spans: dict[str, list[float]] = field(default_factory=dict)  # measured seconds per phase
    windows: list[Window] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def touched(self) -> bool:
        """Whether any chaos test recorded something."""
        return bool(self.trials or self.soak_runs or self.faults or self.holders)

    def note(self, kind: str, **facts: Any) -> None:
        """Keep one event for the JSON report."""
        self.events.append({"kind": kind, **facts})

    def land(self, strike: Strike) -> None:
        """Count a signal that arrived in its phase."""
        self.landed.setdefault(strike.phase, Counter())[SIGNALS[strike.mode][0].name] += 1

    def sigkills(self, phase: str | None = None) -> int:
        """SIGKILLs landed (in ``phase``, or in all)."""
        return sum(c["SIGKILL"] for p, c in self.landed.items() if phase in (None, p))

    def learn(self, session: Session) -> None:
        """Keep the phase lengths a session measured, to aim the next trials."""
        for phase, seconds in session.durations().items():
            self.spans.setdefault(phase, []).append(seconds)

    def span(self, phase: str) -> float:
        """How long ``phase`` lasts now: the median of the last sessions measured, else the prior.

        Only the last ones: the host's load changes during a run, and phases with it.
        """
        seen = self.spans.get(phase, [])[-RECENT:]
        return statistics.median(seen) if seen else SPANS[phase]

    def shortfalls(self, long: bool) -> list[str]:
        """What the run should have landed and did not (empty: the counts hold)."""
        problems = []
        for phase in PHASES if self.planned else ():
            want = sum(t.sigkill for t in self.planned if t.phase == phase)
            if long:
                want = max(want, LONG_PER_PHASE)
            if self.sigkills(phase) < want:
                problems.append(f"{phase}: {self.sigkills(phase)} SIGKILLs landed, {want} wanted")
        if long and self.planned and self.sigkills() < LONG_SIGKILLS:
            problems.append(f"{self.sigkills()} SIGKILLs landed in all, {LONG_SIGKILLS} wanted")
        if self.soak_planned and self.soak_runs and self.overlaps == 0:
            problems.append("no two soak sessions held their berths at once: the soak proved nothing")
        return problems

    def reaps(self) -> tuple[float | None, float | None]:
        """Median and maximum seconds from a SIGKILL to nothing left."""
        if not self.reap_seconds:
            return None, None
        return round(statistics.median(self.reap_seconds), 2), round(max(self.reap_seconds), 2)

    def line(self) -> str:
        """The one-line summary."""
        median, longest = self.reaps()
        by_phase = ",".join(f"{p}:{self.sigkills(p)}" for p in PHASES)
        holders = ",".join(f"{k}:{n}" for k, n in sorted(self.holders.items())) or "-"
        return (
            f"chaos: trials={self.trials} sigkills={self.sigkills()} ({by_phase}) holders={holders} "
            f"reaped_s=median {median} max {longest} leaks={self.leaks} wedged={self.wedged} "
            f"flaky={self.flaky} collisions={self.collisions} overlaps={self.overlaps} "
            f"soak={self.soak_runs} missed={self.missed} seed={self.seed}"
        )

    def write(self, path: Path) -> None:
        """The JSON report (figures, reap times, every event)."""
        median, longest = self.reaps()
        skipped = ("windows", "started", "reap_seconds", "planned", "landed", "spans", "holders")
        data = {
            **{k: v for k, v in asdict(self).items() if k not in skipped},
            "token": TOKEN,
            "wall_seconds": round(time.monotonic() - self.started, 1),
            "sigkills": self.sigkills(),
            "landed": {p: dict(self.landed.get(p, {})) for p in PHASES},
            "holders": dict(self.holders),
            "reap_seconds": {"count": len(self.reap_seconds), "median": median, "max": longest},
            "phase_seconds": {p: round(self.span(p), 3) for p in PHASES},
            "windows": [asdict(w) for w in self.windows],
            "line": self.line(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1) + "\n")


# -- options -----------------------------------------------------------------------------------

_TALLY = pytest.StashKey[Tally]()


def chaos_setting(config: pytest.Config, name: str, default: int | None) -> int | None:
    """``--chaos-<name>``, else ``DOCKYARD_CHAOS_<NAME>``, else ``default``."""
    # getoption's default covers a run where tests/chaos/conftest.py was not an initial conftest
    # (`pytest tests`): its options are not registered then, the environment still counts.
    value = config.getoption(f"chaos_{name}", default=None)
    if value is None:
        raw = os.environ.get(f"DOCKYARD_CHAOS_{name.upper()}", "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise pytest.UsageError(f"DOCKYARD_CHAOS_{name.upper()}={raw!r} is not a whole number") from None
    if value < 0:
        raise pytest.UsageError(f"chaos {name} must be 0 or more, not {value}")
    return int(value)


def is_long(config: pytest.Config) -> bool:
    """``--chaos-long`` or ``DOCKYARD_CHAOS_LONG=1``: the counts the README promises."""
    return bool(config.getoption("chaos_long", default=False)) or os.environ.get("DOCKYARD_CHAOS_LONG", "") == "1"


def count_of(config: pytest.Config, name: str) -> int:
    """Trials or soak rounds: given, else the long or the short run's."""
    long = is_long(config)
    default = {"trials": LONG_TRIALS if long else TRIALS_DEFAULT, "soak": LONG_SOAK if long else SOAK_DEFAULT}[name]
    value = chaos_setting(config, name, default)
    return default if value is None else value


def tally_of(config: pytest.Config) -> Tally:
    """The run's tally, made on first use with the run's seed (given, or drawn now)."""
    if _TALLY not in config.stash:
        seed = chaos_setting(config, "seed", None)
        config.stash[_TALLY] = Tally(seed=secrets.randbelow(1_000_000) if seed is None else seed)
    return config.stash[_TALLY]


def tally_if_any(config: pytest.Config) -> Tally | None:
    """The run's tally if a chaos test made one."""
    return config.stash.get(_TALLY, None)
