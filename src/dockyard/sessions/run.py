"""`dockyard run -- CMD`: hold a berth with the stack up for exactly as long as CMD runs.

This is how nox sessions hand a berth to pytest: the session's `dockyard run` process holds
the lock; pytest (a child) finds the berth in ``DOCKYARD_BERTH`` and uses the running stack.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from dockyard.errors import DockyardError
from dockyard.pool import leasing
from dockyard.pool.berth import Berth
from dockyard.sessions.api import _docker_reaper, hand_down
from dockyard.sessions.phases import Marking, mark
from dockyard.sessions.watchdog import watch
from dockyard.settings import Settings
from dockyard.stack.evidence import artifacts_since
from dockyard.stack.stack import Stack
from dockyard.ui.console import reporter, say, summary

# Where `dockyard run` writes what it held (berth, ports, timings, exit code) as JSON, for the
# process that started it: `dockyard parallel` reads one per shard. Written first when the
# stack is up (exit code null), again at the end.
REPORT_ENV = "DOCKYARD_RUN_REPORT"


def _die_with_parent() -> None:
    """In the child: get SIGTERM if we are SIGKILLed, so no test keeps running on a reaped stack."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


class _Terminated(Exception):
    """SIGTERM, turned into an exception so teardown runs (as for Ctrl-C)."""


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise _Terminated(signum)


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


def summarise(berth: Berth, timings: Mapping[str, float], code: int, artifacts: Sequence[Path]) -> None:
    """The end-of-run summary on stderr: berth, stack ready time, the command's exit, teardown, artifacts."""
    status = "passed" if code == 0 else f"killed by signal {-code}" if code < 0 else "failed"
    fields: list[tuple[str, object]] = [
        ("berth", f"{berth.index} ({berth.project}), ports {berth.port_block.start}-{berth.port_block.stop - 1}"),
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
    summary(f"run {status}", fields)


def run(settings: Settings, command: Sequence[str], *, up: bool = True) -> int:
    """Run ``command`` with a berth (and, with ``up``, the stack) held; its exit code."""
    if not command:
        raise DockyardError("nothing to run", remedy="give a command after `--`, e.g. `dockyard run -- pytest`")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    timings: dict[str, float] = {}
    child: subprocess.Popen[bytes] | None = None
    try:
        t0 = time.monotonic()
        mark("acquire")
        berth = leasing.acquire(settings, reaper=_docker_reaper)
        timings["acquire"] = time.monotonic() - t0
        held_since = time.time()
        try:
            watch(berth)
            # The live display (on a terminal) ends once the stack is up: the command gets the terminal.
            mark("up")
            with reporter() as progress:
                stack = Stack(settings, berth, progress=Marking(progress))
                if berth.stale is not None:
                    say(f"berth {berth.index}: reaped what pid {berth.stale.pid} left behind")
                if up:
                    t0 = time.monotonic()
                    stack.up()
                    timings["up"] = time.monotonic() - t0
            _write_report(stack, timings, None, held_since)
            try:
                t0 = time.monotonic()
                mark("test")
                child = subprocess.Popen(
                    list(command),
                    # The report is ours to write: a nested `dockyard run` must not overwrite it.
                    env={**{k: v for k, v in os.environ.items() if k != REPORT_ENV}, **hand_down(stack)},
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads here; prctl is async-signal-safe
                )
                code = child.wait()
                timings["run"] = time.monotonic() - t0
            finally:
                if child is not None and child.poll() is None:
                    child.terminate()
                    child.wait()
                mark("down")
                if up:
                    t0 = time.monotonic()
                    stack.down()
                    timings["down"] = time.monotonic() - t0
            _write_report(stack, timings, code, held_since)
            summarise(berth, timings, code, artifacts_since(settings.artifacts_dir, held_since))
            return code
        finally:
            mark("release")
            berth.release()
    except _Terminated:
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
