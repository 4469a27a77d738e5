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
from typing import Any

from dockyard.host import die_with_parent
from dockyard.sessions.signals import sigterm_raises
from dockyard.sessions.turn import NONE, REPORT_ENV, START, TESTS, TURN_ENV
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
    else:  # a pending shard's file is written when its tests are handed over (ShardRun.hand)
        if not run.pending:
            run.write_ids()
        env[plugin.SHARD_FILE_ENV] = str(run.path("ids"))
    env.update(ci.child_env())  # its output is a log file: this process folds and summarises for it
    turn, go = os.pipe()
    env[TURN_ENV] = str(turn)
    # A shard whose parent was SIGKILLed would run on with nobody to gather it: SIGTERM makes it
    # tear its stack down. Forked from the main thread (the other threads only wait on children).
    try:
        proc = subprocess.Popen(
            run.command(pytest_args),
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(turn,),
            preexec_fn=die_with_parent(),  # noqa: PLW1509 - the other threads wait on children; prctl is async-signal-safe
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


def give_turn(go: int, *, tests: bool | None = None) -> bool:
    """Let the shard waiting on ``go`` start its stack; False when it had ended (its exit code says why).

    ``tests`` known (whether the shard has any) hands them over too and closes the pipe; else
    the pipe stays open for :func:`hand_tests`. A shard without tests ends without a stack.
    """
    if tests is False:
        return _send(go, NONE, close=True)
    return _send(go, START, close=False) and (tests is None or hand_tests(go, tests=True))


def hand_tests(go: int, *, tests: bool) -> bool:
    """Tell the shard on ``go`` (its turn given) that its tests are in its file, or that it has none."""
    return _send(go, TESTS if tests else NONE, close=True)


def _send(go: int, line: bytes, *, close: bool) -> bool:
    try:
        os.write(go, line)
    except BrokenPipeError:
        os.close(go)
        return False
    if close:
        os.close(go)
    return True


def _cancel(turns: dict[int, int]) -> None:
    """Close the pipes of the shards still waiting (for their turn or their tests): they end without running tests."""
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
    split: Future[list[list[str]]] | None = None,
) -> None:
    """Run every shard, at most ``at_once`` starting their stacks at a time; wait for all.

    Each shard's output reaches its log through ``redact`` (:class:`dockyard.shards.logs.LogPump`),
    and so does its JUnit XML once it ended. With ``split`` (the node ids of each run, in
    order, once collected and split elsewhere) the runs start pending: their stacks start
    meanwhile, and each gets its tests once both are there. A split that fails stops them all
    and is raised.

    Sets each run's exit code, when it began (seconds after the first) and its wall time (from
    its own start). A shard has started its stack when `dockyard run` writes its first report,
    or when it ended. SIGTERM raises :class:`dockyard.sessions.signals.Terminated` once the
    shards were stopped.
    """
    shards = _Shards(runs, at_once, view, redact)
    with sigterm_raises():
        try:
            for run in runs:
                shards.start(run, pytest_args, cwd)
            while shards.queued or shards.running:
                if split is not None and split.done():
                    shards.hand_over(split.result())
                    split = None
                shards.give_turns()
                # Whose stack is up (to start the next), what the others wait for: soon while
                # a shard waits for its turn, a few times a second otherwise.
                waited: list[Future[Any]] = [*shards.running, *([split] if split is not None else [])]
                timeout = _HANDOFF_POLL_S if shards.queued else _POLL_S
                done, _ = wait(waited, timeout=timeout, return_when=FIRST_COMPLETED)
                shards.look(bool(done))
                for future in done:
                    if future is not split:
                        shards.ended(future)
        except KeyboardInterrupt:
            shards.cancel(terminate=False)
            raise
        except BaseException:  # SIGTERM, a split or a shard that failed to start: stop the others, re-raise
            shards.cancel(terminate=True)
            raise
        finally:
            shards.close()


