"""A pytest plugin the bench loads with ``-p bench.collected``: the node ids a session collected.

It writes them, one per line in collection order, to the file named by ``BENCH_COLLECTED``
(nothing without it): the suite a CI matrix's merged report must hold, each test exactly once.
The bench's own listing, so that the check does not lean on the collection it checks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    """Collection is done: write the node ids."""
    path = os.environ.get("BENCH_COLLECTED")
    if path:
        Path(path).write_text("".join(f"{item.nodeid}\n" for item in session.items))
