"""Host port checks and the stable layout of published ports inside a :class:`PortBlock`."""

from __future__ import annotations

from collections.abc import Iterable

from dockyard.host import listening_ports, port_taken
from dockyard.portblock import PortBlock

__all__ = ["PortBlock", "PublishedPort", "layout", "ports_in_use"]


def ports_in_use(ports: Iterable[int]) -> list[int]:
    """Ports of ``ports`` that some program on this host listens on right now.

    Listening is what counts: a connection lingering in TIME_WAIT after a stack went down
    is no program holding the port (and failing on one skipped berths for a minute after
    every run). Where the OS will not list listeners (macOS without root), binding the port
    as the engine would is the test.
    """
    ports = list(ports)
    listening = listening_ports()
    if listening is not None:
        return [port for port in ports if port in listening]
    return [port for port in ports if port_taken(port)]


PublishedPort = tuple[str, int, str]  # (service, container port, protocol)


def layout(published: Iterable[PublishedPort], block: PortBlock) -> dict[PublishedPort, int]:
    """Host port for every published (service, container port, protocol).

    Offsets follow the sorted order of the published ports, so the same compose files give
    the same offsets every run, in every berth.
    """
    ordered = sorted(set(published))
    if len(ordered) > len(block):
        raise ValueError(f"{len(ordered)} published ports do not fit in a block of {len(block)}")
    return {key: block.start + offset for offset, key in enumerate(ordered)}
