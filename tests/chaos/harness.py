"""Machinery of the chaos suite: sessions to signal where they stand, what is left after, the tally.

Every check here polls to a deadline: what a killed session leaves is reaped by its watchdog
"within seconds", so a check that looked once would flake and one that slept would be slow.

Where a signal lands is not a guess. `dockyard run` writes a line for each phase it enters
(``DOCKYARD_PHASES``, see :mod:`dockyard.sessions.phases`); a strike freezes the session
(SIGSTOP), reads the phase it is in, and signals it only if that is the phase aimed at;
otherwise it lets it go on (SIGCONT) and looks again a moment later. A frozen process cannot
move on, so the phase read is the phase the signal arrives in.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

import dockyard
from dockyard.engine.endpoints import sdk
from dockyard.errors import CorruptRecord
from dockyard.pool.lease import LeaseRecord, read_record
from dockyard.pool.ports import ports_in_use
from dockyard.sessions.phases import PHASES, PHASES_ENV, read_marks
from dockyard.sessions.run import REPORT_ENV
from integration.helpers import DOCKYARD, TOKEN, Project, clean_env

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
    """``pid: command line`` of every live process whose command line contains a needle.

    The needles of a session are its marker, its lease id (its watchdog) and its compose
    project (a `docker compose -p PROJECT ...` child carries neither of the others).
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()  # empty for zombies: they hold nothing
        except OSError:
            continue  # gone meanwhile
        command = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
        if command and any(needle in command for needle in needles if needle):
            found.append(f"{entry.name}: {command[:200]}")
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def pool_not_free(settings: dockyard.Settings) -> list[str]:
    """Every berth of the pool that is not free (held, stale record, blocked ports), described."""
    return [
        f"berth {s.index}: {s.state.value}{f' ({s.reason})' if s.reason else ''}"
        for s in dockyard.BerthPool(settings).statuses()
        if s.state is not dockyard.State.FREE
    ]


def wedged_locks(settings: dockyard.Settings) -> list[str]:
    """Berths whose lock is held although the holder its record names is dead (or unnamed)."""
    return [
        f"berth {s.index}: lock held, holder {s.record.pid if s.record else '(no record)'} dead"
        for s in dockyard.BerthPool(settings).statuses()
        if s.state is dockyard.State.LIVE and (s.record is None or not alive(s.record.pid))
    ]


def poll(check: Callable[[], list[str]], deadline: float = REAP_DEADLINE) -> tuple[list[str], float]:
    """Call ``check`` until it finds nothing or ``deadline`` seconds pass; (last findings, seconds)."""
    start = time.monotonic()
    while (found := check()) and time.monotonic() - start < deadline:
        time.sleep(0.05)
    return found, time.monotonic() - start


# -- port ranges nobody else uses ---------------------------------------------------------------

_PORT_UNIT = 10  # ports are claimed in blocks of this many
_PORT_FLOOR, _PORT_CEILING = 30000, 32760  # below the ephemeral ports (32768-): no client socket squats them


