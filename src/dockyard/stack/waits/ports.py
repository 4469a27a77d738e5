"""A service without a health check that publishes ports: ready when the container serves every one."""

from __future__ import annotations

from dockyard.stack.waits.protocol import Seen, Target
from dockyard.stack.waits.tcp import Tcp


class PortsServed:
    """Every published TCP port accepted by the container itself (see :mod:`.tcp`)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = [Tcp(port) for port in ports]
        self.name = "published port(s) " + ", ".join(str(p.port) for p in self.ports) + " served by the container"

    def check(self, target: Target) -> Seen:
        """Each port in turn; the first one not served says why."""
        for port in self.ports:
            seen = port.check(target)
            if not seen.ready:
                return seen
        return Seen(ready=True)
