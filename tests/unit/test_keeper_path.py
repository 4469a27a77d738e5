"""`dockyard down` finds the berths `dockyard up` kept by the keeper's path in their lease records."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dockyard.sessions import keeper_client


def test_the_recorded_keeper_path_is_the_keeper_modules_file() -> None:
    # `python -m dockyard.sessions.keeper` records that file as argv[0]; a stale name here made
    # every `dockyard down` answer "no stack of this project is up".
    spec = importlib.util.find_spec(keeper_client._KEEPER_MODULE)
    assert spec is not None
    assert spec.origin is not None
    assert Path(keeper_client._KEEPER_PATH) == Path(spec.origin)
