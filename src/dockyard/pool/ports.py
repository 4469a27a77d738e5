"""Host port checks and the stable layout of published ports inside a :class:`PortBlock`."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable

from dockyard.portblock import PortBlock

__all__ = ["PortBlock", "PublishedPort", "layout", "ports_in_use"]

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column


def _listening_ports() -> set[int] | None:
    """Every TCP port something listens on (any address, v4 or v6); None without /proc."""
    found: set[int] = set()
    try:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as fh:
                next(fh)  # header
                for line in fh:
                    fields = line.split()
                    if fields[3] == _LISTEN:
                        found.add(int(fields[1].rsplit(":", 1)[1], 16))
    except (OSError, IndexError, ValueError):
        return None
    return found


def ports_in_use(ports: Iterable[int]) -> list[int]:
    """Ports of ``ports`` that some program on this host listens on right now.

    Listening is what counts: a connection lingering in TIME_WAIT after a stack went down
    is no program holding the port (and failing on one skipped berths for a minute after
    every run). Where /proc cannot tell, binding the wildcard address is the test: it
    conflicts with a listener on any address, 127.0.0.1 (docker-proxy) included.
    """
    ports = list(ports)
    listening = _listening_ports()
    if listening is not None:
        return [port for port in ports if port in listening]
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("0.0.0.0", port))  # noqa: S104 - probing, never listening
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                busy.append(port)
    return busy


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
