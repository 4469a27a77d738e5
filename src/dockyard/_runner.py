"""`dockyard run -- CMD`: hold a berth with the stack up for exactly as long as CMD runs.

This is how nox sessions hand a berth to pytest: the session's `dockyard run` process holds
the lock; pytest (a child) finds the berth in ``DOCKYARD_BERTH`` and uses the running stack.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from types import FrameType

from ._api import _docker_reaper, hand_down
from ._berth import BerthPool
from ._errors import DockyardError
from ._output import say, table
from ._settings import Settings
from ._stack import Stack


def _die_with_parent() -> None:
    """In the child: get SIGTERM if we are SIGKILLed, so no test keeps running on a reaped stack."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


class _Terminated(Exception):
    """SIGTERM, turned into an exception so teardown runs (as for Ctrl-C)."""


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise _Terminated(signum)


def run(settings: Settings, command: Sequence[str], *, up: bool = True) -> int:
    """Run ``command`` with a berth (and, with ``up``, the stack) held; its exit code."""
    if not command:
        raise DockyardError("nothing to run", remedy="give a command after `--`, e.g. `dockyard run -- pytest`")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    timings: dict[str, float] = {}
    child: subprocess.Popen[bytes] | None = None
    try:
        t0 = time.monotonic()
        berth = BerthPool(settings).acquire(reaper=_docker_reaper)
        timings["acquire"] = time.monotonic() - t0
        try:
            berth.watch()
            stack = Stack(settings, berth, progress=say)
            if berth.stale is not None:
                say(f"berth {berth.index}: reaped what pid {berth.stale.pid} left behind")
            if up:
                t0 = time.monotonic()
                stack.up()
                timings["up"] = time.monotonic() - t0
            try:
                t0 = time.monotonic()
                child = subprocess.Popen(
                    list(command),
                    env={**os.environ, **hand_down(stack)},
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads here; prctl is async-signal-safe
                )
                code = child.wait()
                timings["run"] = time.monotonic() - t0
            finally:
                if child is not None and child.poll() is None:
                    child.terminate()
                    child.wait()
                if up:
                    t0 = time.monotonic()
                    stack.down()
                    timings["down"] = time.monotonic() - t0
            ports = ", ".join(f"{s}:{c}->{h}" for s, m in sorted(berth.ports.items()) for c, h in sorted(m.items()))
            table(
                "dockyard run",
                ["berth", "project", "ports", *timings, "result"],
                [
                    [
                        berth.index,
                        berth.project,
                        ports,
                        *(f"{v:.2f}s" for v in timings.values()),
                        "passed" if code == 0 else f"failed ({code})",
                    ]
                ],
            )
            return code
        finally:
            berth.release()
    except _Terminated:
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
