"""``[tool.dockyard]`` parsed into one typed, validated object.

Every key is declared once, as a field of :class:`Settings` annotated
``Annotated[<type>, Key(default, help, check)]``: the field's name is the key, its type what
the value becomes, and its :class:`Key` holds the default, the help text and the check.
:data:`KEYS`, read from those fields, drives parsing, the ``DOCKYARD_<KEY>`` overrides and the
generated config reference, so they cannot drift apart (nox keeps its options the same way,
in ``_options.py``). Adding a key is adding one field.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from dockyard.errors import ConfigError
from dockyard.portblock import PortBlock

_PROJECT_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# More berths than this would exhaust Docker's default bridge address pools (31 /16 networks).
_DEFAULT_BERTH_CAP = 16
_LOWEST_PORT = 1024  # below this binding needs privileges


def _default_lock_dir() -> str:
    # Host-global per user: every checkout of every project draws from the same pool.
    return os.path.join(tempfile.gettempdir(), f"dockyard-{os.getuid()}")


@dataclass(frozen=True)
class Key:
    """One configuration key: how to read it, check it, and explain it.

    Declared in the annotation of a :class:`Settings` field,
    ``Annotated[<type>, Key(default, help, check)]``; ``name``, ``type`` and ``kind`` come
    from the field.
    """

    default: Any  # as written in pyproject.toml; None: computed from the other keys
    help: str
    check: Callable[[Any], str | None] | None = None  # returns the "allowed" text when bad
    secret: bool = False  # its values are secrets: an error names the key, never them
    name: str = ""
    type: Any = None  # the field's type: what the value becomes
    kind: str = ""  # how it is written: "str", "int", "float", "bool", "list", "range", "path", "table"

    @property
    def env(self) -> str:
        """The environment variable overriding the key."""
        return f"DOCKYARD_{self.name.upper()}"


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def _runner(value: str) -> str | None:
    return None if value in ("auto", "host", "container") else "must be auto, host or container"


def _prefix(value: str) -> str | None:
    if _PROJECT_PREFIX.match(value):
        return None
    return "must be 1-40 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"


# What a wait strategy looks like; dockyard.stack.waits parses it (this only checks the shape).
_WAIT = re.compile(r"^(http://:\d{1,5}(/\S*)?|tcp://:\d{1,5}|log:.+|exit:0)$")
# Where a measured service's sources are: the host directory (relative to the project root, or
# absolute; default the root) and, after the colon, the absolute directory inside its container.
_COVERAGE = re.compile(r"^([^:]+:)?/\S*$")
# (service, ((key, value), ...)) pairs, sorted: a mapping would make Settings unhashable.
ServiceTables = tuple[tuple[str, tuple[tuple[str, str | float], ...]], ...]
SERVICE_KEYS = ("wait", "settle", "coverage")  # what a [tool.dockyard.services.NAME] table may set


def settle_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a settle time (None: a number of seconds above 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return f"settle must be a number of seconds greater than 0, not {value!r}"
    return None


def _services(value: ServiceTables) -> str | None:
    for name, table in value:
        keys = {key for key, _ in table}
        if keys - set(SERVICE_KEYS):
            return (
                'must be tables of `wait = "..."`, `settle = SECONDS` and `coverage = "..."` per service; '
                f"[{name}] has {sorted(keys)!r}"
            )
        cov = dict(table).get("coverage")
        if cov is not None and (not isinstance(cov, str) or not _COVERAGE.match(cov)):
            return f'[{name}] coverage must be "HOST_DIR:/CONTAINER_DIR" or "/CONTAINER_DIR", not {cov!r}'
        wait = dict(table).get("wait")
        if wait is not None and (not isinstance(wait, str) or not _WAIT.match(wait)):
            return (
                f'[{name}] wait must be one of "http://:PORT/PATH", "tcp://:PORT", "log:TEXT" or "exit:0", not {wait!r}'
            )
        if "settle" in dict(table) and (problem := settle_problem(dict(table)["settle"])) is not None:
            return f"[{name}] {problem}"
    return None


def _endpoints(value: list[str]) -> str | None:
    bad = [v for v in value if not re.match(r"^(unix|tcp|ssh|npipe|fd)://.", v)]
    return (
        f"must be engine endpoints like unix:///var/run/docker.sock or ssh://user@host, not {bad[0]!r}" if bad else None
    )


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one project root.

    Every field but ``root`` and ``sources`` is a key of ``[tool.dockyard]``; ``sources``
    says where each key's value came from (``default``, ``pyproject.toml`` or its variable).
    """

    root: Path
    compose_files: Annotated[
        tuple[Path, ...], Key(["compose.yaml"], "Compose files of the stack, relative to the project root.")
    ]
    profiles: Annotated[tuple[str, ...], Key([], "Compose profiles to enable.")]
    project_prefix: Annotated[
        str, Key("dockyard", "Prefix of every compose project name (`<prefix>-<block start>`).", _prefix)
    ]
    port_range: Annotated[PortBlock, Key("20000-29999", "Host ports the berths' port blocks are cut from, `LOW-HIGH`.")]
    block_size: Annotated[
        int, Key(100, "Ports per berth; at least the number of ports the stack publishes.", _positive)
    ]
    max_berths: Annotated[int, Key(None, "Berths in the pool (default: as many blocks as fit, at most 16).", _positive)]
    lock_dir: Annotated[
        Path,
        Key(None, "Directory of berth locks and lease records (default: $TMPDIR/dockyard-<uid>); private to the user."),
    ]
    acquire_timeout: Annotated[float, Key(120.0, "Seconds to wait for a free berth before failing.", _non_negative)]
    health_timeout: Annotated[float, Key(120.0, "Seconds every service has to become healthy.", _positive)]
    settle: Annotated[
        float,
        Key(
            2.0,
            "Seconds a service with no health check, wait strategy or published port must keep running to count "
            "as ready (per service: `settle` in `[tool.dockyard.services.NAME]` or `x-dockyard`).",
            _positive,
        ),
    ]
    stop_timeout: Annotated[
        int, Key(1, "Seconds a container gets to stop on `down` before it is killed.", _non_negative)
    ]
    artifacts_dir: Annotated[
        Path, Key(".dockyard/artifacts", "Where failure bundles are written, relative to the project root.")
    ]
    keep_on_failure: Annotated[
        bool,
        Key(
            False,
            "Leave a stack that failed to start running, and (pytest) the stack, database and berth of a "
            "session whose tests failed, for debugging.",
        ),
    ]
    skip_missing_docker: Annotated[bool, Key(False, "Skip (instead of fail) Docker tests when Docker is unavailable.")]
    base_image_arg: Annotated[
        str, Key("BASE_IMAGE", "Build argument that dockyard may point at a locally bootstrapped Debian base image.")
    ]
    runner: Annotated[
        str,
        Key(
            "auto",
            "Where tests run: `host` (services on 127.0.0.1 and host ports), `container` (attach the runner's "
            "container to the stack's networks, services by container name and port) or `auto` (detect).",
            _runner,
        ),
    ]
    engines: Annotated[
        tuple[str, ...],
        Key(
            [],
            "Docker engines berths are spread over (`unix://...`, `tcp://...`, `ssh://...`); empty: the current "
            "one (DOCKER_HOST, else the Docker context).",
            _endpoints,
        ),
    ]
    reuse: Annotated[
        bool,
        Key(
            True,
            "Let pytest use this project's stack kept by `dockyard up` (warm reuse) instead of starting its own.",
        ),
    ]
    mask: Annotated[
        tuple[str, ...],
        Key(
            [],
            "Values masked wherever dockyard writes, beside the secrets it finds itself (URL passwords, "
            "secret-looking keys and variables, compose `secrets:` files).",
            secret=True,
        ),
    ]
    services: Annotated[
        ServiceTables,
        Key(
            {},
            'Per-service settings, `[tool.dockyard.services.NAME]`: `wait = "http://:8000/health"`, '
            '`"tcp://:5432"`, `"log:TEXT"` or `"exit:0"` for a service without a health check; `settle = SECONDS` '
            'for one that falls back to a settle time; `coverage = "HOST_DIR:/CONTAINER_DIR"`: where its Python '
            "sources are, to measure it with `coverage` on (JSON in the environment variable).",
            _services,
        ),
    ]
    coverage: Annotated[
        bool,
        Key(
            False,
            "`dockyard run` runs the services that name a `coverage` source under coverage.py and combines "
            "their data on the host after teardown (as `--cov` does).",
        ),
    ]
    coverage_dir: Annotated[
        Path,
        Key(
            ".dockyard/coverage",
            "Where the services' combined coverage data and reports are written, relative to the project root.",
        ),
    ]
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def port_block(self, index: int) -> PortBlock:
        """The host ports of berth ``index``."""
        return self.port_range.block(index, self.block_size)

    def service(self, name: str) -> dict[str, str | float]:
        """The ``[tool.dockyard.services.NAME]`` table of service ``name`` ({} when there is none)."""
        return dict(dict(self.services).get(name, ()))

    def project_name(self, index: int) -> str:
        """Compose project of berth ``index``: unique on the host because its block is."""
        return f"{self.project_prefix}-{self.port_block(index).start}"


