"""The pytest plugin every shard's pytest loads (``-p dockyard.shards.plugin``): its tests only.

Each shard's pytest gets the user's arguments unchanged and loads this plugin, which keeps only
the shard's tests: passing node ids instead of the arguments would drop paths and options
(``-k``, ``-m``, ...) or run everything twice, and a long list of node ids can overflow the
command line. The collecting pytest that the split starts from loads it too, to write the ids.

It is loaded in every shard and in every collection, so it imports nothing beyond the standard
library: no Docker client, no rich, no YAML. `dockyard parallel` imports it for its names
alone, so not even pytest, which has it loaded wherever the hooks run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

NAME = __name__  # what `-p` names in the commands that load this plugin
SHARD_FILE_ENV = "DOCKYARD_SHARD_FILE"  # the node ids a shard's pytest keeps, one a line
COLLECT_ENV = "DOCKYARD_SHARD_COLLECT"  # where a collecting pytest writes its node ids


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only this shard's tests (listed in the file ``DOCKYARD_SHARD_FILE`` names)."""
    path = os.environ.get(SHARD_FILE_ENV)
    if not path:
        return
    keep = set(Path(path).read_text().splitlines())
    selected = [item for item in items if item.nodeid in keep]
    missing = keep - {item.nodeid for item in selected}
    if missing:
        import pytest  # noqa: PLC0415 - loaded wherever this hook runs; `dockyard parallel` needs the names above only

        raise pytest.UsageError(
            f"{len(missing)} test(s) of this shard were not collected (e.g. {sorted(missing)[0]}): "
            "collection differs between runs; make parametrize ids deterministic"
        )
    deselected = [item for item in items if item.nodeid not in keep]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = selected


def pytest_collection_finish(session: pytest.Session) -> None:
    """Write the collected node ids to the file ``DOCKYARD_SHARD_COLLECT`` names, if any."""
    path = os.environ.get(COLLECT_ENV)
    if path:
        Path(path).write_text("".join(f"{item.nodeid}\n" for item in session.items))
