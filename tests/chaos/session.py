"""A ``dockyard run`` session driven by the chaos suite, and signals that land in the phase aimed at.

Where a signal lands is not a guess. `dockyard run` writes a line for each phase it enters
(``DOCKYARD_PHASES``, see :mod:`dockyard.sessions.phases`); a strike freezes the session
(SIGSTOP), reads the phase it is in, and signals it only if that is the phase aimed at;
otherwise it lets it go on (SIGCONT) and looks again a moment later. A frozen process cannot
move on, so the phase read is the phase the signal arrives in.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import CorruptRecord
from dockyard.pool.lease import LeaseRecord, read_record
from dockyard.sessions.phases import PHASES_ENV, read_marks
from dockyard.sessions.turn import REPORT_ENV
from integration.helpers import DOCKYARD, Project, clean_env

SESSION_TIMEOUT = 180.0  # seconds a session may take to reach a phase or to end

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
