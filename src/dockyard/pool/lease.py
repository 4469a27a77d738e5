"""Lease records: who holds a berth, written beside its lock.

The OS releases the lock when the holder dies; the record stays behind, and that is how the
next holder knows what to reap. A record is only ever replaced atomically (write + rename),
so a reader sees the old record or the new one, never half of one; a record damaged some
other way is reported as corrupt, never trusted and never fatal.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from dockyard.errors import CorruptRecord
from dockyard.portblock import PortBlock


@dataclass(frozen=True)
class LeaseRecord:
    """The facts about one holder of one berth."""

    lease_id: str
    index: int
    project: str
    port_block: PortBlock
    pid: int
    user: str
    host: str
    cwd: str
    command: str
    started: float
    # The engine the berth's stack runs on: reaping must go there, whatever DOCKER_HOST says
    # later. "" in records written before engines were recorded: the current engine.
    engine: str = ""
    engine_id: str = ""

    @classmethod
    def for_current_process(
        cls, index: int, project: str, block: PortBlock, engine: str = "", engine_id: str = ""
    ) -> LeaseRecord:
        """A record describing this process as the holder of a berth on ``engine``."""
        return cls(
            lease_id=os.urandom(6).hex(),
            index=index,
            project=project,
            port_block=block,
            pid=os.getpid(),
            user=getpass.getuser(),
            host=socket.gethostname(),
            cwd=os.getcwd(),
            command=" ".join(sys.argv)[:300],
            started=time.time(),
            engine=engine,
            engine_id=engine_id,
        )

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-able data: its fields, the port block as ``[first, last]``.

        The shape of the record files, of ``holder`` in ``status --json`` and of a berth
        handed to a child process.
        """
        return {**asdict(self), "port_block": self.port_block.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LeaseRecord:
        """The record :meth:`to_json` wrote; keys it does not know (a newer dockyard's) are ignored."""
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**fields, "port_block": PortBlock.from_json(data["port_block"])})

    def describe(self) -> str:
        """One line for humans: who, where, since when."""
        since = time.strftime("%H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} ({self.user}@{self.host}) since {since} in {self.cwd}: {self.command}"


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "lease_id": str,
    "index": int,
    "project": str,
    "pid": int,
    "user": str,
    "host": str,
    "cwd": str,
    "command": str,
    "started": (int, float),
    "engine": str,
    "engine_id": str,
}


_ENGINE_KEYS = ("engine", "engine_id")


def engine_path(path: Path) -> Path:
    """Where the engine of the lease recorded at ``path`` is kept (``berth-<i>.engine.json``).

    Beside the record, not in it: a dockyard from before engines were recorded reads the record
    with the keys it knows, and took any other key for corruption, and a corrupt record's stack
    for an orphan to reap. One pool serves every checkout on the host, of any version.
    """
    return path.with_name(f"{path.stem}.engine.json")


def _replace(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def write_record(path: Path, record: LeaseRecord) -> None:
    """Atomically replace ``path`` with ``record`` (mode 0600); its engine first, beside it."""
    data = record.to_json()
    engine = {key: data.pop(key) for key in _ENGINE_KEYS}
    _replace(engine_path(path), {"lease_id": record.lease_id, **engine})
    _replace(path, data)


def _engine_of(path: Path, lease_id: str) -> tuple[str, str] | None:
    """(engine, engine ID) kept for lease ``lease_id``; None when none are, or another lease's are."""
    try:
        data = json.loads(engine_path(path).read_bytes())
    except (OSError, ValueError):
        return None  # no engine recorded: the current engine, as for records of older versions
    if not isinstance(data, dict) or data.get("lease_id") != lease_id:
        return None
    engine, engine_id = data.get("engine"), data.get("engine_id")
    return (engine, engine_id) if isinstance(engine, str) and isinstance(engine_id, str) else None


def read_record(path: Path) -> LeaseRecord | None:
    """The record at ``path``; None when there is none; :class:`CorruptRecord` when unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)  # bytes: invalid UTF-8 is a ValueError here, reported as corrupt
        if not isinstance(data, dict):
            raise TypeError(f"the record is a JSON {type(data).__name__}, not an object")
        # Keys of a newer dockyard are ignored, not taken for corruption (see engine_path).
        record = LeaseRecord.from_json(data)
        for name, kind in _FIELD_TYPES.items():
            if not isinstance(getattr(record, name), kind) or isinstance(getattr(record, name), bool):
                raise TypeError(f"{name} is {type(getattr(record, name)).__name__}, not {kind}")
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptRecord(path, f"{type(exc).__name__}: {exc}"[:200]) from None
    engine = _engine_of(path, record.lease_id)
    return record if engine is None else replace(record, engine=engine[0], engine_id=engine[1])


def remove_record(path: Path) -> None:
    """Delete the record at ``path`` (and then its engine) if present."""
    path.unlink(missing_ok=True)
    engine_path(path).unlink(missing_ok=True)
