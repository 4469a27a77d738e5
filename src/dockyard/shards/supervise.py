"""Supervising shards: each a `dockyard run` subprocess, a few starting their stacks at a time.

All shards run at once; only the stack starts queue (:func:`dockyard.shards.policy.starts_at_once`).
On SIGTERM each shard gets one SIGTERM of its own and time to take its stack down; after
Ctrl-C (which the terminal sent the whole process group) nothing more is sent. A shard that
does not end by a deadline is killed, and the reaper removes what it left when its berth is
next acquired.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from dockyard.host import die_with_parent
from dockyard.sessions.run import REPORT_ENV
from dockyard.sessions.signals import sigterm_raises
from dockyard.shards import plugin
from dockyard.shards.collect import env_without_shard
from dockyard.shards.logs import LogPump, Redact, mask_file
from dockyard.shards.shard import ShardRun
from dockyard.shards.view import ShardView, last_note
from dockyard.ui import ci

# Teardown of a stack takes seconds; beyond this a shard is stuck and is killed.
STOP_GRACE_S = 120.0
_POLL_S = 0.25
_LOG_TAIL = 40
# A shard's log is complete soon after it ended; a grandchild that kept the pipe open is not waited for.
_DRAIN_S = 5.0


def tail(path: Path, lines: int = _LOG_TAIL) -> str:
    """The last ``lines`` lines of a shard's log, or ``(no log)``."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _start(run: ShardRun, pytest_args: Sequence[str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start one shard, its output (stderr too) to a pipe: its log is written masked from there."""
    env = {**env_without_shard(), REPORT_ENV: str(run.path("json"))}
    if run.whole:  # its pytest lists what it collected there
        env[plugin.COLLECT_ENV] = str(run.path("ids"))
    else:
        run.path("ids").write_text("".join(f"{t}\n" for t in run.nodeids))
        env[plugin.SHARD_FILE_ENV] = str(run.path("ids"))
    env.update(ci.child_env())  # its output is a log file: this process folds and summarises for it
    # A shard whose parent was SIGKILLed would run on with nobody to gather it: SIGTERM makes it
    # tear its stack down. Forked from the main thread (the pool's threads only wait).
    return subprocess.Popen(
        run.command(pytest_args),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent(),  # noqa: PLW1509 - the other threads only wait on shards; prctl is async-signal-safe
    )


def _look(runs: Iterable[ShardRun], up: set[int], view: ShardView) -> None:
    """Tell ``view`` which shards' stacks came up (their first report), and what the others wait for."""
    for run in runs:
        if run.number in up:
            continue
        try:
            report = json.loads(run.path("json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            view.note(run.label, last_note(run.path("log")))
            continue
        up.add(run.number)
        view.stack_up(run.label, report["index"], report["project"], report["timings"].get("up", 0.0))


def stop(procs: Mapping[int, subprocess.Popen[bytes]], *, terminate: bool) -> None:
    """Let running shards end (after one SIGTERM each with ``terminate``), kill them at a deadline.

    Only one signal: a second SIGTERM would cut `dockyard run`'s own teardown short. After
    Ctrl-C nothing is sent, the terminal already interrupted the whole process group.
    """
    running = [p for p in procs.values() if p.poll() is None]
    if terminate:
        for proc in running:
            proc.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def launch(
    runs: Sequence[ShardRun],
    pytest_args: Sequence[str],
    cwd: Path,
    at_once: int,
    view: ShardView,
    *,
    redact: Redact = str,
) -> None:
    """Run every shard, at most ``at_once`` starting their stacks at a time; wait for all.

    Each shard's output reaches its log through ``redact`` (:class:`dockyard.shards.logs.LogPump`),
    and so does its JUnit XML once it ended.

    Sets each run's exit code, when it began (seconds after the first) and its wall time (from
    its own start). A shard has started its stack when `dockyard run` writes its first report,
    or when it ended. SIGTERM raises :class:`dockyard.sessions.signals.Terminated` once the
    shards were stopped.
    """
    procs: dict[int, subprocess.Popen[bytes]] = {}
    started: dict[int, float] = {}
    first = time.monotonic()
    queued, starting = list(runs), list[ShardRun]()
    pool = ThreadPoolExecutor(max_workers=max(1, len(runs)), thread_name_prefix="shard")
    # Threads only wait, so each shard's end is taken when it ends, not when we look.
    running: dict[Future[int], ShardRun] = {}
    pumps: dict[int, LogPump] = {}
    up: set[int] = set()  # shards whose stack is up (their report is there)
    with sigterm_raises():
        try:
            for run in queued:
                view.queued(run.label, run.tests)
            while queued or running:
                starting = [r for r in starting if procs[r.number].poll() is None and not r.path("json").exists()]
                while queued and len(starting) < at_once:
                    run = queued.pop(0)
                    started[run.number] = time.monotonic()
                    run.began = started[run.number] - first
                    procs[run.number] = proc = _start(run, pytest_args, cwd)
                    assert proc.stdout is not None  # noqa: S101 - started with stdout=PIPE
                    pumps[run.number] = LogPump(proc.stdout, run.path("log"), redact, name=f"shard-{run.number}-log")
                    pumps[run.number].start()
                    view.started(run.label, run.tests, run.path("log"))
                    running[pool.submit(procs[run.number].wait)] = run
                    starting.append(run)
                # A few times a second: whose stack is up (to start the next), what the others wait for.
                done, _ = wait(running, timeout=_POLL_S, return_when=FIRST_COMPLETED)
                _look(running.values(), up, view)
                for future in done:
                    run = running.pop(future)
                    run.exit_code, run.wall = future.result(), time.monotonic() - started[run.number]
                    pumps[run.number].join(_DRAIN_S)  # its last lines, before anyone reads the log
                    mask_file(run.path("xml"), redact)
                    view.ended(run.label, run.exit_code, run.wall)
        except KeyboardInterrupt:
            stop(procs, terminate=False)
            raise
        except BaseException:  # SIGTERM, or a shard that could not start: stop the others, re-raise
            stop(procs, terminate=True)
            raise
        finally:
            pool.shutdown(wait=False)
            for pump in pumps.values():  # what stopped shards wrote while tearing down
                pump.join(_DRAIN_S)
