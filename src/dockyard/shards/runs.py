"""Run directories: one per `dockyard parallel` run for its shards' logs, reports and XML."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from dockyard.shards.plan import STATE_DIR

SHARDS_DIR = f"{STATE_DIR}/shards"
# Run directories kept for their logs; older ones go, unless touched within the hour (a long
# run that ten newer runs overtook is still writing there).
KEEP_RUNS = 10
KEEP_YOUNGER_S = 3600.0


def run_directory(root: Path) -> Path:
    """A new directory for one run's shard files, the oldest beyond the last ten removed.

    Per run, because two runs from one checkout (a developer and a benchmark, say) at once
    would otherwise read each other's reports and XML.
    """
    base = root / SHARDS_DIR
    base.mkdir(parents=True, exist_ok=True)
    runs = sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.name)
    for old in runs[:-KEEP_RUNS]:
        if time.time() - max((f.stat().st_mtime for f in old.iterdir()), default=0.0) > KEEP_YOUNGER_S:
            # Another run may be pruning the same directory right now; what is gone is gone.
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=base))
