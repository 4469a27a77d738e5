"""`dockyard run -- CMD`: hold a berth with the stack up for exactly as long as CMD runs.

This is how nox sessions hand a berth to pytest: the session's `dockyard run` process holds
the lock; pytest (a child) finds the berth in ``DOCKYARD_BERTH`` and uses the running stack.
Any other runner finds one variable per published port (``sessions/env.py``). With
``reuse``, the stack `dockyard up` keeps for this project is used instead, and left up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError
from dockyard.host import die_with_parent
from dockyard.pool import leasing
from dockyard.pool.berth import Berth
from dockyard.sessions.api import docker_reaper, hand_down
from dockyard.sessions.coverage import CoverageResult, collect, require_coverage
from dockyard.sessions.env import port_environment, write_env_file
from dockyard.sessions.inside import run_inside
from dockyard.sessions.phases import Marking, mark
from dockyard.sessions.reuse import reused_stack
from dockyard.sessions.signals import Terminated, on_sigterm
from dockyard.sessions.turn import REPORT_ENV, Turn
from dockyard.sessions.watchdog import watch
from dockyard.settings import Settings
from dockyard.stack.evidence import artifacts_since
from dockyard.stack.stack import Stack
from dockyard.ui.console import reporter, say, summary

Inside = tuple[str, Sequence[str]] | None  # `--in SERVICE` and its `--copy-out` specs


def _write_report(stack: Stack, timings: Mapping[str, float], code: int | None, held_since: float) -> None:
    """Write the run report when ``DOCKYARD_RUN_REPORT`` names a file (``code`` None: running)."""
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    # "held" (wall-clock times) lets the reader tell a berth reused later from one shared at once.
    report: dict[str, Any] = {
        **stack.describe(),
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "exit_code": code,
        "held": [held_since, None if code is None else time.time()],
    }
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(path)  # the reader polls for the file: it must never see half of it


def summarise(
    berth: Berth,
    timings: Mapping[str, float],
    code: int,
    artifacts: Sequence[Path],
    covered: CoverageResult | None = None,
) -> None:
    """The end-of-run summary on stderr: berth, stack ready time, the command's exit, teardown, artifacts."""
    status = "passed" if code == 0 else f"killed by signal {-code}" if code < 0 else "failed"
    fields: list[tuple[str, object]] = [
        ("berth", f"{berth.index} ({berth.project}), ports {berth.port_block}"),
        ("ports", ", ".join(f"{s}:{c}->{h}" for s, m in sorted(berth.ports.items()) for c, h in sorted(m.items()))),
        ("acquired in", f"{timings.get('acquire', 0.0):.2f}s"),
    ]
    if "up" in timings:
        fields.append(("stack ready in", f"{timings['up']:.2f}s"))
    fields.append(("command", f"exit {code} after {timings.get('run', 0.0):.2f}s"))
    if "down" in timings:
        fields.append(("teardown", f"{timings['down']:.2f}s"))
    if artifacts:
        more = f" and {len(artifacts) - 3} more" if len(artifacts) > 3 else ""
        shown = ", ".join(str(p) for p in artifacts[:3]) + more
        fields.append(("artifacts", shown))
    if covered is not None:
        took = f", combined in {timings['coverage']:.2f}s" if "coverage" in timings else ""
        fields.append(("coverage", f"{covered.percent:.0f}% of the measured lines{took} ({_near(covered.data_file)})"))
        fields.append(("coverage report", f"{_near(covered.html)} and {_near(covered.xml)}"))
    summary(f"run {status}", fields)


def _near(path: Path) -> Path:
    """``path`` relative to the working directory when it is under it (as coverage.py names files)."""
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def _collect(stack: Stack, timings: dict[str, float]) -> CoverageResult | None:
    """The measured services' coverage, combined once the stack is down (timed); None unmeasured."""
    if stack.coverage is None:
        return None
    t0 = time.monotonic()
    try:
        return collect(stack.coverage)
    finally:
        timings["coverage"] = time.monotonic() - t0


def _show_coverage(stack: Stack, covered: CoverageResult | None) -> None:
    """The services' coverage table on stderr (before the summary), or why there is none."""
    if stack.coverage is None:
        return
    if covered is None:
        say(f"no coverage data from {', '.join(stack.coverage.services)}: is coverage.py installed in their images?")
        return
    for service in covered.silent:
        say(f"no coverage data from {service}: is coverage.py installed in its image?")
    say(f"coverage of {', '.join(stack.coverage.services)} ({covered.data_files} process data files combined):")
    sys.stderr.write(covered.report)
    sys.stderr.flush()


def child_env(stack: Stack, env_file: Path | None) -> dict[str, str]:
    """The command's environment: ours, the handed-down berth, a variable per published port."""
    ports = port_environment(stack)
    if env_file is not None:
        write_env_file(env_file, ports)
    # The report is ours to write: a nested `dockyard run` must not overwrite it.
    return {**{k: v for k, v in os.environ.items() if k != REPORT_ENV}, **hand_down(stack), **ports}


def _execute(stack: Stack, command: Sequence[str], env_file: Path | None, inside: Inside) -> int:
    """Run ``command`` (on the host, or in a service's container) and wait for it; its exit code."""
    env = child_env(stack, env_file)
    if inside is not None:
        return run_inside(stack, inside[0], command, inside[1])
    child = subprocess.Popen(
        list(command),
        env=env,
        preexec_fn=die_with_parent(),  # noqa: PLW1509 - no threads here; prctl is async-signal-safe
    )
    try:
        return child.wait()
    finally:
        if child.poll() is None:  # interrupted while it ran: it must not outlive the stack
            child.terminate()
            child.wait()


