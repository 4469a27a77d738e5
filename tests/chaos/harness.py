"""Machinery of the chaos suite: sessions to signal, what Docker and /proc still hold, the tally.

Every check here polls to a deadline: what a killed session leaves is reaped by its watchdog
"within seconds", so a check that looked once would flake and one that slept would be slow.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

import dockyard
from dockyard.engine.endpoints import sdk
from integration.helpers import DOCKYARD, TOKEN, Project, clean_env

TRIALS_DEFAULT = 8  # signal trials of the short (CI) version
SOAK_DEFAULT = 2  # soak rounds of the short version
REAP_DEADLINE = 10.0  # seconds: the promise is "within seconds"; the watchdog needs about one
SESSION_TIMEOUT = 180.0  # seconds a session may take to reach a phase or to end


# -- what is still there ----------------------------------------------------------------------


def resources_labelled(*labels: str) -> list[str]:
    """``kind name`` of every container, network and volume carrying any of ``labels``."""
    api = sdk().api
    found: set[str] = set()
    for label in labels:
        filters = {"label": [label]}
        found |= {f"container {c['Names'][0].lstrip('/')}" for c in api.containers(all=True, filters=filters)}
        found |= {f"network {n['Name']}" for n in api.networks(filters=filters)}
        found |= {f"volume {v['Name']}" for v in api.volumes(filters=filters).get("Volumes") or []}
    return sorted(found)


def managed_of(project: str) -> list[str]:
    """``kind name`` of what dockyard manages for compose ``project`` (look-alikes excluded)."""
    api = sdk().api
    filters = {"label": ["dockyard.managed=true", f"dockyard.project={project}"]}  # both: AND
    return sorted(
        [f"container {c['Names'][0].lstrip('/')}" for c in api.containers(all=True, filters=filters)]
        + [f"network {n['Name']}" for n in api.networks(filters=filters)]
        + [f"volume {v['Name']}" for v in api.volumes(filters=filters).get("Volumes") or []]
    )


def of_session(project: str, lease: str | None = None) -> list[str]:
    """What Docker holds of a compose ``project`` (and of a dockyard ``lease``)."""
    labels = [f"com.docker.compose.project={project}", f"dockyard.project={project}"]
    return resources_labelled(*labels, *([f"dockyard.lease={lease}"] if lease else []))


def processes_naming(*needles: str) -> list[str]:
    """``pid: command line`` of every live process whose command line contains a needle."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()  # empty for zombies: they hold nothing
        except OSError:
            continue  # gone meanwhile
        command = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
        if command and any(needle in command for needle in needles):
            found.append(f"{entry.name}: {command[:200]}")
    return found


def pool_not_free(settings: dockyard.Settings) -> list[str]:
    """Every berth of the pool that is not free (held, stale record, blocked ports), described."""
    return [
        f"berth {s.index}: {s.state.value}{f' ({s.reason})' if s.reason else ''}"
        for s in dockyard.BerthPool(settings).statuses()
        if s.state is not dockyard.State.FREE
    ]


def poll(check: Callable[[], list[str]], deadline: float = REAP_DEADLINE) -> tuple[list[str], float]:
    """Call ``check`` until it finds nothing or ``deadline`` seconds pass; (last findings, seconds)."""
    start = time.monotonic()
    while (found := check()) and time.monotonic() - start < deadline:
        time.sleep(0.05)
    return found, time.monotonic() - start


# -- sessions -----------------------------------------------------------------------------------

# How a signal reaches a session: the process alone (`kill PID`, an OOM kill) or its whole
# process group (Ctrl-C in a terminal, a CI runner cancelling a job).
SIGNALS: dict[str, tuple[signal.Signals, bool]] = {
    "kill": (signal.SIGKILL, False),
    "killpg": (signal.SIGKILL, True),
    "term": (signal.SIGTERM, False),
    "termpg": (signal.SIGTERM, True),
    "int": (signal.SIGINT, True),
}
# What each signal makes a session exit with: the shell's 128+N from dockyard's own handler,
# or -N when it landed after dockyard restored the default action on its way out.
EXIT_CODES = {
    signal.SIGKILL: {-signal.SIGKILL},
    signal.SIGTERM: {128 + signal.SIGTERM, -signal.SIGTERM},
    signal.SIGINT: {128 + signal.SIGINT, -signal.SIGINT},
}


