"""``tcp://:PORT``: ready when the container itself accepts connections on the port.

Never through the published host port: docker-proxy accepts there before anything listens
in the container. The connection goes to the container's own address; where that cannot be
reached from here (a remote engine), the container's listening sockets are read instead.
"""

from __future__ import annotations

import socket
from typing import Any

from dockyard.stack.waits.protocol import Seen, Target

# Seconds a connect may take: a container on a local bridge answers in well under a millisecond,
# and a SYN that got no answer is sent again only after 1 s, so a fresh connect soon is the
# quicker way to see the port open.
CONNECT_TIMEOUT = 0.05
# Seconds between connects to a port the container refuses: a refusal costs ~0.1 ms, and the
# first accept is what a start waits for.
REFUSED_AGAIN = 0.02
LISTEN = "0A"  # the state column of /proc/net/tcp for a listening socket


# Networks on which this process has reached a container at its own address (accepted or refused).
# There, a connect that times out means the container does not serve the port yet, not that its
# addresses cannot be reached from here: a starting container's ports time out for a while
# (~0.5 s for the demo's services here) before they refuse or accept.
_reached: set[str] = set()


def container_address(info: dict[str, Any]) -> str | None:
    """The container's address on its first network (None without one)."""
    found = _first_network(info)
    return found[1] if found else None


def _first_network(info: dict[str, Any]) -> tuple[str, str] | None:
    """``(network id, address)`` of the container's first network with an address."""
    networks = ((info.get("NetworkSettings") or {}).get("Networks")) or {}
    addressed = ((n.get("NetworkID") or name, n["IPAddress"]) for name, n in networks.items() if n.get("IPAddress"))
    return next(addressed, None)


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


def closed_port(info: dict[str, Any]) -> tuple[int, str] | None:
    """The first published TCP port the container does not accept connections on yet, and why.

    None: every one accepts, or the container's network cannot be reached from here (a remote
    engine), where only the service's own check can tell.
    """
    found = _first_network(info)
    if found is None:
        return None
    network, address = found
    for port in published_tcp(info):
        problem = connect(address, port)
        if _not_yet(network, problem):
            return port, str(problem)
    return None


def _not_yet(network: str, problem: str | None) -> bool:
    """Whether ``problem``, seen connecting to a container on ``network``, means it does not listen yet."""
    if problem is None or problem == "connection refused":
        _reached.add(network)
    return problem is not None and (problem == "connection refused" or network in _reached)


def listening_ports(target: Target) -> set[int] | None:
    """The TCP ports the container listens on, from its own ``/proc/net/tcp*`` (None: cannot be read)."""
    from docker.errors import APIError  # noqa: PLC0415 - the caller's engine client has imported docker-py

    api = target.api
    try:
        exec_id = api.exec_create(
            target.state.container, ["cat", "/proc/net/tcp", "/proc/net/tcp6"], stdout=True, stderr=False
        )["Id"]
        out = api.exec_start(exec_id)
        if api.exec_inspect(exec_id).get("ExitCode") not in (0, 1):  # 1: no IPv6 in the container
            return None
    except APIError:
        return None
    text = out.decode("ascii", "replace") if isinstance(out, bytes) else str(out)
    ports = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == LISTEN and ":" in fields[1]:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def served(target: Target, port: int) -> str | None:
    """None when the container itself serves ``port``, else what was seen instead."""
    found = _first_network(target.info)
    if found is None:
        problem: str | None = "the container has no address"
    else:
        network, address = found
        problem = connect(address, port)
        if problem is None or _not_yet(network, problem):
            return problem
    # Not reachable from here: ask the container what it listens on.
    listening = listening_ports(target)
    if listening is None:
        where = f" at {found[1]}" if found else ""
        return f"{problem}{where}, and the container's sockets cannot be read (no `cat` in the image?)"
    return None if port in listening else "not listening"


class Tcp:
    """``tcp://:PORT``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.name = f"tcp://:{port}"

    def check(self, target: Target) -> Seen:
        """Connect once."""
        state = target.state
        if state.state == "exited":
            return Seen(
                ready=False, failed=True, detail=f"exited with code {state.exit_code} before serving {self.port}"
            )
        if state.state != "running":
            return Seen.not_yet(f"container is {state.state}")
        problem = served(target, self.port)
        if problem is None:
            return Seen(ready=True)
        return Seen.not_yet(f"port {self.port}: {problem}", REFUSED_AGAIN if problem == "connection refused" else None)
