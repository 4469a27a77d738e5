"""Fixtures of the unit tests: a throw-away project root with a pyproject and a compose file.

No Docker here: these build the inputs dockyard reads (files, settings), nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from dockyard.settings import Settings, load_settings

COMPOSE_YAML = """\
services:
  app:
    image: busybox
    ports:
      - "8000:8000"
"""


def toml_value(value: object) -> str:
    """``value`` as a TOML literal (enough for the scalars and lists of ``[tool.dockyard]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string of printable ASCII is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _write_project(root: Path, table: Mapping[str, object], compose: str = COMPOSE_YAML) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = ["[project]", 'name = "sample"', "", "[tool.dockyard]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
    (root / "pyproject.toml").write_text("\n".join(lines) + "\n")
    (root / "compose.yaml").write_text(compose)
    return root


@pytest.fixture
def write_project() -> Callable[..., Path]:
    """A project writer: ``write_project(root, table, compose=...)`` returns ``root``.

    It writes ``root/pyproject.toml`` with ``[tool.dockyard]`` = ``table``, and ``root/compose.yaml``.
    """
    return _write_project


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings of a fresh project in ``tmp_path``; keyword arguments become ``[tool.dockyard]`` keys.

    The lock directory defaults to one inside ``tmp_path`` so no test touches the real pool.
    """

    def make(**table: object) -> Settings:
        table.setdefault("lock_dir", str(tmp_path / "locks"))
        return load_settings(_write_project(tmp_path / "project", table), env={})

    return make