@dataclass
class Session:
    """One ``dockyard run -- COMMAND`` in a process group of its own, its output in a file."""

    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls, project: Project, command: Sequence[str], *, env: dict[str, str] | None = None, name: str = "session"
    ) -> Session:
        """Start the session in ``project``'s directory."""
        log = project.root / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(DOCKYARD), "run", "--", *command],
                cwd=project.root,
                env=env or clean_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: killpg reaches it, and nothing of ours
            )
        return cls(proc, log)

    def output(self) -> str:
        """Everything the session printed so far."""
        return self.log.read_text(errors="replace")

    def reach(self, marker: str, timeout: float = SESSION_TIMEOUT) -> bool:
        """Wait until ``marker`` is printed (True), or the session ends without it (False)."""
        deadline = time.monotonic() + timeout
        while marker not in self.output():
            if self.proc.poll() is not None:
                return marker in self.output()
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"no {marker!r} after {timeout:g}s:\n{self.output()}")
            time.sleep(0.02)
        return True

    def send(self, mode: str) -> None:
        """Deliver the signal of ``mode`` (a key of :data:`SIGNALS`)."""
        sig, group = SIGNALS[mode]
        if self.proc.poll() is None:
            (os.killpg if group else os.kill)(self.proc.pid, sig)

    def finish(self, timeout: float = SESSION_TIMEOUT) -> int:
        """Wait for the session to end; its exit code."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the session did not end within {timeout:g}s:\n{self.output()}") from None

    def kill(self) -> None:
        """SIGKILL the whole group (a test gave up on it); its watchdog reaps."""
        with contextlib.suppress(ProcessLookupError):  # already gone: nothing to stop
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def run_session(
    project: Project, command: Sequence[str], *, env: dict[str, str] | None = None, name: str = "session"
) -> tuple[int, str]:
    """Run ``dockyard run -- COMMAND`` to its end; (exit code, output)."""
    session = Session.start(project, command, env=env, name=name)
    code = session.finish()
    return code, session.output()


def dockyard_cli(project: Project, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """``dockyard ARGS`` in ``project``; (exit code, stdout + stderr)."""
    done = project.cli(*args, env=env)
    return done.returncode, done.stdout + done.stderr


# -- the plan of kill trials --------------------------------------------------------------------

PHASES = ("build", "up", "test", "down")
# Seconds each phase lasts on the small stack, roughly: the kill lands uniformly inside.
SPANS = {"build": 2.0, "up": 2.5, "test": 1.5, "down": 1.2}
# Two SIGKILLs (process, group) for every orderly signal: the kills are what the watchdog is for.
MODES = ("kill", "killpg", "term", "kill", "killpg", "int", "kill", "killpg", "termpg")


@dataclass(frozen=True)
class Trial:
    """One signal at one random moment of one phase of a session."""

    number: int
    mode: str
    phase: str
    delay: float

    @property
    def id(self) -> str:
        """The pytest id: number, signal, phase."""
        return f"{self.number:03d}-{self.mode}-{self.phase}"


def plan(seed: int, count: int) -> list[Trial]:
    """``count`` trials drawn from ``random.Random(seed)``: every phase equally often, in shuffled rounds."""
    rng = random.Random(seed)
    phases: list[str] = []
    while len(phases) < count:
        rounds = list(PHASES)
        rng.shuffle(rounds)
        phases += rounds
    return [
        Trial(number, MODES[number % len(MODES)], phase, round(rng.uniform(0, SPANS[phase]), 3))
        for number, phase in enumerate(phases[:count])
    ]


# -- the tally -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """When one session held which berth (wall-clock seconds), as it saw it from inside."""

    session: str
    index: int
    project: str
    block: tuple[int, int]
    start: float
    end: float

    def collides(self, other: Window) -> bool:
        """Both live at once on the same berth, project or ports."""
        at_once = self.start < other.end and other.start < self.end
        same = (
            self.index == other.index
            or self.project == other.project
            or (self.block[0] <= other.block[1] and other.block[0] <= self.block[1])
        )
        return at_once and same


@dataclass
class Tally:
    """What the chaos suite did and found; printed as one line and written as JSON at the end."""

    seed: int
    trials: int = 0  # signal trials run
    kills: int = 0  # signals that landed on a live session (SIGKILL, SIGTERM, SIGINT)
    sigkills: int = 0  # of those, SIGKILLs
    missed: int = 0  # sessions that had ended before their signal came
    leaks: int = 0  # resources, records, locks or processes still there after the deadline
    flaky: int = 0  # runs that should have passed and did not
    collisions: int = 0  # two live sessions on one berth, project or port block
    soak_runs: int = 0
    faults: int = 0  # fault scenarios checked
    reap_seconds: list[float] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def touched(self) -> bool:
        """Whether any chaos test recorded something."""
        return bool(self.trials or self.soak_runs or self.faults)

    def note(self, kind: str, **facts: Any) -> None:
        """Keep one event for the JSON report."""
        self.events.append({"kind": kind, **facts})

    def line(self) -> str:
        """The one-line summary."""
        return (
            f"chaos: trials={self.trials} kills={self.kills} leaks={self.leaks} "
            f"flaky={self.flaky} collisions={self.collisions} seed={self.seed}"
        )

    def write(self, path: Path) -> None:
        """The JSON report (figures, reap times, every event)."""
        reaps = sorted(self.reap_seconds)
        data = {
            **{k: v for k, v in asdict(self).items() if k not in ("windows", "started", "reap_seconds")},
            "token": TOKEN,
            "wall_seconds": round(time.monotonic() - self.started, 1),
            "reap_seconds": {
                "count": len(reaps),
                "max": round(reaps[-1], 2) if reaps else None,
                "median": round(reaps[len(reaps) // 2], 2) if reaps else None,
            },
            "windows": [asdict(w) for w in self.windows],
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


def count_of(config: pytest.Config, name: str, default: int) -> int:
    """A chaos count setting that always has a value."""
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
