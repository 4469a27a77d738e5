"""Reading ``[tool.dockyard]`` and the ``DOCKYARD_<KEY>`` variables into a validated :class:`Settings`."""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dockyard.errors import ConfigError
from dockyard.settings.keys import KEYS, Key, Settings
from dockyard.settings.readers import READERS

# More berths than this would exhaust Docker's default bridge address pools (31 /16 networks).
_DEFAULT_BERTH_CAP = 16
_BY_NAME = {k.name: k for k in KEYS}


def default_lock_dir() -> str:
    """The lock directory when ``lock_dir`` is not set: ``$TMPDIR/dockyard-<uid>``."""
    # Host-global per user: every checkout of every project draws from the same pool.
    return os.path.join(tempfile.gettempdir(), f"dockyard-{os.getuid()}")


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
        value = READERS[k.kind](raw, source.startswith("DOCKYARD_"))
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
        values["lock_dir"] = Path(default_lock_dir())
