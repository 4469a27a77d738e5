"""Taking a compose project down through the engine API: what ``compose down -v --remove-orphans`` removes.

Compose stops a project's containers level by level of ``depends_on`` (dependants first) and
runs as a process of its own (~0.3 s of start and config parsing before its first call). A
stack being thrown away needs neither: every container of the project is stopped at once,
each by its own stop signal, and given ``timeout`` seconds before the engine kills it; then
removed with its anonymous volumes; then the project's networks and named volumes go.

Only what carries the project's compose label (``com.docker.compose.project=<name>``) is
touched: the berth's project name is dockyard's own, and no other label selects anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.engine.labels import detach_foreign
from dockyard.stack.services import PROJECT_LABEL, SERVICE_LABEL

if TYPE_CHECKING:
    from docker import DockerClient


@dataclass(frozen=True)
class Container:
    """One container of the project, as the listing shows it."""

    id: str
    name: str
    service: str
    running: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Container:
        """From one row of the engine's container listing."""
        labels = row.get("Labels") or {}
        names = row.get("Names") or [row["Id"][:12]]
        return cls(row["Id"], str(names[0]).lstrip("/"), labels.get(SERVICE_LABEL, ""), row.get("State") == "running")


def stop_timeouts(containers: Iterable[Container], timeout: int, services: Collection[str] = ()) -> dict[str, int]:
    """Seconds each running container (of ``services``, default all) gets to stop: ``timeout``."""
    return {c.id: timeout for c in containers if c.running and (not services or c.service in services)}


def stop(client: DockerClient, project: str, *, timeout: int, services: Collection[str] = ()) -> None:
    """Stop the running containers of ``project`` (of ``services``, default all) at once.

    Each gets its own stop signal and ``timeout`` seconds before the engine kills it. A stop
    that fails is left to the removal that follows (forced: it kills what still runs).
    """
    _stop(client, containers_of(client, project), timeout, services)


def containers_of(client: DockerClient, project: str) -> list[Container]:
    """Every container of ``project``, running or not."""
    return [Container.from_row(r) for r in client.api.containers(all=True, filters=_selector(project))]


def _stop(client: DockerClient, containers: Iterable[Container], timeout: int, services: Collection[str] = ()) -> None:
    stops = stop_timeouts(containers, timeout, services)
    _together([functools.partial(client.api.stop, cid, timeout=t) for cid, t in stops.items()])


def take_down(client: DockerClient, project: str, *, timeout: int) -> list[str]:
    """Stop and remove every container of ``project`` at once, then its networks and named volumes.

    ``timeout``: the seconds a container gets between its stop signal and the kill. Returns
    what could not be removed, as text naming each; an empty list when all of it is gone.
    """
    api = client.api
    containers = containers_of(client, project)
    _stop(client, containers, timeout)
    removals = [functools.partial(api.remove_container, c.id, v=True, force=True) for c in containers]
    problems = _named(_together(removals), [f"container {c.name}" for c in containers])
    networks = api.networks(filters=_selector(project))
    outcomes = [_call(functools.partial(_remove_network, client, n["Id"])) for n in networks]
    problems += _named(outcomes, [f"network {n['Name']}" for n in networks])
    volumes = api.volumes(filters=_selector(project)).get("Volumes") or []
    outcomes = [_call(functools.partial(api.remove_volume, v["Name"], force=True)) for v in volumes]
    problems += _named(outcomes, [f"volume {v['Name']}" for v in volumes])
    return problems


def remaining(client: DockerClient, project: str) -> list[str]:
    """What of ``project`` the engine still has: "container NAME", "network NAME", "volume NAME"."""
    api = client.api
    left = [f"container {c.name}" for c in containers_of(client, project)]
    left += [f"network {n['Name']}" for n in api.networks(filters=_selector(project))]
    left += [f"volume {v['Name']}" for v in api.volumes(filters=_selector(project)).get("Volumes") or []]
    return left


def _selector(project: str) -> dict[str, list[str]]:
    return {"label": [f"{PROJECT_LABEL}={project}"]}


def _remove_network(client: DockerClient, network: str) -> None:
    detach_foreign(client, network, None)  # a stranger on it (a runner container) is only disconnected
    client.api.remove_network(network)


def _together(calls: Sequence[Callable[[], object]]) -> list[str | None]:
    """Run ``calls`` concurrently; for each, None or why it failed."""
    if not calls:
        return []
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(_call, calls))


def _call(call: Callable[[], object]) -> str | None:
    """None when ``call`` succeeded or its object is gone already; else the engine's explanation."""
    import docker.errors  # noqa: PLC0415 - docker-py is imported only where the engine is called

    try:
        call()
    except docker.errors.NotFound:
        return None  # removed meanwhile: the goal is met
    except docker.errors.APIError as exc:
        return str(exc.explanation or exc)
    return None


def _named(outcomes: Sequence[str | None], names: Sequence[str]) -> list[str]:
    return [f"{name}: {why}" for name, why in zip(names, outcomes, strict=True) if why is not None]
