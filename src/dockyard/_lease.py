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
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class LeaseRecord:
    """The facts about one holder of one berth."""

    lease_id: str
    index: int
    project: str
    port_block: tuple[int, int]  # first and last port, inclusive
    pid: int
    user: str
    host: str
    cwd: str
    command: str
    started: float

    @classmethod
    def for_current_process(cls, index: int, project: str, block: range) -> LeaseRecord:
        """A record describing this process as the holder."""
        return cls(
            lease_id=uuid.uuid4().hex[:12],
            index=index,
            project=project,
            port_block=(block.start, block.stop - 1),
            pid=os.getpid(),
            user=getpass.getuser(),
            host=socket.gethostname(),
            cwd=os.getcwd(),
            command=" ".join(sys.argv)[:300],
            started=time.time(),
        )

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
}


class CorruptRecord(ValueError):
    """A lease record that cannot be parsed; carries the path so it can be reported."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"lease record {path} is corrupt ({problem})")
        self.path = path
        self.problem = problem


def write_record(path: Path, record: LeaseRecord) -> None:
    """Atomically replace ``path`` with ``record`` (mode 0600)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(record), fh)
    os.replace(tmp, path)


def read_record(path: Path) -> LeaseRecord | None:
    """The record at ``path``; None when there is none; :class:`CorruptRecord` when unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)  # bytes: invalid UTF-8 is a ValueError here, reported as corrupt
        data["port_block"] = tuple(data["port_block"])
        record = LeaseRecord(**data)
        for name, kind in _FIELD_TYPES.items():
            if not isinstance(getattr(record, name), kind) or isinstance(getattr(record, name), bool):
                raise TypeError(f"{name} is {type(getattr(record, name)).__name__}, not {kind}")
        return record
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptRecord(path, f"{type(exc).__name__}: {exc}"[:200]) from None


def remove_record(path: Path) -> None:
    """Delete ``path`` if present."""
    path.unlink(missing_ok=True)
