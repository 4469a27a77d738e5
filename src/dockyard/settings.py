"""``[tool.dockyard]`` parsed into one typed, validated object.

Every key is declared once, in ``FIELDS``: its type, default, help text and check. The same
table drives parsing, ``DOCKYARD_<KEY>`` overrides and the generated config reference, so
they cannot drift apart (nox keeps its options the same way, in ``_options.py``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import ConfigError

_PROJECT_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# More berths than this would exhaust Docker's default bridge address pools (31 /16 networks).
_DEFAULT_BERTH_CAP = 16


def _default_lock_dir() -> str:
    # Host-global per user: every checkout of every project draws from the same pool.
    return os.path.join(tempfile.gettempdir(), f"dockyard-{os.getuid()}")


@dataclass(frozen=True)
class Field:
    """One configuration key: how to read it, check it, and explain it."""

    name: str
    kind: str  # "str", "int", "float", "bool", "list", "range", "path"
    default: Any
    help: str
    check: Callable[[Any], str | None] | None = None  # returns the "allowed" text when bad


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


def _endpoints(value: list[str]) -> str | None:
    bad = [v for v in value if not re.match(r"^(unix|tcp|ssh|npipe|fd)://.", v)]
    return (
        f"must be engine endpoints like unix:///var/run/docker.sock or ssh://user@host, not {bad[0]!r}" if bad else None
    )


FIELDS: tuple[Field, ...] = (
    Field("compose_files", "list", ["compose.yaml"], "Compose files of the stack, relative to the project root."),
    Field("profiles", "list", [], "Compose profiles to enable."),
    Field(
        "project_prefix", "str", "dockyard", "Prefix of every compose project name (`<prefix>-<block start>`).", _prefix
    ),
    Field("port_range", "range", "20000-29999", "Host ports the berths' port blocks are cut from, `LOW-HIGH`."),
    Field("block_size", "int", 100, "Ports per berth; at least the number of ports the stack publishes.", _positive),
    Field("max_berths", "int", None, "Berths in the pool (default: as many blocks as fit, at most 16).", _positive),
    Field(
        "lock_dir",
        "path",
        None,
        "Directory of berth locks and lease records (default: $TMPDIR/dockyard-<uid>); private to the user.",
    ),
    Field("acquire_timeout", "float", 120.0, "Seconds to wait for a free berth before failing.", _non_negative),
    Field("health_timeout", "float", 120.0, "Seconds every service has to become healthy.", _positive),
    Field("stop_timeout", "int", 1, "Seconds a container gets to stop on `down` before it is killed.", _non_negative),
    Field(
        "artifacts_dir",
        "path",
        ".dockyard/artifacts",
        "Where failure bundles are written, relative to the project root.",
    ),
    Field(
        "keep_on_failure",
        "bool",
        False,
        "Leave a stack that failed to start running, and (pytest) the stack, database and berth of a session "
        "whose tests failed, for debugging.",
    ),
    Field(
        "reuse",
        "bool",
        True,
        "Plain pytest uses this project's stack kept by `dockyard up` (when one is up) instead of starting one.",
    ),
    Field("skip_missing_docker", "bool", False, "Skip (instead of fail) Docker tests when Docker is unavailable."),
    Field(
        "base_image_arg",
        "str",
        "BASE_IMAGE",
        "Build argument that dockyard may point at a locally bootstrapped Debian base image.",
    ),
    Field(
        "runner",
        "str",
        "auto",
        "Where tests run: `host` (services on 127.0.0.1 and host ports), `container` (attach the runner's "
        "container to the stack's networks, services by container name and port) or `auto` (detect).",
        _runner,
    ),
    Field(
        "engines",
        "list",
        [],
        "Docker engines berths are spread over (`unix://...`, `tcp://...`, `ssh://...`); empty: the current "
        "one (DOCKER_HOST, else the Docker context).",
        _endpoints,
    ),
)
_BY_NAME = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one project root."""

    root: Path
    compose_files: tuple[Path, ...]
    profiles: tuple[str, ...]
    project_prefix: str
    port_range: tuple[int, int]
    block_size: int
    max_berths: int
    lock_dir: Path
    acquire_timeout: float
    health_timeout: float
    stop_timeout: int
    artifacts_dir: Path
    keep_on_failure: bool
    skip_missing_docker: bool
    base_image_arg: str
    runner: str = "auto"
    engines: tuple[str, ...] = ()
    reuse: bool = True
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def port_block(self, index: int) -> range:
        """The host ports of berth ``index``."""
        start = self.port_range[0] + index * self.block_size
        return range(start, start + self.block_size)

    def project_name(self, index: int) -> str:
        """Compose project of berth ``index``: unique on the host because its block is."""
        return f"{self.project_prefix}-{self.port_block(index).start}"


