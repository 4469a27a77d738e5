"""The keeper hands `dockyard up` its berth, or learns that `up` is gone; real pipes, no Docker."""

from __future__ import annotations

import json
import os
from typing import Any, cast

from dockyard.sessions.keeper import hand_over


class Described:
    def describe(self) -> dict[str, Any]:
        return {"index": 2, "project": "demo-20200"}


def test_the_berth_reaches_up_and_the_pipe_is_closed() -> None:
    read, write = os.pipe()
    out = os.fdopen(write, "w")
    assert hand_over(cast(Any, Described()), out) is True
    assert out.closed
    with os.fdopen(read) as up:
        assert json.loads(up.read()) == {"berth": {"index": 2, "project": "demo-20200"}}


def test_an_up_that_is_gone_is_told_apart() -> None:
    """Ctrl-C ended `dockyard up` while the stack started: the keeper must take it down itself."""
    read, write = os.pipe()
    os.close(read)
    out = os.fdopen(write, "w")
    assert hand_over(cast(Any, Described()), out) is False
    assert out.closed
