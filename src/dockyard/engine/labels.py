"""dockyard's labels: what every resource it creates carries, and finding and removing by them.

Every resource dockyard creates is labelled with the lock file and the lease it belongs to
(whether that lease is over is judged in :mod:`dockyard.pool.reaping`). Nothing without
``dockyard.managed`` is ever listed, let alone removed, whatever it is called.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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
            continue  # removed meanwhile (the teardown, another cleanup): the goal is met
        except docker.errors.APIError as exc:
            problems.append(f"{res}: {exc.explanation or exc}")
    return problems
