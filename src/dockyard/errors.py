"""One exception root; every error carries its evidence and says what to do.

Exit codes are a contract (DESIGN.md): scripts and CI templates branch on them.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """Process exit codes of the ``dockyard`` and ``invoke`` front doors."""

    OK = 0
    FAILURE = 1
    DOCKER_UNAVAILABLE = 3
    NO_FREE_BERTH = 4
    STACK_UNHEALTHY = 5
    BAD_CONFIGURATION = 6


class DockyardError(Exception):
    """Root of every error dockyard raises on purpose.

    ``remedy`` is the sentence telling the user what to do next; front doors print the
    message and the remedy, never a traceback.
    """

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, remedy: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        if self.remedy:
            return f"{self.message}\n  -> {self.remedy}"
        return self.message


class ConfigError(DockyardError):
    """A ``[tool.dockyard]`` key (or its ``DOCKYARD_<KEY>`` override) is wrong."""

    exit_code = ExitCode.BAD_CONFIGURATION

    def __init__(self, key: str, value: object, allowed: str, *, source: str = "") -> None:
        where = f" (from {source})" if source else ""
        super().__init__(
            f"bad configuration: {key} = {value!r}{where}: {allowed}",
            remedy=f"fix `{key}` in [tool.dockyard] of pyproject.toml "
            f"or the DOCKYARD_{key.upper()} environment variable",
        )
        self.key = key
        self.value = value


class LockDirError(DockyardError):
    """The lock directory is unusable or not private to the user."""

    exit_code = ExitCode.BAD_CONFIGURATION


class DockerUnavailable(DockyardError):
    """Docker, its daemon, or Compose v2 cannot be used."""

    exit_code = ExitCode.DOCKER_UNAVAILABLE


class BaseImageUnavailable(DockerUnavailable):
    """A base image cannot be pulled, and what would make a stand-in is missing (root, a mirror)."""


class NoFreeBerth(DockyardError, TimeoutError):
    """Every berth is held (or its ports are taken) and the deadline passed.

    Subclasses :class:`TimeoutError` like ``filelock.Timeout`` so callers that already
    handle lock time-outs keep working; ``lock_dir`` names the contested resource.
    """

    exit_code = ExitCode.NO_FREE_BERTH

    def __init__(self, message: str, *, lock_dir: str, holders: Iterable[str]) -> None:
        listing = "\n".join(f"  {line}" for line in holders)
        super().__init__(
            f"{message}\n{listing}" if listing else message,
            remedy="wait for a session to finish, raise max_berths / port_range, "
            "or run `dockyard cleanup` if the holders above are gone",
        )
        self.lock_dir = lock_dir


class StackUnhealthy(DockyardError):
    """A service did not become healthy, or exited, while the stack started."""

    exit_code = ExitCode.STACK_UNHEALTHY

    def __init__(self, message: str, *, services: Iterable[str], bundle: str | None) -> None:
        remedy = f"see the artifact bundle in {bundle}" if bundle else None
        super().__init__(message, remedy=remedy)
        self.services = tuple(services)
        self.bundle = bundle


class ComposeError(DockyardError):
    """A compose command failed; carries the command, exit code and the stderr tail."""

    def __init__(self, action: str, command: Iterable[str], returncode: int, stderr: str) -> None:
        tail = "\n".join(stderr.strip().splitlines()[-10:])
        super().__init__(
            f"`{action}` failed (exit {returncode}): {' '.join(command)}\n{tail}",
            remedy="run `dockyard validate` to check the compose files and the engine",
        )
        self.returncode = returncode
        self.stderr_tail = tail


class BuildError(DockyardError):
    """An image build failed; carries the last lines of the build output."""


class CorruptRecord(ValueError):
    """A lease record that cannot be parsed; carries the path so it can be reported."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"lease record {path} is corrupt ({problem})")
        self.path = path
        self.problem = problem
