"""The `up` / `down` side of the keeper: start one, read its answer, stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from dockyard.engine.endpoints import engine_for, sdk
from dockyard.errors import CorruptRecord, DockerUnavailable, DockyardError
from dockyard.pool import leasing
from dockyard.pool.berth import BerthPool, lock_is_held
from dockyard.pool.lease import LeaseRecord, read_record
from dockyard.settings import Settings
from dockyard.ui.progress import SILENT, Reporter, replay

_KEEPER_MODULE = "dockyard.sessions.keeper"
# `python -m` puts the module's path in argv[0], and so in the lease record's command.
KEEPER_PATH = str(Path(__file__).with_name("keeper.py"))


def start_keeper(
    settings: Settings, *, build: bool = True, progress: Reporter = SILENT, owner: int | None = None
) -> dict[str, Any]:
    """Start a keeper for ``settings`` and return its berth once the stack is healthy.

    The keeper's progress events are shown through ``progress`` as they come; its error is
    raised here as the keeper raised it (``NoFreeBerth``, ``StackUnhealthy``, ...). With
    ``owner`` (a pid) it also tears down when that process ends, unless the berth was marked kept.
    """
    return keeper_answer(_spawn(settings, build, owner), progress)


def fork_keeper(settings: Settings, *, build: bool = True) -> IO[str]:
    """Start a keeper for ``settings`` as a fork of this process; the stream :func:`keeper_answer` reads.

    For `dockyard up`, before anything else runs: a fork skips the interpreter's start and the
    imports this process already made. Only a process with no other thread forks (a thread's
    locks would stay held in the child forever); any other starts a new interpreter as
    :func:`start_keeper` does.
    """
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return _spawn(settings, build, None)
    read, write = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing buffered here may come out twice
    launcher = os.fork()
    if launcher == 0:
        os.close(read)
        _become_keeper(settings, build, write)
    os.close(write)
    os.waitpid(launcher, 0)  # it forks the keeper and exits at once, as keeper.detach does
    return os.fdopen(read, "r")


def _become_keeper(settings: Settings, build: bool, stdout: int) -> None:
    """In the forked launcher: detach as the spawned keeper would, then run the keeper; never returns."""
    code = 70  # EX_SOFTWARE, should anything escape below
    try:
        from dockyard.sessions.keeper import detach, main  # noqa: PLC0415 - only the keeper needs the stack

        os.setsid()
        detach()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd, target in ((0, devnull), (1, stdout), (2, devnull)):
            os.dup2(target, fd)
        os.close(devnull)
        os.close(stdout)
        os.chdir(settings.root)
        # What the lease record says of its holder, as for `python -m dockyard.sessions.keeper`.
        sys.argv = [KEEPER_PATH, str(settings.root), "build" if build else "no-build"]
        code = main(*sys.argv[1:])
    finally:
        os._exit(code)


def _spawn(settings: Settings, build: bool, owner: int | None) -> IO[str]:
    """Start a keeper as a new interpreter; the stream :func:`keeper_answer` reads."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            _KEEPER_MODULE,
            str(settings.root),
            "build" if build else "no-build",
            *([str(owner)] if owner is not None else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
        cwd=settings.root,
    )
    # The process started is a launcher that forks the keeper and exits at once (see keeper.main):
    # nothing here waits on, or leaves unreaped, a process that outlives this one.
    proc.wait()
    assert proc.stdout is not None  # noqa: S101 - stdout=PIPE; narrows the type
    return proc.stdout


def keeper_answer(stream: IO[str], progress: Reporter = SILENT) -> dict[str, Any]:
    """Show the keeper's progress from ``stream`` through ``progress``; its berth, or its error raised."""
    with stream:
        for line in stream:
            message = json.loads(line)
            if replay(message, progress):
                continue
            if "berth" in message:
                return dict(message["berth"])
            raise DockyardError.from_json(message["error"])
    raise DockyardError("the keeper process ended before the stack was up")


