"""Berths: file-locked slots of the host-global pool, each owning a port block and a project.

One pool per *port scope* (see :attr:`Engine.scope`): every engine on this machine shares the
host's pool, since they all publish on its 127.0.0.1; a remote engine's host has a pool of its
own, in a subdirectory of the lock directory. A berth records the engine its stack runs on.

A berth is held by an exclusive ``flock`` on ``berth-<i>.lock`` in the lock directory, so
the kernel releases it the instant its holder dies, however it dies. Beside the lock the
holder keeps its lease record; a record whose lock is free is *stale*, and whoever takes
the berth next is handed that record to reap what its holder left behind.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from filelock import FileLock, Timeout

from dockyard.engine.endpoints import LOCAL, Engine, engine_for, engines_of
from dockyard.errors import CorruptRecord, DockerUnavailable
from dockyard.pool.lease import LeaseRecord, read_record, remove_record, write_record
from dockyard.pool.ports import PortBlock, ports_in_use
from dockyard.settings import Settings

_POOL_ID = ".pool-id"
_SAFE = re.compile(r"[^a-z0-9_.-]")


def pool_id(lock_dir: Path, *, create: bool = False) -> str | None:
    """The random id of the berth pool in ``lock_dir`` (None: none yet, and not ``create``).

    Resources carry it as ``dockyard.pool``. Two machines whose pools sit at the same path
    (the default ``$TMPDIR/dockyard-<uid>``) and share a remote engine see the same
    ``dockyard.lock`` label on each other's resources; the id tells them apart, so neither
    judges (or reaps) the other's stacks by its own lock. A runner container that mounts the
    host's pool reads the host's id, and is judged as the host.
    """
    path = lock_dir / _POOL_ID
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        if not create:
            return None
    tmp = lock_dir / f".pool-id-{os.getpid()}-{os.urandom(4).hex()}"
    # 0600 like every file of the pool (the chaos security test checks them all).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(os.urandom(16).hex())
    try:
        os.link(tmp, path)  # the first writer's id wins; a racing second reads it
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def lock_is_held(lock_path: Path) -> bool:
    """Whether some open file description holds ``lock_path`` (this process's included).

    Probes with a fresh descriptor, so a berth held by this very process reads as held.
    """
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's lock, if it got one
    return False


class State(Enum):
    """How a berth looks from outside."""

    FREE = "free"
    LIVE = "live"
    STALE = "stale"  # lock free, record of a dead holder left behind
    BLOCKED = "blocked"  # lock free, but a foreign program holds a port of its block


@dataclass(frozen=True)
class BerthStatus:
    """One row of ``dockyard status``."""

    index: int
    project: str
    port_block: PortBlock
    state: State
    record: LeaseRecord | None = None
    reason: str = ""


@dataclass
class Berth:
    """A held berth: its index, port block, compose project and lease.

    ``ports`` maps service -> container port -> host port once the stack's published ports
    are known. ``stale`` is the record of a previous holder that died holding this berth.
    """

    index: int
    project: str
    port_block: PortBlock
    lock_path: Path
    record: LeaseRecord
    stale: LeaseRecord | None = None
    ports: dict[str, dict[int, int]] = field(default_factory=dict)
    _lock: FileLock | None = field(default=None, repr=False)
    watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    keep_record: bool = False  # a teardown could not reach the engine: the record says what to reap

    def note_engine_id(self) -> None:
        """Add the engine's ID (``docker info``) to the record, once a Docker user holds the berth.

        Called by the stack when it first talks to the engine, not when the berth is taken:
        the ID is for people reading the record, and asking for it costs docker-py's import
        and two round trips (~100 ms) that a holder needing no engine should not pay.
        """
        from dockyard.engine.endpoints import engine_id  # noqa: PLC0415 - asks the engine; berths alone need no Docker

        if self.record.engine_id or not self.held:
            return
        try:
            self.record = replace(self.record, engine_id=engine_id(self.engine))
        except DockerUnavailable:
            return  # the stack's own preflight says so, with the remedy
        write_record(self.record_path, self.record)

    @property
    def engine(self) -> Engine:
        """The engine this berth's stack runs on (from its lease record)."""
        return engine_for(self.record.engine)

    @property
    def record_path(self) -> Path:
        """Where this berth's lease record lives."""
        return self.lock_path.with_suffix(".json")

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._lock is not None and self._lock.is_locked

    def release(self) -> None:
        """Drop the lease record, then the lock, then stand the watchdog down. Idempotent.

        In this order a kill at any point leaves nothing behind: until the watchdog is told
        to stand down it still reaps, and it finds the record gone and nothing labelled left.
        With ``keep_record`` the record stays: the berth is stale, and whoever takes it next
        reaps what its stack left on an engine that could not be reached.
        """
        if self._lock is None:
            return
        if not self.keep_record:
            remove_record(self.record_path)
        self._lock.release(force=True)
        self._lock = None
        if self.watchdog is not None:  # a clean release: the watchdog has nothing to do
            self.watchdog.terminate()
            self.watchdog.wait()
            self.watchdog = None

    def __enter__(self) -> Berth:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


Reaper = Callable[[int, str, Path], None]
"""Removes what a dead holder of berth (index, project, lock path) left behind."""


class BerthPool:
    """The berths of one port scope: by default the host-global pool of :class:`Settings`.

    ``engines`` are the engines whose stacks may run in it (default: the ``engines``
    setting, or the current engine); only those of the first one's scope belong here.
    """

    def __init__(self, settings: Settings, engines: Sequence[Engine] | None = None) -> None:
        self.settings = settings
        engines = list(engines) if engines is not None else engines_of(settings.engines)
        self.scope = engines[0].scope
        self.engines = [e for e in engines if e.scope == self.scope]
        self.lock_dir = scope_dir(settings, self.scope)

    @property
    def local(self) -> bool:
        """Whether the pool's ports are this machine's (so a foreign listener can be seen)."""
        return self.scope == LOCAL

    def lock_path(self, index: int) -> Path:
        """The lock file of berth ``index``."""
        return self.lock_dir / f"berth-{index}.lock"

    def _read(self, index: int) -> tuple[LeaseRecord | None, str]:
        try:
            return read_record(self.lock_path(index).with_suffix(".json")), ""
        except CorruptRecord as exc:
            return None, exc.problem

    def try_acquire(
        self, index: int, reaper: Reaper | None = None, engine: Engine | None = None
    ) -> tuple[Berth | None, str]:
        """Take berth ``index`` for ``engine`` (default: the pool's first) without blocking.

        ``(None, reason)`` when it is not to be had.
        """
        lock_path = self.lock_path(index)
        lock = FileLock(lock_path, timeout=0, mode=0o600, thread_local=False, preserve_lock_file=True)
        try:
            lock.acquire()
        except Timeout:
            record, _ = self._read(index)
            return None, f"held by {record.describe()}" if record else "held (lease record not written yet)"
        try:
            return self._claim(index, lock, reaper, engine or self.engines[0])
        except BaseException:
            lock.release(force=True)
            raise

    def _busy(self, block: PortBlock) -> list[int]:
        # A remote engine's ports are bound on its own host, out of sight of this one's /proc.
        return ports_in_use(block) if self.local else []

    def _claim(self, index: int, lock: FileLock, reaper: Reaper | None, engine: Engine) -> tuple[Berth | None, str]:
        project = self.settings.project_name(index)
        block = self.settings.port_block(index)
        stale, corrupt = self._read(index)
        busy = self._busy(block)
        if (stale is not None or corrupt or busy) and reaper is not None:
            # A dead holder's containers may still hold the block's ports: reap (on the engine
            # its record names, which the reaper reads before we overwrite it), then look again.
            reaper(index, project, self.lock_path(index))
            busy = self._busy(block)
        if busy:
            lock.release(force=True)
            shown = ", ".join(map(str, busy[:5])) + (" ..." if len(busy) > 5 else "")
            return None, f"port(s) {shown} taken by another program"
        record = LeaseRecord.for_current_process(index, project, block, engine.endpoint)
        berth = Berth(index, project, block, self.lock_path(index), record, stale=stale, _lock=lock)
        write_record(berth.record_path, record)
        return berth, ""

    def statuses(self) -> Iterator[BerthStatus]:
        """Every berth of the pool as it is now, without taking any of them."""
        for index in range(self.settings.max_berths):
            project = self.settings.project_name(index)
            block = self.settings.port_block(index)
            record, corrupt = self._read(index)
            if lock_is_held(self.lock_path(index)):
                yield BerthStatus(index, project, block, State.LIVE, record)
            elif record is not None or corrupt:
                yield BerthStatus(index, project, block, State.STALE, record, corrupt and f"corrupt record: {corrupt}")
            elif busy := self._busy(block):
                yield BerthStatus(
                    index, project, block, State.BLOCKED, None, f"port {busy[0]} taken by another program"
                )
            else:
                yield BerthStatus(index, project, block, State.FREE)


def scope_dir(settings: Settings, scope: str) -> Path:
    """The lock directory of the pool of port scope ``scope``."""
    if scope == LOCAL:
        return settings.lock_dir
    return settings.lock_dir / f"engine-{_SAFE.sub('_', scope.lower())}"
