"""Finding and removing what dockyard left behind, by its labels and nothing else.

Every resource dockyard creates is labelled with the lock file and the lease it belongs to.
A resource is orphaned when its lock is no longer held, or is held under another lease
(its holder died and someone else took the berth since). Nothing without ``dockyard.managed``
is ever listed, let alone removed, whatever it is called.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ._berth import lock_is_held, pool_id
from ._lease import CorruptRecord, read_record

if TYPE_CHECKING:
    from docker import DockerClient

MANAGED = "dockyard.managed"


def labels_for(
    index: int, project: str, lock_path: Path, lease_id: str, started: float, *, pool: str | None = None
) -> dict[str, str]:
    """The labels of every resource of one berth's stack (``pool``: the id of the berth's pool)."""
    labels = {
        MANAGED: "true",
        "dockyard.berth": str(index),
        "dockyard.project": project,
        "dockyard.lock": str(lock_path),
        "dockyard.lease": lease_id,
        "dockyard.created": str(int(started)),
        # A shared (remote) engine serves several machines: only the one holding the lock can judge it.
        "dockyard.host": socket.gethostname(),
    }
    if pool:
        labels["dockyard.pool"] = pool
    return labels


def _of_another_pool(labels: dict[str, str], lock: Path) -> bool:
    """Whether ``labels`` name another pool than the one whose lock directory holds ``lock`` here.

    Only where that lock exists here: with no pool at that path (a reboot emptied /tmp, say)
    nothing can be confused, and the resource is judged by its host label as before.
    """
    theirs = labels.get("dockyard.pool")
    return bool(theirs) and lock.exists() and theirs != pool_id(lock.parent)


@dataclass(frozen=True)
class Resource:
    """One dockyard-labelled container, network or volume."""

    kind: str  # "container" | "network" | "volume"
    id: str
    name: str
    labels: dict[str, str]

    @property
    def age(self) -> float:
        """Seconds since its berth was leased."""
        try:
            return time.time() - float(self.labels.get("dockyard.created", "0"))
        except ValueError:
            return float("inf")

    def orphaned(self) -> bool:
        """Whether the lease that created it is over."""
        lock = self.labels.get("dockyard.lock")
        if not lock:
            return True
        if self._judged_elsewhere(Path(lock)):
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
        return record is not None and record.lease_id != self.labels.get("dockyard.lease")

    def _judged_elsewhere(self, lock: Path) -> bool:
        """Whether another machine's pool made this, on a shared engine: that machine judges it."""
        if _of_another_pool(self.labels, lock):
            return True  # a pool at the same path on another machine (the default path is the same everywhere)
        # Made on another machine whose lock we cannot see (labels without a pool id, of older
        # versions). A container sharing this host's lock directory is judged as usual.
        return self.labels.get("dockyard.host", socket.gethostname()) != socket.gethostname() and not lock.exists()

    def __str__(self) -> str:
        berth, project = self.labels.get("dockyard.berth", "?"), self.labels.get("dockyard.project", "?")
        return f"{self.kind:9} {self.name} (berth {berth}, {project})"


def find(client: DockerClient, **label_filters: str) -> list[Resource]:
    """Every dockyard-labelled resource, optionally narrowed by more ``label=value`` pairs."""
    # `=true`, not the bare key: `dockyard.managed=false` is a look-alike, and `cleanup` said it removed one.
    labels = [f"{MANAGED}=true", *(f"{k}={v}" for k, v in label_filters.items())]
    found = [
        Resource("container", c["Id"], c["Names"][0].lstrip("/"), c["Labels"] or {})
        for c in client.api.containers(all=True, filters={"label": labels})
    ]
    found += [
        Resource("network", n["Id"], n["Name"], n.get("Labels") or {})
        for n in client.api.networks(filters={"label": labels})
    ]
    volumes = client.api.volumes(filters={"label": labels}).get("Volumes") or []
    found += [Resource("volume", v["Name"], v["Name"], v.get("Labels") or {}) for v in volumes]
    return found


def detach_foreign(client: DockerClient, network: str, lease: str | None) -> None:
    """Disconnect from ``network`` every container that is not of ``lease``'s stack.

    A test runner in a container joins its stack's networks (see ``_where``); a network with
    such an endpoint cannot be removed ("has active endpoints"). Those containers are only
    disconnected, never stopped or removed: they are not ours.
    """
    import docker.errors  # noqa: PLC0415 - docker-py is imported only where the engine is called

    try:
        attached = set((client.api.inspect_network(network).get("Containers") or {}).keys())
    except docker.errors.NotFound:
        return
    if not attached:
        return
    own = set()
    if lease:
        own = {c["Id"] for c in client.api.containers(all=True, filters={"label": [f"dockyard.lease={lease}"]})}
    for container in sorted(attached - own):
        try:
            client.api.disconnect_container_from_network(container, network, force=True)
        except docker.errors.APIError:
            continue  # gone meanwhile, or refused: the network's removal reports what is still attached


def remove(client: DockerClient, resources: Iterable[Resource]) -> list[str]:
    """Remove ``resources`` (containers first, then networks and volumes); problems as text."""
    import docker.errors  # noqa: PLC0415 - docker-py is imported only where the engine is called

    problems = []
    order = {"container": 0, "network": 1, "volume": 2}
    for res in sorted(resources, key=lambda r: order[r.kind]):
        if res.labels.get(MANAGED) != "true":  # belt and braces: never touch foreign resources
            continue
        try:
            if res.kind == "container":
                client.api.remove_container(res.id, force=True, v=True)
            elif res.kind == "network":
                detach_foreign(client, res.id, res.labels.get("dockyard.lease"))
                client.api.remove_network(res.id)
            else:
                client.api.remove_volume(res.id, force=True)
        except docker.errors.NotFound:
            continue  # removed meanwhile (compose down, another cleanup): the goal is met
        except docker.errors.APIError as exc:
            problems.append(f"{res}: {exc.explanation or exc}")
    return problems


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
    return [r for r in resources if everything or r.orphaned() or (older_than is not None and r.age > older_than)]
