"""Where the test runner is: on the host, or in a container of the engine the stack runs on.

A runner in a container (a CI job with the host's Docker socket mounted) cannot reach the
stack's ports on the host's 127.0.0.1: that loopback is the container's own. When its
container is found on the engine, dockyard attaches it to the stack's networks and hands out
service addresses (container name and container port) instead. When it is in a container the
engine does not know (true Docker-in-Docker: the engine runs elsewhere), host ports remain
the only way, and that is said once.

The ``runner`` setting overrides detection: ``host`` never attaches, ``container`` must find
the container (or fails saying why), ``auto`` decides from what it finds.
"""

from __future__ import annotations

import functools
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.engine import socket_api
from dockyard.engine.endpoints import Engine, current_engine, plain_socket, sdk, unreachable
from dockyard.errors import DockyardError

Inspect = Callable[[str], dict[str, Any] | None]
"""The engine's inspect data of a container reference (id, prefix, name), or None when it names none."""

MODES = ("auto", "host", "container")
# Docker bind-mounts /etc/hostname, /etc/hosts and /etc/resolv.conf from the container's own
# directory, so its id shows in the mount table (cgroup v1 and v2 alike). Only those mount
# points count: a process on the host itself can see other containers' directories mounted
# (a shareable IPC namespace's /var/lib/docker/containers/<id>/mounts/shm), and taking one of
# them for "our" container would attach a stranger to the stack's networks.
_MOUNT_ID = re.compile(r"/(?:docker/)?containers/([0-9a-f]{64})/")
_OWN_MOUNTS = frozenset({"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"})
# cgroup v1 paths name the container (`/docker/<id>`, `/system.slice/docker-<id>.scope`); v2's `0::/` does not.
_CGROUP_ID = re.compile(r"(?:docker[-/]|/libpod-)([0-9a-f]{64})")
_CGROUP_HINT = re.compile(r"docker|kubepods|containerd|libpod|lxc")


@dataclass(frozen=True)
class Hints:
    """What this process can tell about itself without the engine."""

    in_container: bool
    ids: tuple[str, ...]  # container ids seen in the mount table or cgroups, most likely first
    hostname: str


def hints(root: Path = Path("/")) -> Hints:
    """Read the container hints under ``root`` (``/``; a fake tree in unit tests)."""

    def read(rel: str) -> str:
        try:
            return (root / rel).read_text(errors="replace")
        except OSError:
            return ""

    mountinfo, cgroup = read("proc/self/mountinfo"), read("proc/self/cgroup")
    # mountinfo: "ID PARENT MAJ:MIN ROOT MOUNT-POINT ...": ROOT names the source, the 5th field where it is.
    own = [f[3] for f in (line.split() for line in mountinfo.splitlines()) if len(f) > 4 and f[4] in _OWN_MOUNTS]
    ids = list(dict.fromkeys([m for root in own for m in _MOUNT_ID.findall(root)] + _CGROUP_ID.findall(cgroup)))
    marker = (root / ".dockerenv").exists() or (root / "run/.containerenv").exists()
    hostname = read("etc/hostname").strip() or socket.gethostname()
    return Hints(in_container=bool(marker or ids or _CGROUP_HINT.search(cgroup)), ids=tuple(ids), hostname=hostname)


@dataclass(frozen=True)
class Runner:
    """Where the runner is, as far as addressing the stack goes."""

    container: str | None  # the runner's container id on the engine: attach it, use service addresses
    note: str  # why, for the user
    worth_saying: bool = False  # in a container: say once which way was taken

    @property
    def attached(self) -> bool:
        """Whether services are reached through the stack's networks (not host ports)."""
        return self.container is not None


def find_container(inspect: Inspect, found: Hints) -> dict[str, Any] | None:
    """The engine's inspect data of the container described by ``found``, or None.

    Ids from the mount table or cgroups name candidates; without them, the hostname (Docker's
    default is the short id) does. Either way the container's own hostname must be this
    process's: a candidate that merely shares an id or name is not us.
    """
    candidates = [*found.ids] if found.ids else [found.hostname]
    for candidate in candidates:
        info = inspect(candidate)
        if info is not None and (info.get("Config") or {}).get("Hostname") == found.hostname:
            return info
    return None


def sdk_inspect(api: Any) -> Inspect:
    """:data:`Inspect` through docker-py's low-level ``api``."""
    import docker.errors  # noqa: PLC0415 - docker-py is imported only where the engine is called

    def inspect(ref: str) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = api.inspect_container(ref)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError:
            return None  # e.g. an ambiguous prefix: not a positive identification
        return info

    return inspect


def socket_inspect(engine: Engine, path: str) -> Inspect:
    """:data:`Inspect` over ``engine``'s plain unix socket ``path``, without docker-py."""

    def inspect(ref: str) -> dict[str, Any] | None:
        try:
            return socket_api.inspect_container(path, ref)
        except OSError as exc:
            raise unreachable(engine, f"{path}: {exc.strerror or exc}") from None

    return inspect


def locate(
    inspector: Callable[[], Inspect], mode: str, found: Hints | None = None, engine: Engine | None = None
) -> Runner:
    """Decide how this process reaches the stack's services under ``mode`` (auto|host|container).

    ``inspector`` (of ``engine``, default: the current one) is called only when the engine must
    be asked (in a container, mode not host).
    """
    if mode == "host":
        return Runner(None, "runner = host: services are reached on 127.0.0.1 and host ports")
    found = found or hints()
    if not found.in_container:
        if mode == "container":
            raise DockyardError(
                "runner = container, but this process does not run in a container",
                remedy="set DOCKYARD_RUNNER=auto (or host)",
            )
        return Runner(None, "not in a container")
    info = find_container(inspector(), found)
    if info is None:
        note = (
            f"running in a container ({found.hostname}) that the engine at "
            f"{engine or current_engine()} does not know (Docker-in-Docker?): using host ports on 127.0.0.1"
        )
        if mode == "container":
            raise DockyardError(
                note.replace(": using host ports on 127.0.0.1", ""),
                remedy="mount the engine's socket into this container (-v /var/run/docker.sock:/var/run/docker.sock), "
                "or set DOCKYARD_RUNNER=host",
            )
        return Runner(None, note, worth_saying=True)
    name = str(info.get("Name", "")).lstrip("/") or info["Id"][:12]
    network_mode = str((info.get("HostConfig") or {}).get("NetworkMode") or "")
    if network_mode == "host" or network_mode.startswith("container:"):
        # It shares another network namespace: it cannot join networks, and host ports work (host mode).
        return Runner(None, f"running in container {name} (network mode {network_mode}): using host ports", True)
    return Runner(info["Id"], f"running in container {name}: attaching it to the stack's networks", True)


@functools.cache
def runner(mode: str, engine: Engine | None = None) -> Runner:
    """:func:`locate` for this process on ``engine`` (the stack's; default: the current one), asked once."""
    path = plain_socket(engine or current_engine())
    if path is not None:
        return locate(lambda: socket_inspect(engine or current_engine(), path), mode, engine=engine)
    return locate(lambda: sdk_inspect(sdk(engine).api), mode, engine=engine)


_SAID: set[str] = set()


def say_once(place: Runner, progress: Callable[[str], None]) -> None:
    """Tell the user once per process which way services are reached, when it is not the plain host way."""
    if place.worth_saying and place.note not in _SAID:
        _SAID.add(place.note)
        progress(place.note)
