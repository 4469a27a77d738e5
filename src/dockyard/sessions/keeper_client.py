"""The `up` / `down` side of the keeper: start one, read its answer, stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dockyard.engine.endpoints import engine_for
from dockyard.errors import DockyardError, ExitCode
from dockyard.pool import leasing
from dockyard.pool.berth import BerthPool, State, lock_is_held
from dockyard.pool.lease import LeaseRecord
from dockyard.settings import Settings
from dockyard.ui.progress import SILENT, Reporter, replay

_KEEPER_MODULE = "dockyard.sessions.keeper"
# `python -m` puts the module's path in argv[0], and so in the lease record's command.
_KEEPER_PATH = str(Path(__file__).with_name("keeper.py"))


def start_keeper(settings: Settings, *, build: bool = True, progress: Reporter = SILENT) -> dict[str, Any]:
    """Start a keeper for ``settings`` and return its berth once the stack is healthy.

    The keeper's progress events are shown through ``progress`` as they come.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", _KEEPER_MODULE, str(settings.root), "build" if build else "no-build"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
        cwd=settings.root,
    )
    for line in proc.stdout or ():
        message = json.loads(line)
        if replay(message, progress):
            continue
        if "berth" in message:
            return dict(message["berth"])
        proc.wait()
        err = DockyardError(message["error"])
        err.exit_code = ExitCode(message["exit_code"])
        raise err
    proc.wait()
    raise DockyardError(f"the keeper process exited ({proc.returncode}) before the stack was up")


def kept_berths(settings: Settings) -> list[LeaseRecord]:
    """Live berths held by keepers started from this project root (in every pool of the configured engines)."""
    return [
        s.record
        for _pool, s in leasing.statuses(settings)
        if s.state is State.LIVE
        and s.record is not None
        and s.record.command.startswith(_KEEPER_PATH)
        and s.record.cwd == str(settings.root)
    ]


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
    """Ask the keeper to tear its stack down and wait until its berth is free."""
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
        time.sleep(0.05)  # polling the lock to a deadline
