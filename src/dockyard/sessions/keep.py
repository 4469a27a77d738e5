"""Keep on test failure: the stack, the failed tests' databases and the berth stay, held by a keeper.

With ``--dockyard-keep-on-failure`` (or ``keep_on_failure = true``) a test session starts its
own stack through a keeper that follows the session (``sessions/keeper.py``): when the
session ends with every test passed, or dies, the keeper tears the stack down as any run
would. When a test failed, the session first writes a *kept* marker beside the berth's lock
(who failed, since when, which database copies hold their rows), and the keeper stays: the
berth held, the stack up, until ``dockyard down --berth N``. ``dockyard status`` shows the
berth as kept, with its age; ``dockyard cleanup --older-than`` takes such berths down too.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.pool.berth import Berth
from dockyard.pool.lease import LeaseRecord
from dockyard.sessions import keeper_client as keeper
from dockyard.sessions.api import stack_of
from dockyard.settings import Settings
from dockyard.stack.stack import Stack
from dockyard.ui.progress import as_reporter

Say = Callable[[str], None]


@dataclass(frozen=True)
class Kept:
    """What a kept berth's marker says."""

    lease_id: str
    since: float
    tests: tuple[str, ...]
    databases: Mapping[str, str] = field(default_factory=dict)  # test node id -> its database's copy


def marker_path(lock_path: Path) -> Path:
    """Where the kept marker of the berth locked at ``lock_path`` lives."""
    return lock_path.with_suffix(".kept.json")


def read_kept(lock_path: Path, lease_id: str) -> Kept | None:
    """The kept marker of lease ``lease_id``; None when there is none (or another lease's)."""
    try:
        data = json.loads(marker_path(lock_path).read_bytes())
        if data.get("lease_id") != lease_id:
            return None
        return Kept(lease_id, float(data["since"]), tuple(data["tests"]), dict(data.get("databases") or {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # absent or unreadable: not kept, so the keeper tears down as for any run


def is_kept_after_failure(lock_path: Path, lease_id: str) -> bool:
    """Whether the berth of lease ``lease_id`` was kept after a test failure."""
    return read_kept(lock_path, lease_id) is not None


def mark_kept(berth: Berth, tests: Sequence[str], databases: Mapping[str, str]) -> Kept:
    """Mark ``berth`` kept after ``tests`` failed (atomically, private like every file of the pool)."""
    kept = Kept(berth.record.lease_id, time.time(), tuple(tests), dict(databases))
    path = marker_path(berth.lock_path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(
            {"lease_id": kept.lease_id, "since": kept.since, "tests": list(tests), "databases": dict(databases)}, fh
        )
    os.replace(tmp, path)
    return kept


def kept_note(lock_path: Path, record: LeaseRecord | None, now: float | None = None) -> str:
    """``kept after 2 failed tests, 3m05s ago`` for a kept berth's row of ``status``; else ""."""
    from dockyard.ui.console import human_age  # noqa: PLC0415 - rich, only for the status table

    kept = read_kept(lock_path, record.lease_id) if record is not None else None
    if kept is None:
        return ""
    count = len(kept.tests)
    age = human_age((now or time.time()) - kept.since)
    return f"kept after {count} failed test{'s' if count != 1 else ''}, {age} ago"


def session_owned(stack: Stack) -> bool:
    """Whether ``stack`` is held by a keeper following this process (so it can be kept)."""
    return keeper.owner_of(stack.berth.record) == os.getpid()


@contextmanager
def keeper_stack(settings: Settings, *, progress: Say) -> Iterator[Stack]:
    """A berth of this session's own with the stack up, held by a keeper that follows this process.

    When the block ends the stack is taken down, unless :func:`mark_kept` was called meanwhile.
    """
    info = keeper.start_keeper(settings, owner=os.getpid(), progress=as_reporter(progress))
    record = keeper.choose(settings, int(info["index"]))
    stack = stack_of(settings, record, keeper.lock_path_of(settings, record), progress=progress)
    try:
        yield stack
    finally:
        if not is_kept_after_failure(stack.berth.lock_path, record.lease_id):
            keeper.stop_keeper(settings, record)


def describe(stack: Stack, kept: Kept | None, databases: Mapping[str, str]) -> list[str]:
    """The end-of-session lines: how to reach what was kept, and how to release it."""
    berth = stack.berth
    where = f"berth {berth.index} ({stack.project}), ports {berth.port_block.start}-{berth.port_block.stop - 1}"
    if kept is not None:
        lines = [f"kept after {len(kept.tests)} failed test(s): {where}, held by pid {berth.record.pid}"]
    elif keeper.is_keeper(berth.record):
        lines = [f"test(s) failed; the stack kept by `dockyard up` stays up: {where}"]
    else:
        return [
            f"test(s) failed; the stack of {where} belongs to the `dockyard run` that started it and goes "
            "down with it: run plain pytest (or `dockyard up` first) to keep it"
        ]
    for service, ports in sorted(stack.describe()["addresses"].items()):
        lines += [f"  {service}:{port} -> {address}" for port, address in sorted(ports.items())]
    for test, database in databases.items():
        lines.append(f"  database of {test}: {database} (the test's rows, copied at its failure)")
    flag = f" --berth {berth.index}"
    lines += [
        f"  look: dockyard status | dockyard logs{flag} | dockyard exec{flag} SERVICE 'CMD'",
        f"  release: dockyard down{flag}",
    ]
    return lines


def release_older_than(settings: Settings, age: float, *, dry_run: bool) -> list[int]:
    """Take down the berths of this project kept after a failure longer than ``age`` seconds ago."""
    now = time.time()
    released = []
    for record in keeper.kept_berths(settings):
        kept = read_kept(keeper.lock_path_of(settings, record), record.lease_id)
        if kept is None or now - kept.since < age:
            continue
        if not dry_run:
            try:
                keeper.stop_keeper(settings, record)
            except DockyardError:
                continue  # its remedy is for a person; the label sweep still removes its resources
        released.append(record.index)
    return released