def _coerce(f: Field, raw: Any, source: str) -> Any:  # noqa: PLR0911, PLR0912 - one branch per kind
    """Turn a TOML value or an environment string into the field's type."""
    from_env = source.startswith("DOCKYARD_")

    def bad(allowed: str) -> ConfigError:
        return ConfigError(f.name, raw, allowed, source=source)

    if f.kind in ("str", "path"):
        if not isinstance(raw, str) or not raw:
            raise bad("must be a non-empty string")
        return raw
    if f.kind == "bool":
        if isinstance(raw, bool):
            return raw
        if from_env and isinstance(raw, str) and raw.lower() in _TRUE | _FALSE:
            return raw.lower() in _TRUE
        raise bad("must be true or false")
    if f.kind in ("int", "float"):
        if from_env and isinstance(raw, str):
            try:
                return int(raw) if f.kind == "int" else float(raw)
            except ValueError:
                raise bad(f"must be a{'n integer' if f.kind == 'int' else ' number'}") from None
        if isinstance(raw, bool) or not isinstance(raw, int | float) or (f.kind == "int" and isinstance(raw, float)):
            raise bad(f"must be a{'n integer' if f.kind == 'int' else ' number'}")
        return raw
    if f.kind == "list":
        if from_env and isinstance(raw, str):
            return [part.strip() for part in raw.split(",") if part.strip()]
        if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
            raise bad("must be a list of non-empty strings")
        return raw
    if f.kind == "range":
        return _parse_range(f, raw, source)
    raise AssertionError(f.kind)  # pragma: no cover - FIELDS is closed


def _parse_range(f: Field, raw: Any, source: str) -> tuple[int, int]:
    allowed = "must be `LOW-HIGH` with 1024 <= LOW < HIGH <= 65535"
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", raw) if isinstance(raw, str) else None
    if match is None:
        raise ConfigError(f.name, raw, allowed, source=source)
    low, high = int(match.group(1)), int(match.group(2))
    if not 1024 <= low < high <= 65535:
        raise ConfigError(f.name, raw, allowed, source=source)
    return low, high


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
    for f in FIELDS:
        env_key = f"DOCKYARD_{f.name.upper()}"
        if env_key in env:
            raw, source = env[env_key], env_key
        elif f.name in table:
            raw, source = table[f.name], "pyproject.toml"
        else:
            default = _parse_range(f, f.default, "default") if f.kind == "range" else f.default
            values[f.name], sources[f.name] = default, "default"
            continue
        value = _coerce(f, raw, source)
        if f.check is not None and (problem := f.check(value)) is not None:
            raise ConfigError(f.name, raw, problem, source=source)
        values[f.name], sources[f.name] = value, source

    low, high = values["port_range"]
    block = values["block_size"]
    fits = (high - low + 1) // block
    if fits < 1:
        raise ConfigError("block_size", block, f"must fit in port_range {low}-{high} ({high - low + 1} ports)")
    max_berths = values["max_berths"]
    if max_berths is None:
        max_berths = min(fits, _DEFAULT_BERTH_CAP)
    elif max_berths > fits:
        raise ConfigError(
            "max_berths", max_berths, f"at most {fits} blocks of {block} ports fit in port_range {low}-{high}"
        )

    compose_files = tuple(root_path / p for p in values["compose_files"])
    for path in compose_files:
        if not path.is_file():
            raise ConfigError(
                "compose_files", str(path.relative_to(root_path)), f"file does not exist under {root_path}"
            )

    lock_dir = Path(values["lock_dir"] or _default_lock_dir()).expanduser()
    artifacts = Path(values["artifacts_dir"]).expanduser()
    return Settings(
        root=root_path,
        compose_files=compose_files,
        profiles=tuple(values["profiles"]),
        project_prefix=values["project_prefix"],
        port_range=(low, high),
        block_size=block,
        max_berths=max_berths,
        lock_dir=lock_dir if lock_dir.is_absolute() else root_path / lock_dir,
        acquire_timeout=float(values["acquire_timeout"]),
        health_timeout=float(values["health_timeout"]),
        stop_timeout=int(values["stop_timeout"]),
        artifacts_dir=artifacts if artifacts.is_absolute() else root_path / artifacts,
        keep_on_failure=values["keep_on_failure"],
        skip_missing_docker=values["skip_missing_docker"],
        base_image_arg=values["base_image_arg"],
        runner=values["runner"],
        engines=tuple(values["engines"]),
        reuse=values["reuse"],
        sources=sources,
    )


def reference_markdown() -> str:
    """The config-key reference, generated from ``FIELDS`` so it cannot drift."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f in FIELDS:
        default = "(computed)" if f.default is None else f"`{json.dumps(f.default)}`"
        lines.append(f"| `{f.name}` (`DOCKYARD_{f.name.upper()}`) | {f.kind} | {default} | {f.help} |")
    return "\n".join(lines)
