"""What a chaos session leaves on the host, looked for to a deadline; port ranges for a run.

Every check here polls to a deadline: what a killed session leaves is reaped by its watchdog
"within seconds", so a check that looked once would flake and one that slept would be slow.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dockyard
from dockyard.engine.endpoints import sdk
from dockyard.pool.ports import ports_in_use

REAP_DEADLINE = 10.0  # seconds: the promise is "within seconds"; the watchdog needs about one

# -- what is still there ----------------------------------------------------------------------


def resources_labelled(*labels: str) -> list[str]:
    """``kind name`` of every container, network and volume carrying any of ``labels``."""
    api = sdk().api
    found: set[str] = set()
    for label in labels:
        filters = {"label": [label]}
        found |= {f"container {c['Names'][0].lstrip('/')}" for c in api.containers(all=True, filters=filters)}
        found |= {f"network {n['Name']}" for n in api.networks(filters=filters)}
        found |= {f"volume {v['Name']}" for v in api.volumes(filters=filters).get("Volumes") or []}
    return sorted(found)


def managed_of(project: str) -> list[str]:
    """``kind name`` of what dockyard manages for compose ``project`` (look-alikes excluded)."""
    api = sdk().api
    filters = {"label": ["dockyard.managed=true", f"dockyard.project={project}"]}  # both: AND
    return sorted(
        [f"container {c['Names'][0].lstrip('/')}" for c in api.containers(all=True, filters=filters)]
        + [f"network {n['Name']}" for n in api.networks(filters=filters)]
        + [f"volume {v['Name']}" for v in api.volumes(filters=filters).get("Volumes") or []]
    )


def of_session(project: str, lease: str | None = None) -> list[str]:
    """What Docker holds of a compose ``project`` (and of a dockyard ``lease``)."""
    labels = [f"com.docker.compose.project={project}", f"dockyard.project={project}"]
    return resources_labelled(*labels, *([f"dockyard.lease={lease}"] if lease else []))


def processes_naming(*needles: str) -> list[str]:
    """``pid: command line`` of every live process whose command line contains a needle.

    The needles of a session are its marker, its lease id (its watchdog) and its compose
    project (a `docker compose -p PROJECT ...` child carries neither of the others).
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()  # empty for zombies: they hold nothing
        except OSError:
            continue  # gone meanwhile
        command = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
        if command and any(needle in command for needle in needles if needle):
            found.append(f"{entry.name}: {command[:200]}")
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def pool_not_free(settings: dockyard.Settings) -> list[str]:
    """Every berth of the pool that is not free (held, stale record, blocked ports), described."""
    return [
        f"berth {s.index}: {s.state.value}{f' ({s.reason})' if s.reason else ''}"
        for s in dockyard.BerthPool(settings).statuses()
        if s.state is not dockyard.State.FREE
    ]


def wedged_locks(settings: dockyard.Settings) -> list[str]:
    """Berths whose lock is held although the holder its record names is dead (or unnamed)."""
    return [
        f"berth {s.index}: lock held, holder {s.record.pid if s.record else '(no record)'} dead"
        for s in dockyard.BerthPool(settings).statuses()
        if s.state is dockyard.State.LIVE and (s.record is None or not alive(s.record.pid))
    ]


def poll(check: Callable[[], list[str]], deadline: float = REAP_DEADLINE) -> tuple[list[str], float]:
    """Call ``check`` until it finds nothing or ``deadline`` seconds pass; (last findings, seconds)."""
    start = time.monotonic()
    while (found := check()) and time.monotonic() - start < deadline:
        time.sleep(0.05)
    return found, time.monotonic() - start


# -- port ranges nobody else uses ---------------------------------------------------------------

_PORT_UNIT = 10  # ports are claimed in blocks of this many
_PORT_FLOOR, _PORT_CEILING = 30000, 32760  # below the ephemeral ports (32768-): no client socket squats them


class PortClaims:
    """Port ranges this run has checked are free and claimed, so that a second run keeps off them.

    A range is free when nothing listens on any of its ports (a developer's stack publishes
    through docker-proxy, which listens). It is claimed with a ``flock`` per block of ten in a
    host-wide directory, held until the run ends: two chaos runs started together never pick
    the same ports, and a run that dies lets go of its claims with its last descriptor.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.gettempdir()) / f"dockyard-chaos-ports-{os.getuid()}"
        self.dir.mkdir(mode=0o700, exist_ok=True)
        self._held: list[int] = []  # descriptors holding the claims
        self._next = _PORT_FLOOR

    def take(self, count: int) -> str:
        """A claimed range of at least ``count`` free ports, as ``port_range`` wants it: ``"A-B"``."""
        units = -(-count // _PORT_UNIT)
        start = self._next
        while start + units * _PORT_UNIT <= _PORT_CEILING:
            claimed = self._claim(start, units)
            if claimed is not None:
                self._held += claimed
                self._next = start + units * _PORT_UNIT
                return f"{start}-{start + units * _PORT_UNIT - 1}"
            start += _PORT_UNIT
        raise AssertionError(f"no {count} free, unclaimed ports left in {_PORT_FLOOR}-{_PORT_CEILING}")

    def _claim(self, start: int, units: int) -> list[int] | None:
        fds: list[int] = []
        for unit in range(start, start + units * _PORT_UNIT, _PORT_UNIT):
            fd = os.open(self.dir / f"{unit}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                break
            fds.append(fd)
        else:
            if not ports_in_use(range(start, start + units * _PORT_UNIT)):
                return fds
        for fd in fds:
            os.close(fd)
        return None

    def release(self) -> None:
        """Let go of every claim."""
        for fd in self._held:
            os.close(fd)
        self._held.clear()