def _test(
    stack: Stack,
    command: Sequence[str],
    env_file: Path | None,
    inside: Inside,
    *,
    turn: Turn | None,
    timings: dict[str, float],
) -> int:
    """The command against the stack, timed; 0 without running it in a shard given no tests."""
    if not _tests_handed(turn, timings):
        return 0
    t0 = time.monotonic()
    mark("test")
    code = _execute(stack, command, env_file, inside)
    timings["run"] = time.monotonic() - t0
    return code


def _run_reused(stack: Stack, command: Sequence[str], env_file: Path | None, inside: Inside) -> int:
    """Run ``command`` against a kept stack: no start, no teardown."""
    timings: dict[str, float] = {"acquire": 0.0}
    held_since = time.time()
    _write_report(stack, timings, None, held_since)
    t0 = time.monotonic()
    code = _execute(stack, command, env_file, inside)
    timings["run"] = time.monotonic() - t0
    _write_report(stack, timings, code, held_since)
    summarise(stack.berth, timings, code, artifacts_since(stack.settings.artifacts_dir, held_since))
    return code


def _bring_up(stack: Stack, timings: dict[str, float], turn: Turn | None) -> bool:
    """Start the stack, after this shard's turn under `dockyard parallel`; False when the shard has no tests."""
    if turn is not None:
        go = turn.start()
        timings["turn"] = turn.waited["turn"]
        if not go:
            return False
    t0 = time.monotonic()
    stack.up()
    timings["up"] = time.monotonic() - t0
    return True


def _tests_handed(turn: Turn | None, timings: dict[str, float]) -> bool:
    """Whether the command runs: always, except in a shard `dockyard parallel` then gave no tests."""
    if turn is None:
        return True
    go = turn.tests()
    timings["tests"] = turn.waited["tests"]
    if not go:
        say("this shard was given no tests: the split left it none")
    return go


def _measuring(settings: Settings, *, cov: bool, up: bool, reuse: bool) -> bool:
    """Whether this run measures its services (``--cov`` or the key), checked before anything starts."""
    measure = (cov or settings.coverage) and up
    if measure and reuse:
        raise DockyardError(
            "--cov needs a stack of its own: a kept stack runs its services unmeasured",
            remedy="leave out --reuse (or --cov)",
        )
    if measure:
        require_coverage()
    return measure


def run(  # noqa: PLR0915 - one session's phases, in the order they happen
    settings: Settings,
    command: Sequence[str],
    *,
    up: bool = True,
    reuse: bool = False,
    env_file: Path | None = None,
    inside: Inside = None,
    cov: bool = False,
) -> int:
    """Run ``command`` with a berth (and, with ``up``, the stack) held; its exit code.

    ``reuse``: against the stack `dockyard up` keeps for this project, when there is one
    that can be used (see ``sessions/reuse.py``). ``env_file``: also write the command's
    port variables there, as a dotenv file. ``inside``: (service, copy-out specs): run it in
    a one-off container of that service instead (``sessions/inside.py``). ``cov`` (or the
    ``coverage`` key): run the measured services under coverage.py and report what they ran
    (``sessions/coverage.py``).
    """
    if not command:
        raise DockyardError("nothing to run", remedy="give a command after `--`, e.g. `dockyard run -- pytest`")
    if inside is not None and not up:
        raise DockyardError("--in needs the stack up", remedy="leave out --no-up")
    measure = _measuring(settings, cov=cov, up=up, reuse=reuse)
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    timings: dict[str, float] = {}
    try:
        if reuse and up:
            with reused_stack(settings, progress=say) as warm:
                if warm is not None:
                    return _run_reused(warm, command, env_file, inside)
            say("no stack kept by `dockyard up` to reuse: starting one for this run")
        turn = Turn.from_env()
        t0 = time.monotonic()
        mark("acquire")
        berth = leasing.acquire(settings, reaper=docker_reaper)
        timings["acquire"] = time.monotonic() - t0
        held_since = time.time()
        stack: Stack | None = None
        try:
            watch(berth)
            # The live display (on a terminal) ends once the stack is up: the command gets the terminal.
            mark("up")
            with reporter() as progress:
                stack = Stack(settings, berth, progress=Marking(progress), coverage=measure)
                if berth.stale is not None:
                    say(f"berth {berth.index}: reaped what pid {berth.stale.pid} left behind")
                started = _bring_up(stack, timings, turn) if up else False
            if up and not started:
                return 0  # a shard the split left no tests: nothing to start, nothing to run
            _write_report(stack, timings, None, held_since)
            try:
                code = _test(stack, command, env_file, inside, turn=turn, timings=timings)
            finally:
                mark("down")
                if started:
                    t0 = time.monotonic()
                    stack.down()
                    timings["down"] = time.monotonic() - t0
            covered = _collect(stack, timings)
            _write_report(stack, timings, code, held_since)
            _show_coverage(stack, covered)
            summarise(berth, timings, code, artifacts_since(settings.artifacts_dir, held_since), covered)
            return code
        finally:
            if stack is not None and stack.coverage is not None:
                stack.coverage.remove()  # a start that failed, or an interrupted run: nothing to report
            mark("release")
            berth.release()
    except Terminated:
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
