"""Judging what dockyard left behind: a labelled resource is orphaned when its lease is over.

A resource is orphaned when its lock is no longer held, or is held under another lease
(its holder died and someone else took the berth since). Only resources carrying
``dockyard.managed`` are ever judged (see :mod:`dockyard.engine.labels`).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.engine.labels import Resource, find, remove
from dockyard.errors import CorruptRecord
from dockyard.pool.berth import lock_is_held, pool_id
from dockyard.pool.lease import read_record

if TYPE_CHECKING:
    from docker import DockerClient


def _of_another_pool(labels: dict[str, str], lock: Path) -> bool:
    """Whether ``labels`` name another pool than the one whose lock directory holds ``lock`` here.

    Only where that lock exists here: with no pool at that path (a reboot emptied /tmp, say)
    nothing can be confused, and the resource is judged by its host label as before.
    """
    theirs = labels.get("dockyard.pool")
    return bool(theirs) and lock.exists() and theirs != pool_id(lock.parent)


def orphaned(resource: Resource) -> bool:
    """Whether the lease that created ``resource`` is over."""
    lock = resource.labels.get("dockyard.lock")
    if not lock:
        return True
    if _judged_elsewhere(resource, Path(lock)):
        return False
    try:
        if not lock_is_held(Path(lock)):
            return True
    except PermissionError:
        return False  # another user's private pool: not ours to judge, never ours to remove
    try:
        record = read_record(Path(lock).with_suffix(".json"))
    except CorruptRecord:
        return True
    # Held, but no record yet means the holder is between lock and record: leave it be.
    return record is not None and record.lease_id != resource.labels.get("dockyard.lease")


def _judged_elsewhere(resource: Resource, lock: Path) -> bool:
    """Whether another machine's pool made this, on a shared engine: that machine judges it."""
    if _of_another_pool(resource.labels, lock):
        return True  # a pool at the same path on another machine (the default path is the same everywhere)
    # Made on another machine whose lock we cannot see (labels without a pool id, of older
    # versions). A container sharing this host's lock directory is judged as usual.
    return resource.labels.get("dockyard.host", socket.gethostname()) != socket.gethostname() and not lock.exists()


def reap_berth(client: DockerClient, lock_path: Path) -> list[Resource]:
    """Remove everything a dead holder of the berth at ``lock_path`` left behind (never another pool's)."""
    found = find(client, **{"dockyard.lock": str(lock_path)})
    leftovers = [r for r in found if not _of_another_pool(r.labels, lock_path)]
    remove(client, leftovers)
    return leftovers


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``2h``, ``1d`` (or a bare number of seconds)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        seconds = float("nan")
    # A negative (or nan/inf) age would make `cleanup --older-than` select every resource, held ones too.
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"{text!r} is not a duration; use e.g. 90s, 30m, 2h or 1d")
    return seconds


def select_for_cleanup(resources: Iterable[Resource], *, older_than: float | None, everything: bool) -> list[Resource]:
    """What `cleanup` removes: orphans, plus (with ``older_than``) anything older, or all."""
    return [r for r in resources if everything or orphaned(r) or (older_than is not None and r.age > older_than)]
