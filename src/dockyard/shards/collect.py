"""Which tests: the node ids ``pytest ARGS`` would run, from one `--collect-only` run."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.shards import plugin


def env_without_shard() -> dict[str, str]:
    """This process's environment without an outer shard's selection (run from inside a shard)."""
    return {k: v for k, v in os.environ.items() if k not in (plugin.SHARD_FILE_ENV, plugin.COLLECT_ENV)}


def collect(pytest_args: Sequence[str], cwd: Path | None = None) -> list[str]:
    """The node ids ``pytest ARGS`` would run, in order (a `--collect-only` run of this Python)."""
    with tempfile.TemporaryDirectory(prefix="dockyard-collect-") as tmp:
        listing = Path(tmp) / "nodeids"
        # The plugin writes the ids to a file: pytest's own listing changes with -v/-q in addopts.
        cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        cmd += ["-p", plugin.NAME, *pytest_args]
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            cwd=cwd,
            env={**env_without_shard(), plugin.COLLECT_ENV: str(listing)},
        )
        if out.returncode == 5:  # pytest's "no tests collected"
            return []
        if out.returncode != 0 or not listing.exists():
            tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
            raise DockyardError(
                f"collecting the tests failed (exit {out.returncode}): {' '.join(cmd)}\n{tail}",
                remedy="run the same pytest command with --collect-only to see the error",
            )
        return list(dict.fromkeys(listing.read_text().splitlines()))
