"""Host port checks and the stable layout of published ports inside a block."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable


def ports_in_use(ports: Iterable[int]) -> list[int]:
    """Ports of ``ports`` that some program on this host is bound to right now.

    Binding the wildcard address conflicts with a listener on any address, 127.0.0.1
    (docker-proxy) included. SO_REUSEADDR keeps sockets lingering in TIME_WAIT from
    counting as taken: they are not listening, and Docker binds over them the same way.
    """
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


def layout(published: Iterable[PublishedPort], block: range) -> dict[PublishedPort, int]:
    """Host port for every published (service, container port, protocol).

    Offsets follow the sorted order of the published ports, so the same compose files give
    the same offsets every run, in every berth.
    """
    ordered = sorted(set(published))
    if len(ordered) > len(block):
        raise ValueError(f"{len(ordered)} published ports do not fit in a block of {len(block)}")
    return {key: block[offset] for offset, key in enumerate(ordered)}