class PortClaims:
    """Port ranges this run has checked are free and claimed, so that a second run keeps off them.

    A range is free when nothing listens on any of its ports (a developer's stack publishes
    through docker-proxy, which listens). It is claimed with a ``flock`` per block of ten in a
    host-wide directory, held until the run ends: two chaos runs started together never pick
    the same ports, and a run that dies lets go of its claims with its last descriptor.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.gettempdir()) / f"dockyard-chaos-ports-{os.getuid()}"
        self.dir.mkdir(mode=0o700, exist_ok=True)
        self._held: list[int] = []  # descriptors holding the claims
        self._next = _PORT_FLOOR

    def take(self, count: int) -> str:
        """A claimed range of at least ``count`` free ports, as ``port_range`` wants it: ``"A-B"``."""
        units = -(-count // _PORT_UNIT)
        start = self._next
        while start + units * _PORT_UNIT <= _PORT_CEILING:
            claimed = self._claim(start, units)
            if claimed is not None:
                self._held += claimed
                self._next = start + units * _PORT_UNIT
                return f"{start}-{start + units * _PORT_UNIT - 1}"
            start += _PORT_UNIT
        raise AssertionError(f"no {count} free, unclaimed ports left in {_PORT_FLOOR}-{_PORT_CEILING}")

    def _claim(self, start: int, units: int) -> list[int] | None:
        fds: list[int] = []
        for unit in range(start, start + units * _PORT_UNIT, _PORT_UNIT):
            fd = os.open(self.dir / f"{unit}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                break
            fds.append(fd)
        else:
            if not ports_in_use(range(start, start + units * _PORT_UNIT)):
                return fds
        for fd in fds:
            os.close(fd)
        return None

    def release(self) -> None:
        """Let go of every claim."""
        for fd in self._held:
            os.close(fd)
        self._held.clear()


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
# The order phases are first entered in: `up` begins before a `build`, and resumes after it.
RANK = {phase: rank for rank, phase in enumerate(("acquire", "up", "build", "test", "down", "release"))}
# Seconds for SIGSTOP to take hold: a process in uninterruptible sleep (state D, an I/O wait
# on fuse-overlayfs under load) stops only once that call returns; 2 s were seen to be short.
_FROZEN_WAIT = 30.0


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


@dataclass(frozen=True)
class Strike:
    """A signal that arrived: in which phase, when (wall clock), and the lease then held."""

    mode: str
    phase: str
    at: float
    record: LeaseRecord | None


@dataclass
class Session:
    """One ``dockyard run -- COMMAND`` in a process group of its own, its output in a file.

    It writes its phases to ``<name>.phases`` and its run report to ``<name>.report.json``.
    """

    proc: subprocess.Popen[bytes]
    log: Path
    phases: Path
    report: Path
    project: Project
    record: LeaseRecord | None = None  # the lease it held, once seen

    @classmethod
    def start(
        cls,
        project: Project,
        command: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        name: str = "session",
        program: Sequence[str] = (),
    ) -> Session:
        """Start ``dockyard run -- COMMAND`` (or ``program``) in ``project``'s directory."""
        log = project.root / f"{name}.log"
        phases = project.root / f"{name}.phases"
        report = project.root / f"{name}.report.json"
        env = {**(env or clean_env()), PHASES_ENV: str(phases), REPORT_ENV: str(report)}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(program) or [str(DOCKYARD), "run", "--", *command],
                cwd=project.root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: killpg reaches it, and nothing of ours
            )
        return cls(proc, log, phases, report, project)

    @functools.cached_property
    def lock_dir(self) -> Path:
        """Its project's lock directory (its settings read on first use: a session may test bad ones)."""
        return self.project.settings.lock_dir

    def output(self) -> str:
        """Everything the session printed so far."""
        return self.log.read_text(errors="replace")

    def marks(self) -> list[str]:
        """The phases the session entered so far, in order (its own, not a child's)."""
        return [phase for phase, pid, _at in read_marks(self.phases) if pid == self.proc.pid]

    def durations(self) -> dict[str, float]:
        """Seconds spent in each phase that ended (a phase entered twice counts both times)."""
        marks = [(phase, at) for phase, pid, at in read_marks(self.phases) if pid == self.proc.pid]
        spent: dict[str, float] = {}
        for (phase, at), (_next, then) in itertools.pairwise(marks):
            spent[phase] = spent.get(phase, 0.0) + then - at
        return spent

    def _look_for_record(self) -> None:
        if self.record is None and {"up", "build", "test"} & set(self.marks()):
            # Read only once the session holds a berth: its settings are valid then.
            with contextlib.suppress(CorruptRecord):  # a record half rewritten (engine id added): next look
                record = read_record(self.lock_dir / "berth-0.json")
                if record is not None and record.pid == self.proc.pid:
                    self.record = record

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

    def enter(self, phase: str, timeout: float = SESSION_TIMEOUT) -> bool:
        """Wait until the session is in ``phase`` (True), or went past it or ended first (False)."""
        deadline = time.monotonic() + timeout
        while True:
            self._look_for_record()
            marks = self.marks()
            if marks and marks[-1] == phase:
                return True
            if self.proc.poll() is not None or went_past(phase, marks):
                return False
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"not in {phase} after {timeout:g}s (phases {marks}):\n{self.output()}")
            time.sleep(0.003)

    def strike(self, mode: str, phase: str, delay: float) -> Strike | None:
        """Signal the session ``delay`` seconds into ``phase``, and only while it is in it.

        None when it went past the phase (or ended) before a frozen look found it there.
        """
        sig, group = SIGNALS[mode]
        if not self.enter(phase):
            return None
        time.sleep(delay)  # the chaos itself: a random moment inside the phase (seeded)
        send = os.killpg if group else os.kill
        while self.proc.poll() is None:
            if not self._freeze(send):
                return None  # it ended meanwhile
            marks = self.marks()
            current = marks[-1] if marks else ""
            if current == phase:
                self._look_for_record()
                send(self.proc.pid, sig)
                at = time.time()
                with contextlib.suppress(ProcessLookupError):  # killed: nothing left to wake
                    send(self.proc.pid, signal.SIGCONT)  # an orderly signal is handled once it runs again
                return Strike(mode, phase, at, self.record)
            with contextlib.suppress(ProcessLookupError):
                send(self.proc.pid, signal.SIGCONT)
            if went_past(phase, marks):
                return None
            self._look_for_record()
            time.sleep(0.002)
        return None

    def _freeze(self, send: Callable[[int, int], None]) -> bool:
        """SIGSTOP the session (or its group) and wait until it is stopped; False if it has ended."""
        try:
            send(self.proc.pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + _FROZEN_WAIT
        while (state := _state(self.proc.pid)) not in ("T", "t"):
            if state in ("Z", "X"):
                return False
            if time.monotonic() > deadline:
                raise AssertionError(f"pid {self.proc.pid} did not stop (state {state})")
            time.sleep(0.0005)
        return True

    def send(self, mode: str) -> None:
        """Deliver the signal of ``mode`` (a key of :data:`SIGNALS`) now, wherever the session is."""
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

    def held(self) -> tuple[float, float] | None:
        """When the session held its berth (wall clock, acquired to released), from its report."""
        try:
            report = json.loads(self.report.read_text())
        except FileNotFoundError:
            return None
        start, end = report["held"]
        return (start, end) if end is not None else None


def went_past(phase: str, marks: Sequence[str]) -> bool:
    """Whether a session whose phases so far are ``marks`` is past ``phase`` for good."""
    if not marks:
        return False
    current = marks[-1]
    return RANK[current] > RANK[phase] or (phase in marks and current != phase)


@contextlib.contextmanager
def session_of(
    project: Project, command: Sequence[str], *, env: dict[str, str] | None = None, name: str = "session"
) -> Iterator[Session]:
    """A started session that is SIGKILLed (group) if the block fails, so it cannot run into the next test."""
    session = Session.start(project, command, env=env, name=name)
    try:
        yield session
    except BaseException:
        session.kill()
        raise


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