def _kind(hint: Any) -> str:
    """How a value of the field type ``hint`` is written in TOML."""
    kinds: dict[Any, str] = {
        str: "str",
        int: "int",
        float: "float",
        bool: "bool",
        Path: "path",
        PortBlock: "range",
        tuple[str, ...]: "list",
        tuple[Path, ...]: "list",
        ServiceTables: "table",
    }
    if hint not in kinds:
        raise TypeError(f"a [tool.dockyard] key cannot be a {hint}; it can be one of {', '.join(map(str, kinds))}")
    return kinds[hint]


def _declared() -> tuple[Key, ...]:
    hints = get_type_hints(Settings, include_extras=True)
    keys = []
    for f in fields(Settings):
        hint = hints[f.name]
        declared = [extra for extra in get_args(hint)[1:] if isinstance(extra, Key)]
        if get_origin(hint) is Annotated and declared:
            kind = get_args(hint)[0]
            keys.append(replace(declared[0], name=f.name, type=kind, kind=_kind(kind)))
    return tuple(keys)


KEYS: tuple[Key, ...] = _declared()
"""Every ``[tool.dockyard]`` key, in the order of the reference."""
_BY_NAME = {k.name: k for k in KEYS}


def _text(raw: Any, _from_env: bool) -> str:
    if not isinstance(raw, str) or not raw:
        raise ValueError("must be a non-empty string")
    return raw


