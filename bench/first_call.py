"""A pytest plugin the bench loads with ``-p bench.first_call``: when a session reaches its first test.

It writes, as JSON to the file named by ``BENCH_FIRST_CALL``, the Unix times at which pytest
imported it (the interpreter and pytest are up), had loaded the installed plugins (entry
points), had loaded the initial conftests, began the session, finished collecting, began the
first test's setup (where the session's stack fixture starts or finds a stack) and began the
first test's call, plus the compose project of ``dockyard_stack`` when the first
test asked for it. Nothing else: the bench compares the times with its own clock.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from typing import Any

import pytest

_TIMES: dict[str, Any] = {"imported": time.time()}


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests() -> Generator[None, None, None]:
    """The installed plugins are loaded (``-p`` ones come before them); then the initial conftests."""
    _TIMES.setdefault("plugins", time.time())
    yield
    _TIMES.setdefault("conftests", time.time())


def pytest_sessionstart(session: pytest.Session) -> None:
    """The session begins (plugins and conftests loaded)."""
    _TIMES.setdefault("sessionstart", time.time())


def pytest_collection_finish(session: pytest.Session) -> None:
    """Collection is done."""
    _TIMES.setdefault("collected", time.time())


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """The first test's fixtures are about to be set up."""
    _TIMES.setdefault("first_setup", time.time())


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """The first test's own code is about to run: write the times once."""
    if "first_call" not in _TIMES:
        _TIMES["first_call"] = time.time()
        stack = getattr(item, "funcargs", {}).get("dockyard_stack")
        _TIMES["project"] = getattr(stack, "project", None)
        path = os.environ.get("BENCH_FIRST_CALL")
        if path:
            with open(path, "w") as fh:
                json.dump(_TIMES, fh)
    yield
