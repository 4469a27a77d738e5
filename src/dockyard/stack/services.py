"""What each service's container is doing: :class:`ServiceState`, read from the engine's listing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docker import APIClient

SERVICE_LABEL = "com.docker.compose.service"
PROJECT_LABEL = "com.docker.compose.project"
ONEOFF_LABEL = "com.docker.compose.oneoff"  # `compose run` containers: not the service's own


@dataclass(frozen=True)
class ServiceState:
    """What one service's container is doing right now."""

    service: str
    container: str
    state: str  # running, exited, restarting, created, ...
    health: str  # healthy, unhealthy, starting, or "" without a health check
    exit_code: int | None

    @property
    def ready(self) -> bool:
        """Running and healthy (or running without a health check), or a one-shot that succeeded.

        The engine's view only: when a start may go on is the wait strategy's call (readiness).
        """
        return (self.state == "running" and self.health in ("healthy", "")) or (
            self.state == "exited" and self.exit_code == 0
        )

    @property
    def failed(self) -> bool:
        """Unhealthy, or gone: exited with an error, or crash-looping."""
        return (
            self.health == "unhealthy"
            or self.state in ("restarting", "dead")
            or (self.state == "exited" and self.exit_code != 0)
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ServiceState:
        """The state of one row of the engine's container listing (``GET /containers/json``)."""
        status = row.get("Status", "")
        health = next((h for h in ("unhealthy", "healthy") if f"({h})" in status), "")
        if "(health: starting)" in status:
            health = "starting"
        exit_code = None
        if row.get("State") == "exited" and "Exited (" in status:
            exit_code = int(status.split("Exited (", 1)[1].split(")", 1)[0])
        return cls(
            service=(row.get("Labels") or {}).get(SERVICE_LABEL, "?"),
            container=row["Names"][0].lstrip("/"),
            state=row.get("State", "?"),
            health=health,
            exit_code=exit_code,
        )


def project_rows(api: APIClient, project: str, *, service: str | None = None) -> list[dict[str, Any]]:
    """The engine's listing of the project's own containers (``compose run`` ones left out)."""
    labels = [f"{PROJECT_LABEL}={project}", *([f"{SERVICE_LABEL}={service}"] if service else [])]
    rows: list[dict[str, Any]] = api.containers(all=True, filters={"label": labels})
    return [r for r in rows if (r.get("Labels") or {}).get(ONEOFF_LABEL) != "True"]


def engine_states(api: APIClient, project: str) -> list[ServiceState]:
    """What Docker says of every container of the project (one engine call)."""
    return [ServiceState.from_row(r) for r in project_rows(api, project)]