def _flag(raw: Any, from_env: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if from_env and isinstance(raw, str) and raw.lower() in _TRUE | _FALSE:
        return raw.lower() in _TRUE
    raise ValueError("must be true or false")


def _number(kind: type[int] | type[float]) -> Callable[[Any, bool], int | float]:
    wanted = "must be an integer" if kind is int else "must be a number"

    def read(raw: Any, from_env: bool) -> int | float:
        if from_env and isinstance(raw, str):
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(wanted) from None
        if isinstance(raw, bool) or not isinstance(raw, int | float) or (kind is int and isinstance(raw, float)):
            raise ValueError(wanted)
        return raw

    return read


def _list(raw: Any, from_env: bool) -> list[str]:
    if from_env and isinstance(raw, str):
        return [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise ValueError("must be a list of non-empty strings")
    return raw


def _range(raw: Any, _from_env: bool) -> PortBlock:
    try:
        block = PortBlock.parse(raw) if isinstance(raw, str) else None
    except ValueError:
        block = None
    if block is None or block.start < _LOWEST_PORT or len(block) < 2:
        raise ValueError(f"must be `LOW-HIGH` with {_LOWEST_PORT} <= LOW < HIGH <= 65535")
    return block


def _table(raw: Any, from_env: bool) -> ServiceTables:
    if from_env and isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ValueError("must be a JSON object") from None
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ValueError("must be a table of tables, one per service")
    return tuple(sorted((str(name), tuple(sorted(table.items()))) for name, table in raw.items()))


# How a value of each kind is read from TOML, or (``from_env``) from its variable's string;
# a ValueError says what is allowed, and becomes a ConfigError naming the key.
_READERS: dict[str, Callable[[Any, bool], Any]] = {
    "str": _text,
    "path": _text,
    "bool": _flag,
    "int": _number(int),
    "float": _number(float),
    "list": _list,
    "range": _range,
    "table": _table,
}


def _typed(k: Key, value: Any, root: Path) -> Any:
    """The coerced ``value`` as the field's type; paths relative to ``root``."""
    if k.type is Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else root / path
    if k.type == tuple[Path, ...]:
        return tuple(root / p for p in value)
    if k.kind == "list":
        return tuple(value)
    if k.type is float:
        return float(value)
    return value


def read_table(root: Path) -> dict[str, Any]:
    """The raw ``[tool.dockyard]`` table of ``root/pyproject.toml`` ({} when absent)."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("pyproject.toml", str(path), f"is not valid TOML: {exc}") from None
    table = data.get("tool", {}).get("dockyard", {})
    if not isinstance(table, dict):
        raise ConfigError("tool.dockyard", table, "must be a table")
    return table


def load_settings(root: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate ``[tool.dockyard]`` of ``root`` (default: the current directory).

    ``DOCKYARD_<KEY>`` variables of ``env`` (default: ``os.environ``, read now, not at import)
    override the file. Raises :class:`ConfigError` naming the key, the value and what is
    allowed; nothing has been started when it does.
    """
    root_path = Path(root if root is not None else os.getcwd()).resolve()
    env = os.environ if env is None else env
    table = read_table(root_path)
    unknown = sorted(set(table) - set(_BY_NAME))
    if unknown:
        raise ConfigError(unknown[0], table[unknown[0]], f"unknown key; known keys: {', '.join(_BY_NAME)}")

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for k in KEYS:
        if k.env in env:
            raw, source = env[k.env], k.env
        elif k.name in table:
            raw, source = table[k.name], "pyproject.toml"
        else:
            raw, source = k.default, "default"
        sources[k.name] = source
        values[k.name] = None if raw is None else _read(k, raw, source, root_path)
    _derive(values, root_path)
    return Settings(root=root_path, sources=sources, **values)


def _read(k: Key, raw: Any, source: str, root: Path) -> Any:
    """``raw`` (from ``source``) read, checked and typed as key ``k``."""
    try:
        value = _READERS[k.kind](raw, source.startswith("DOCKYARD_"))
    except ValueError as exc:
        raise ConfigError(k.name, "(not shown)" if k.secret else raw, str(exc), source=source) from None
    if k.check is not None and (problem := k.check(value)) is not None:
        raise ConfigError(k.name, "(not shown)" if k.secret else raw, problem, source=source)
    return _typed(k, value, root)


def _derive(values: dict[str, Any], root: Path) -> None:
    """Check the keys against each other, and compute the defaults that depend on others."""
    port_range, block = values["port_range"], values["block_size"]
    fits = len(port_range) // block
    if fits < 1:
        raise ConfigError("block_size", block, f"must fit in port_range {port_range} ({len(port_range)} ports)")
    if values["max_berths"] is None:
        values["max_berths"] = min(fits, _DEFAULT_BERTH_CAP)
    elif values["max_berths"] > fits:
        raise ConfigError(
            "max_berths",
            values["max_berths"],
            f"at most {fits} blocks of {block} ports fit in port_range {port_range}",
        )
    for path in values["compose_files"]:
        if not path.is_file():
            raise ConfigError("compose_files", str(path.relative_to(root)), f"file does not exist under {root}")
    if values["lock_dir"] is None:
        values["lock_dir"] = Path(_default_lock_dir())


def reference_markdown() -> str:
    """The config-key reference, generated from :data:`KEYS` so it cannot drift."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for k in KEYS:
        default = "(computed)" if k.default is None else f"`{json.dumps(k.default)}`"
        lines.append(f"| `{k.name}` (`{k.env}`) | {k.kind} | {default} | {k.help} |")
    return "\n".join(lines)
