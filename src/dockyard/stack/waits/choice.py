"""Which wait strategy a service gets."""

from __future__ import annotations

from typing import Any

from dockyard.stack.waits.healthcheck import HealthCheck, health_test
from dockyard.stack.waits.protocol import Seen, Target, WaitStrategy


class Running:
    """Ready once the container runs (or exited 0)."""

    name = "running"

    def check(self, target: Target) -> Seen:
        """Whether the engine says so."""
        return Seen(ready=target.state.ready) if target.state.ready else Seen.not_yet(f"is {target.state.state}")


def choose(service: str, info: dict[str, Any]) -> WaitStrategy:
    """The strategy for ``service``, whose container's inspect output is ``info``."""
    del service
    return HealthCheck() if health_test(info) else Running()
