"""How a key's value is read from TOML, or from the string of its ``DOCKYARD_<KEY>`` variable."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dockyard.portblock import PortBlock

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_LOWEST_PORT = 1024  # below this binding needs privileges
# (service, ((key, value), ...)) pairs, sorted: a mapping would make Settings unhashable.
ServiceTables = tuple[tuple[str, tuple[tuple[str, str | float], ...]], ...]


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


READERS: dict[str, Callable[[Any, bool], Any]] = {
    "str": _text,
    "path": _text,
    "bool": _flag,
    "int": _number(int),
    "float": _number(float),
    "list": _list,
    "range": _range,
    "table": _table,
}
"""The reader of each kind of key, called as ``read(raw, from_env)``; a ValueError it raises
says what is allowed, and becomes a ConfigError naming the key."""
