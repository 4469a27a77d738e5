"""Integration tests against the real Docker engine: test projects in tmp dirs, and a leak check.

Every test builds its own project (pyproject.toml + compose.yaml) with its own project prefix
and port range, so tests can run in parallel; after each test, anything Docker still holds
under that prefix is a failure of the test (and is removed, so one failure doesn't cascade).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from .helpers import Projects, ctrl_c_reaches_children, ensure_base_image, leftovers, remove

ctrl_c_reaches_children()


@pytest.fixture(scope="session", autouse=True)
def base_image() -> str:
    """The image every test stack runs, bootstrapped on a fresh engine (once, under a lock)."""
    return ensure_base_image()


@pytest.fixture
def make_project(tmp_path: Path) -> Projects:
    """``make_project(name, port_range, compose_text, **tool_dockyard_keys)`` -> :class:`Project`."""
    return Projects(tmp_path)


@pytest.fixture(autouse=True)
def no_leftovers(make_project: Projects) -> Iterator[None]:
    """Fail a test that leaves anything of its projects in Docker; remove it either way."""
    yield
    left = [res for prefix in make_project.prefixes for res in leftovers(prefix)]
    remove(left)
    shown = [f"  {kind} {rid if kind == 'volume' else rid[:12]} ({project})" for kind, rid, project in left]
    assert not left, "left behind in Docker:\n" + "\n".join(shown)


@pytest.fixture
def orphans_alone() -> Iterator[None]:
    """Serialise tests that leave orphans on purpose or run `dockyard cleanup`.

    `cleanup` removes orphans host-wide (that is its job), so under xdist, or beside a second
    run, one such test would reap the evidence another one is about to look at.
    """
    with FileLock(Path(tempfile.gettempdir()) / f"dockyard-integration-orphans-{os.getuid()}.lock"):
        yield
