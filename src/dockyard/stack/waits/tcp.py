"""Ports served by the container itself: connections to its own address, never docker-proxy's."""

from __future__ import annotations

import socket
from typing import Any

CONNECT_TIMEOUT = 0.2  # seconds: a container on a local bridge answers in well under a millisecond


def container_address(info: dict[str, Any]) -> str | None:
    """The container's address on its first network (None without one)."""
    networks = ((info.get("NetworkSettings") or {}).get("Networks")) or {}
    return next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), None)


def published_tcp(info: dict[str, Any]) -> list[int]:
    """The container ports it publishes over TCP."""
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    return sorted(int(p.split("/")[0]) for p, bound in ports.items() if p.endswith("/tcp") and bound)


def connect(address: str, port: int) -> str | None:
    """Connect once; None when it was accepted, else what went wrong (``"connection refused"``)."""
    try:
        with socket.create_connection((address, port), timeout=CONNECT_TIMEOUT):
            return None
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return "timed out"
    except OSError as exc:
        return exc.strerror or str(exc)


def refused_port(info: dict[str, Any]) -> int | None:
    """The first published TCP port the container refuses connections on (None: all accept, or unreachable)."""
    address = container_address(info)
    if address is None:
        return None
    for port in published_tcp(info):
        if connect(address, port) == "connection refused":
            return port
    return None