def kept_berths(settings: Settings) -> list[LeaseRecord]:
    """Live berths held by keepers started from this project root (in every pool of the configured engines)."""
    # Only held locks and their records, not the pool's statuses: those check every free
    # berth's ports against the host's socket tables, which says nothing about keepers and
    # cost a plain `pytest` on a warm stack ~0.4 s on a busy host.
    found = []
    for pool in leasing.pools(settings):
        for index in range(pool.settings.max_berths):
            lock = pool.lock_path(index)
            if not lock_is_held(lock):
                continue
            try:
                record = read_record(lock.with_suffix(".json"))
            except CorruptRecord:
                continue
            if record is not None and is_keeper(record) and record.cwd == str(settings.root):
                found.append(record)
    return found


def is_keeper(record: LeaseRecord) -> bool:
    """Whether ``record``'s holder is a keeper (a stack of `dockyard up`, or one kept after a failure)."""
    return record.command.startswith(KEEPER_PATH)


def owner_of(record: LeaseRecord) -> int | None:
    """The pid a keeper follows (a test session holding its stack through it); None for `dockyard up`'s."""
    words = record.command.split()
    return int(words[3]) if len(words) > 3 and words[3].isdigit() else None


def choose(settings: Settings, berth: int | None) -> LeaseRecord:
    """The kept berth a task should act on: ``berth`` if given, else the only one."""
    records = kept_berths(settings)
    if berth is not None:
        records = [r for r in records if r.index == berth]
    if len(records) == 1:
        return records[0]
    if not records:
        raise DockyardError(
            "no stack of this project is up" + (f" in berth {berth}" if berth is not None else ""),
            remedy="start one with `dockyard up` (see `dockyard status`)",
        )
    raise DockyardError(
        f"{len(records)} stacks of this project are up (berths {', '.join(str(r.index) for r in records)})",
        remedy="choose one with --berth N",
    )


def lock_path_of(settings: Settings, record: LeaseRecord) -> Path:
    """The lock of ``record``'s berth: in the pool of its engine's port scope (a remote host's has its own)."""
    return BerthPool(settings, [engine_for(record.engine)]).lock_path(record.index)


def stop_keeper(settings: Settings, record: LeaseRecord, timeout: float = 60) -> None:
    """Ask the keeper to tear its stack down and wait until its berth is free.

    A keeper whose teardown left something behind keeps the berth's record (for the next
    holder or ``cleanup`` to reap): that raises :class:`DockyardError` naming what is left.
    """
    lock = lock_path_of(settings, record)
    try:
        os.kill(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return  # already gone; the next holder or `cleanup` reaps what it left
    deadline = time.monotonic() + timeout
    while lock_is_held(lock):
        if time.monotonic() > deadline:
            raise DockyardError(
                f"berth {record.index} was not released within {timeout:g}s",
                remedy=f"kill pid {record.pid}, then run `dockyard cleanup`",
            )
        time.sleep(0.01)  # polling the lock to a deadline: a probe is two syscalls, the wait ~1 s
    if _still_recorded(lock, record) and (left := _leftovers(record)):
        raise DockyardError(
            f"berth {record.index} ({record.project}) was released with {left} still on the engine",
            remedy="run `dockyard cleanup` to remove them by their labels",
        )


def _still_recorded(lock: Path, record: LeaseRecord) -> bool:
    """Whether ``record``'s lease is still recorded beside ``lock`` (kept by a teardown that left something)."""
    try:
        kept = read_record(lock.with_suffix(".json"))
    except CorruptRecord:
        return False
    return kept is not None and kept.lease_id == record.lease_id


def _leftovers(record: LeaseRecord) -> str:
    """What of ``record``'s lease the engine still has, as text; "" for nothing (asked after a failed teardown)."""
    from dockyard.engine.labels import find  # noqa: PLC0415 - docker-py, on this failure only

    try:
        found = find(sdk(engine_for(record.engine)), **{"dockyard.lease": record.lease_id})
    except DockerUnavailable as exc:
        return f"what its engine holds of it (which did not answer: {exc.message})"
    return "; ".join(f"{r.kind} {r.name}" for r in found)
