"""The public Python API: take a berth, run a stack in it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dockyard.engine.endpoints import engine_for, preflight
from dockyard.errors import CorruptRecord, DockerUnavailable
from dockyard.pool import leasing
from dockyard.pool.berth import Berth
from dockyard.pool.lease import LeaseRecord, read_record
from dockyard.pool.reaping import reap_berth
from dockyard.sessions.watchdog import watch
from dockyard.settings import Settings, load_settings
from dockyard.stack.compose import ComposeModel
from dockyard.stack.stack import Stack
from dockyard.ui.progress import SILENT, Reporter

BERTH_ENV = "DOCKYARD_BERTH"  # how a process holding a berth hands it to its children


def docker_reaper(_index: int, _project: str, lock_path: Path) -> None:
    """Reap a dead holder's leftovers on the engine its record names; without Docker there is nothing to reap."""
    try:
        record = read_record(lock_path.with_suffix(".json"))
    except CorruptRecord:
        record = None  # reap by the lock's label on the current engine, as before engines were recorded
    try:
        client = preflight(engine_for(record.engine if record is not None else ""))
    except DockerUnavailable:
        return
    reap_berth(client, lock_path)


@contextmanager
def acquire_berth(
    settings: Settings | None = None, *, timeout: float | None = None, with_ports: bool = True
) -> Iterator[Berth]:
    """Hold a berth of the host-global pool for the duration of the ``with`` block.

    With several ``engines`` configured, the berth is on the least-loaded one that answers
    (``berth.engine``).

    ``berth.ports`` maps service -> container port -> host port for the stack of
    ``settings`` (read from ``./pyproject.toml`` when not given). A dead previous holder's
    leftovers are reaped before the berth is handed out; its record is ``berth.stale``.
    """
    settings = settings or load_settings()
    berth = leasing.acquire(settings, timeout=timeout, reaper=docker_reaper)
    try:
        watch(berth)
        if with_ports:
            model = ComposeModel.load(settings)
            for (service, target, _proto), host in model.port_map(berth.port_block).items():
                berth.ports.setdefault(service, {})[target] = host
        yield berth
    finally:
        berth.release()


@contextmanager
def running_stack(
    settings: Settings | None = None, *, progress: Reporter | Callable[[str], None] = SILENT
) -> Iterator[Stack]:
    """Acquire a berth, start the stack healthy in it, yield it, tear it all down."""
    settings = settings or load_settings()
    with acquire_berth(settings, with_ports=False) as berth:
        stack = Stack(settings, berth, progress=progress)
        stack.up()
        try:
            yield stack
        finally:
            stack.down()


def hand_down(stack: Stack) -> dict[str, str]:
    """Environment for a child process that should use this running stack."""
    data = {
        **stack.describe(),
        "lock_path": str(stack.berth.lock_path),
        "record": stack.berth.record.to_json(),
        # A child that stops or restarts a measured service gives it time to write its data.
        "coverage": stack.coverage is not None,
        # The containers dockyard saw ready (container -> its start): until the engine's own
        # first check, Docker still says "starting", and the child's `ps()` must agree with ours.
        "passed": dict(stack.readiness.passed),
    }
    return {BERTH_ENV: json.dumps(data)}


def handed_down(settings: Settings) -> Stack | None:
    """The running stack a parent process handed to us, if any."""
    raw = os.environ.get(BERTH_ENV)
    if not raw:
        return None
    data = json.loads(raw)
    record = LeaseRecord.from_json(data["record"])
    stack = stack_of(settings, record, Path(data["lock_path"]), coverage=bool(data.get("coverage")))
    stack.readiness.passed.update({str(k): str(v) for k, v in (data.get("passed") or {}).items()})
    return stack


def stack_of(
    settings: Settings,
    record: LeaseRecord,
    lock_path: Path,
    *,
    progress: Reporter | Callable[[str], None] = SILENT,
    coverage: bool = False,
) -> Stack:
    """The stack in a berth another process holds (its lease record and lock), to act on it.

    Its holder's word on which containers it saw ready comes along (:func:`note_seen_ready`).
    """
    berth = Berth(record.index, record.project, record.port_block, lock_path, record)
    stack = Stack(settings, berth, progress=progress, coverage=coverage)
    stack.readiness.passed.update(seen_ready(lock_path, record.lease_id))
    return stack


def seen_ready_path(lock_path: Path) -> Path:
    """Where the holder of the berth locked at ``lock_path`` says which containers it saw ready."""
    return lock_path.with_suffix(".ready.json")


def note_seen_ready(stack: Stack) -> None:
    """Say, beside the berth's lock, which containers the holder saw ready (container -> its start).

    Until the engine's own first check, Docker says "starting" for a service dockyard saw pass
    that same check: a test session reusing the stack (or `dockyard status`) must agree with
    what `dockyard up` said. Read by :func:`stack_of`; the holder removes it when it lets go.
    """
    path = seen_ready_path(stack.berth.lock_path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # private, like every file of the pool
    with os.fdopen(fd, "w") as fh:
        json.dump({"lease": stack.berth.record.lease_id, "passed": dict(stack.readiness.passed)}, fh)
    os.replace(tmp, path)  # a reader never sees half of it


def seen_ready(lock_path: Path, lease_id: str) -> dict[str, str]:
    """The containers the holder of lease ``lease_id`` saw ready ({} when it said nothing, or of another lease)."""
    try:
        data = json.loads(seen_ready_path(lock_path).read_bytes())
        passed = data["passed"] if data.get("lease") == lease_id else {}
        return {str(k): str(v) for k, v in passed.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # none, or unreadable: the engine's word alone, as before