class _Shards:
    """The shards of one launch as they go: started, queued for their turn, given their tests, ended."""

    def __init__(self, runs: Sequence[ShardRun], at_once: int, view: ShardView, redact: Redact) -> None:
        self.runs, self.at_once, self.view, self.redact = list(runs), at_once, view, redact
        self.first = time.monotonic()
        self.queued = list(runs)
        self.starting: list[ShardRun] = []
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.started: dict[int, float] = {}
        # Threads only wait, so each shard's end is taken when it ends, not when we look.
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(runs)), thread_name_prefix="shard")
        self.running: dict[Future[int], ShardRun] = {}
        self.pumps: dict[int, LogPump] = {}
        self.turns: dict[int, int] = {}  # the open pipes: shards waiting for their turn, or for their tests
        self.given: set[int] = set()  # shards given their turn but not yet their tests
        self.up: set[int] = set()  # shards whose stack is up (their report is there)
        self.looked = 0.0  # when the view was last told what the shards do

    def start(self, run: ShardRun, pytest_args: Sequence[str], cwd: Path) -> None:
        """Start ``run``'s process; it gets ready and waits for its turn."""
        self.view.queued(run.label, run.tests)
        self.started[run.number] = time.monotonic()
        self.procs[run.number], self.turns[run.number], self.pumps[run.number] = _start(
            run, pytest_args, cwd, self.redact
        )
        self.running[self.pool.submit(self.procs[run.number].wait)] = run

    def give_turns(self) -> None:
        """Let queued shards start their stacks while fewer than ``at_once`` are starting."""
        still = [r for r in self.starting if self.procs[r.number].poll() is None and not r.path("json").exists()]
        if len(still) < len(self.starting):  # a stack came up: say so before the next one starts
            _look(self.running.values(), self.up, self.view)
        self.starting = still
        while self.queued and len(self.starting) < self.at_once:
            run = self.queued.pop(0)
            known = None if run.pending else run.whole or bool(run.nodeids)
            if known is None:
                self.given.add(run.number)
                pipe = self.turns[run.number]  # open until its tests are handed over
            else:
                pipe = self.turns.pop(run.number)
            if not give_turn(pipe, tests=known):
                self.turns.pop(run.number, None)
                self.given.discard(run.number)
                continue  # it ended before its turn; its end is taken in ended()
            self.started[run.number] = time.monotonic()
            run.began = self.started[run.number] - self.first
            self.view.started(run.label, run.tests, run.path("log"))
            self.starting.append(run)

    def hand_over(self, split: Sequence[Sequence[str]]) -> None:
        """The split is known: every run gets its tests, and those given their turn are told now.

        A run the split left empty that is still queued ends at once, without a stack.
        """
        for run, nodeids in zip(self.runs, split, strict=True):
            run.hand(nodeids)
            self.view.counted(run.label, len(nodeids))
        for run in self.runs:
            if run.number in self.given:
                hand_tests(self.turns.pop(run.number), tests=bool(run.nodeids))
        self.given.clear()
        for run in [r for r in self.queued if not r.nodeids]:
            self.queued.remove(run)
            give_turn(self.turns.pop(run.number), tests=False)

    def look(self, anything_ended: bool) -> None:
        """Tell the view what the shards do: after an end, or a few times a second."""
        if anything_ended or time.monotonic() - self.looked >= _POLL_S:
            self.looked = _look(self.running.values(), self.up, self.view)

    def ended(self, future: Future[int]) -> None:
        """Take the end of the shard ``future`` waited for: its exit code, wall time, log and XML."""
        run = self.running.pop(future)
        run.exit_code, run.wall = future.result(), time.monotonic() - self.started[run.number]
        if (pipe := self.turns.pop(run.number, None)) is not None:
            os.close(pipe)  # it ended before its turn, or before its tests
        self.given.discard(run.number)
        if run in self.queued:
            self.queued.remove(run)
        self.pumps[run.number].join(_DRAIN_S)  # its last lines, before anyone reads the log
        mask_file(run.path("xml"), self.redact)
        self.view.ended(run.label, run.exit_code, run.wall)

    def cancel(self, *, terminate: bool) -> None:
        """Close the open pipes (waiting shards end without tests), then stop the shards still running."""
        _cancel(self.turns)
        stop(self.procs, terminate=terminate)

    def close(self) -> None:
        """Stop waiting on the shards; take what the stopped ones wrote while tearing down."""
        self.pool.shutdown(wait=False)
        for pump in self.pumps.values():
            pump.join(_DRAIN_S)
