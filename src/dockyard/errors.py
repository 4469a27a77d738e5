"""One exception root; every error carries its evidence and says what to do.

Every error dockyard raises on purpose is a :class:`DockyardError` (and the standard
exception it is a kind of, where one fits). Errors cross processes: the ``dockyard up``
keeper sends its error to the front door as JSON (:meth:`DockyardError.to_json`), and a
process pool (``multiprocessing``, ``concurrent.futures``) pickles them; both keep the
error's class, message, remedy, exit code, notes and its own attributes.

Exit codes are a contract (DESIGN.md): scripts and CI templates branch on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from enum import IntEnum
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints


class ExitCode(IntEnum):
    """Process exit codes of the ``dockyard`` and ``invoke`` front doors.

    None of them is one of pytest's (1 tests failed, 2 interrupted, 3 internal error, 4 usage
    error, 5 no tests collected): under ``dockyard run -- pytest`` the command's own code
    passes through unchanged, so a CI script tells "stack unhealthy" from "no tests
    collected". They follow ``sysexits.h`` where it has a word for the failure; 79, past its
    range, is the one it lacks. A command line dockyard cannot parse (an unknown task or
    option) exits 2, as with most command-line programs.
    """

    OK = 0
    FAILURE = 70  # EX_SOFTWARE: a dockyard step failed (a compose command, a build, a removal)
    DOCKER_UNAVAILABLE = 69  # EX_UNAVAILABLE: Docker, its daemon or Compose v2 cannot be used
    NO_FREE_BERTH = 75  # EX_TEMPFAIL: every berth is held; try again later
    STACK_UNHEALTHY = 79  # a service did not become healthy, or exited, while the stack started
    BAD_CONFIGURATION = 78  # EX_CONFIG: a [tool.dockyard] key, a compose file or the lock directory


# What every error has; everything else in an error's ``__dict__`` is its own evidence.
_COMMON = frozenset({"message", "remedy", "exit_code", "__notes__"})


class DockyardError(Exception):
    """Root of every error dockyard raises on purpose.

    ``remedy`` is the sentence telling the user what to do next; front doors print the
    message and the remedy, never a traceback.

    A subclass declares the attributes it carries as class annotations: they are what
    :meth:`from_json` turns back into their types (a :class:`~pathlib.Path`, a tuple).
    Pickling and :meth:`to_json` need nothing else from a subclass, whatever its
    ``__init__`` takes.
    """

    exit_code: ExitCode = ExitCode.FAILURE
    message: str
    remedy: str | None

    def __init__(self, message: str, *, remedy: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        if self.remedy:
            return f"{self.message}\n  -> {self.remedy}"
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # The default (``cls(*self.args)``) calls ``__init__`` with the message alone, which
        # fails for every subclass taking its evidence as arguments: restore the state instead.
        return (_restore, (type(self), self.args, dict(self.__dict__)))

    def to_json(self) -> dict[str, Any]:
        """This error as JSON-able data, for :meth:`from_json` in another process."""
        return {
            "type": _name(type(self)),
            "message": self.message,
            "remedy": self.remedy,
            "exit_code": int(self.exit_code),
            "notes": list(getattr(self, "__notes__", ())),
            "attributes": {k: _plain(v) for k, v in vars(self).items() if k not in _COMMON},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DockyardError:
        """The error :meth:`to_json` described, as its own class.

        A class this process does not know (a keeper of another version) arrives as a plain
        :class:`DockyardError` with the message, remedy and exit code it was sent with.
        """
        kind = {_name(k): k for k in _kinds()}.get(str(data.get("type")), DockyardError)
        hints = get_type_hints(kind)
        state: dict[str, Any] = {
            name: _typed(hints.get(name), value) for name, value in dict(data.get("attributes") or {}).items()
        }
        state["message"], state["remedy"] = str(data["message"]), data.get("remedy")
        exit_code = ExitCode(data.get("exit_code", kind.exit_code))
        if exit_code is not kind.exit_code:
            state["exit_code"] = exit_code
        if data.get("notes"):
            state["__notes__"] = [str(note) for note in data["notes"]]
        return _restore(kind, (state["message"],), state)


def _restore(kind: type[DockyardError], args: tuple[Any, ...], state: Mapping[str, Any]) -> DockyardError:
    """An instance of ``kind`` with ``args`` and ``state``, without calling its ``__init__``."""
    error = kind.__new__(kind, *args)
    error.args = args  # OSError's __new__ leaves them to __init__ in a subclass with its own
    error.__dict__.update(state)
    return error


def _kinds(root: type[DockyardError] = DockyardError) -> Iterator[type[DockyardError]]:
    """``root`` and every subclass of it defined so far."""
    yield root
    for sub in root.__subclasses__():
        yield from _kinds(sub)


def _name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _plain(value: Any) -> Any:
    """``value`` as JSON can carry it: paths as strings, tuples as lists, anything else unknown as text."""
    if value is None or isinstance(value, str | int | float):  # bool and IntEnum are ints
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _typed(hint: Any, value: Any) -> Any:
    """``value`` read back from JSON as the type its annotation ``hint`` names."""
    if get_origin(hint) in (Union, UnionType):
        options = [arg for arg in get_args(hint) if arg is not type(None)]
        hint = options[0] if len(options) == 1 else None
    if value is None or hint is None:
        return value
    if hint is Path:
        return Path(value)
    if get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)
    return value


class ConfigError(DockyardError, ValueError):
    """A ``[tool.dockyard]`` key (or its ``DOCKYARD_<KEY>`` override) is wrong."""

    exit_code = ExitCode.BAD_CONFIGURATION
    key: str
    value: object
    allowed: str
    source: str

    def __init__(self, key: str, value: object, allowed: str, *, source: str = "") -> None:
        where = f" (from {source})" if source else ""
        super().__init__(
            f"bad configuration: {key} = {value!r}{where}: {allowed}",
            remedy=f"fix `{key}` in [tool.dockyard] of pyproject.toml "
            f"or the DOCKYARD_{key.upper()} environment variable",
        )
        self.key = key
        self.value = value
        self.allowed = allowed
        self.source = source


class LockDirError(DockyardError):
    """The lock directory is unusable or not private to the user."""

    exit_code = ExitCode.BAD_CONFIGURATION


class DockerUnavailable(DockyardError):
    """Docker, its daemon, or Compose v2 cannot be used."""

    exit_code = ExitCode.DOCKER_UNAVAILABLE


class TeardownIncomplete(DockyardError):
    """A teardown ended with some of the stack still on the engine (the message names it)."""


class BaseImageUnavailable(DockerUnavailable):
    """A base image cannot be pulled, and what would make a stand-in is missing (root, a mirror)."""


class NoFreeBerth(DockyardError, TimeoutError):
    """Every berth is held (or its ports are taken) and the deadline passed.

    Subclasses :class:`TimeoutError` like ``filelock.Timeout`` so callers that already
    handle lock time-outs keep working; ``lock_dir`` names the contested resource.
    """

    exit_code = ExitCode.NO_FREE_BERTH
    lock_dir: str

    def __init__(self, message: str, *, lock_dir: str, holders: Iterable[str]) -> None:
        listing = "\n".join(f"  {line}" for line in holders)
        super().__init__(
            f"{message}\n{listing}" if listing else message,
            remedy="wait for a session to finish, raise max_berths / port_range, "
            "or run `dockyard cleanup` if the holders above are gone",
        )
        self.lock_dir = lock_dir


# Engine messages whose cause is known, and what fixes it. All of them are Podman's: its Docker
# API refuses a few things Docker Engine does without asking.
ENGINE_FAULTS = (
    (
        "container-init binary not found",
        "the engine (Podman) has no init binary for a service's `init: true`: install catatonit on the engine's"
        " host (Debian/Ubuntu: `apt-get install catatonit`), or drop `init: true`",
    ),
    (
        "error setting rlimit",
        "the engine gives containers a ulimit above the hard limit it runs under (Podman's default nofile/nproc"
        " of 1048576 where the host allows less): set `default_ulimits` in containers.conf to at most"
        " `ulimit -Hn` / `ulimit -Hu` of the Podman service (or `ulimits:` on the service), then restart Podman",
    ),
)


def engine_remedy(text: str) -> str | None:
    """The fix for a known engine fault that ``text`` (an engine's error) shows, if any."""
    return next((remedy for needle, remedy in ENGINE_FAULTS if needle in text), None)


class StackUnhealthy(DockyardError):
    """A service did not become healthy, or exited, while the stack started."""

    exit_code = ExitCode.STACK_UNHEALTHY
    services: tuple[str, ...]
    bundle: str | None

    def __init__(self, message: str, *, services: Iterable[str], bundle: str | None) -> None:
        remedies = [engine_remedy(message), f"see the artifact bundle in {bundle}" if bundle else None]
        super().__init__(message, remedy="; ".join(r for r in remedies if r) or None)
        self.services = tuple(services)
        self.bundle = bundle


class ComposeError(DockyardError):
    """A compose command failed; carries the command, exit code and the stderr tail."""

    returncode: int
    stderr_tail: str

    def __init__(self, action: str, command: Iterable[str], returncode: int, stderr: str) -> None:
        tail = "\n".join(stderr.strip().splitlines()[-10:])
        super().__init__(
            f"`{action}` failed (exit {returncode}): {' '.join(command)}\n{tail}",
            remedy=engine_remedy(tail) or "run `dockyard validate` to check the compose files and the engine",
        )
        self.returncode = returncode
        self.stderr_tail = tail


class BuildError(DockyardError):
    """An image build failed; the message carries the last lines of the build output."""


class CorruptRecord(DockyardError, ValueError):
    """A lease record that cannot be parsed; carries the path so it can be reported."""

    path: Path
    problem: str

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"lease record {path} is corrupt ({problem})")
        self.path = path
        self.problem = problem
