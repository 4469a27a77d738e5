"""Supervising shards: each a `dockyard run` subprocess, a few starting their stacks at a time.

All shards run at once; only the stack starts queue (:func:`dockyard.shards.policy.starts_at_once`).
Every shard's process starts at the outset and gets ready (interpreter, imports, berth,
watchdog) while the stacks before it start; then it waits on a pipe of its own for its turn.
On SIGTERM each shard gets one SIGTERM of its own and time to take its stack down; after
Ctrl-C (which the terminal sent the whole process group) nothing more is sent. A shard that
does not end by a deadline is killed, and the reaper removes what it left when its berth is
next acquired.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from dockyard.host import die_with_parent
from dockyard.sessions.run import REPORT_ENV, TURN_ENV
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
_HANDOFF_POLL_S = 0.02  # while a shard waits for its turn: how soon a stack that came up is seen
_LOG_TAIL = 40
# A shard's log is complete soon after it ended; a grandchild that kept the pipe open is not waited for.
_DRAIN_S = 5.0


def tail(path: Path, lines: int = _LOG_TAIL) -> str:
    """The last ``lines`` lines of a shard's log, or ``(no log)``."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _start(
    run: ShardRun, pytest_args: Sequence[str], cwd: Path, redact: Redact
) -> tuple[subprocess.Popen[bytes], int, LogPump]:
    """Start one shard; the shard, the pipe end that gives its turn, and the pump writing its log.

    Its output (stderr too) reaches its log through ``redact``. The shard starts its stack
    once a byte arrives on the turn pipe, and gives up if that pipe closes first (:func:`give_turn`).
    """
    env = {**env_without_shard(), REPORT_ENV: str(run.path("json"))}
    if run.whole:  # its pytest lists what it collected there
        env[plugin.COLLECT_ENV] = str(run.path("ids"))
    else:
        run.path("ids").write_text("".join(f"{t}\n" for t in run.nodeids))
        env[plugin.SHARD_FILE_ENV] = str(run.path("ids"))
    env.update(ci.child_env())  # its output is a log file: this process folds and summarises for it
    turn, go = os.pipe()
    env[TURN_ENV] = str(turn)
    # A shard whose parent was SIGKILLed would run on with nobody to gather it: SIGTERM makes it
    # tear its stack down. Forked from the main thread (the pool's threads only wait).
    try:
        proc = subprocess.Popen(
            run.command(pytest_args),
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(turn,),
            preexec_fn=die_with_parent(),  # noqa: PLW1509 - the other threads only wait on shards; prctl is async-signal-safe
        )
    except BaseException:
        os.close(go)
        raise
    finally:
        os.close(turn)
    assert proc.stdout is not None  # noqa: S101 - started with stdout=PIPE
    pump = LogPump(proc.stdout, run.path("log"), redact, name=f"shard-{run.number}-log")
    pump.start()
    return proc, go, pump


def give_turn(go: int) -> bool:
    """Let the shard waiting on ``go`` start its stack; False when it had ended (its exit code says why)."""
    try:
        os.write(go, b"\n")
    except BrokenPipeError:
        return False
    finally:
        os.close(go)
    return True


def _cancel(turns: dict[int, int]) -> None:
    """Close the turn pipes of the shards still waiting: they end without starting a stack."""
    while turns:
        os.close(turns.popitem()[1])


def _look(runs: Iterable[ShardRun], up: set[int], view: ShardView) -> float:
    """Tell ``view`` which shards' stacks came up (their first report), and what the others wait for; when."""
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
    return time.monotonic()


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
    turns: dict[int, int] = {}  # the turn pipes of the shards still waiting for theirs
    up: set[int] = set()  # shards whose stack is up (their report is there)
    looked = 0.0  # when the view was last told what the shards do
    with sigterm_raises():
        try:
            for run in queued:
                view.queued(run.label, run.tests)
                started[run.number] = time.monotonic()
                procs[run.number], turns[run.number], pumps[run.number] = _start(run, pytest_args, cwd, redact)
                running[pool.submit(procs[run.number].wait)] = run
            while queued or running:
                still = [r for r in starting if procs[r.number].poll() is None and not r.path("json").exists()]
                if len(still) < len(starting):  # a stack came up: say so before the next one starts
                    _look(running.values(), up, view)
                starting = still
                while queued and len(starting) < at_once:
                    run = queued.pop(0)
                    if give_turn(turns.pop(run.number)):  # else it ended before its turn
                        started[run.number] = time.monotonic()
                        run.began = started[run.number] - first
                        view.started(run.label, run.tests, run.path("log"))
                        starting.append(run)
                # Whose stack is up (to start the next), what the others wait for: soon while
                # a shard waits for its turn, a few times a second otherwise.
                done, _ = wait(running, timeout=_HANDOFF_POLL_S if queued else _POLL_S, return_when=FIRST_COMPLETED)
                if done or time.monotonic() - looked >= _POLL_S:
                    looked = _look(running.values(), up, view)
                for future in done:
                    run = running.pop(future)
                    run.exit_code, run.wall = future.result(), time.monotonic() - started[run.number]
                    pumps[run.number].join(_DRAIN_S)  # its last lines, before anyone reads the log
                    mask_file(run.path("xml"), redact)
                    view.ended(run.label, run.exit_code, run.wall)
        except KeyboardInterrupt:
            _cancel(turns)
            stop(procs, terminate=False)
            raise
        except BaseException:  # SIGTERM, or a shard that could not start: stop the others, re-raise
            _cancel(turns)
            stop(procs, terminate=True)
            raise
        finally:
            pool.shutdown(wait=False)
            for pump in pumps.values():  # what stopped shards wrote while tearing down
                pump.join(_DRAIN_S)
