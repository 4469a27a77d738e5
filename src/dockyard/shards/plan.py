"""The split: which shard runs which tests, by the durations earlier runs recorded.

Greedy, longest first, each test onto the least-loaded shard; shards that start their stacks
later get less to do. The durations file (``.dockyard/durations.json``, node id -> seconds)
also holds what a run measured of the host, under keys in angle brackets that no node id has.
"""

from __future__ import annotations

import json
import os
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from filelock import FileLock

from dockyard.errors import DockyardError

STATE_DIR = ".dockyard"  # under the project root, beside the artifacts
DURATIONS = f"{STATE_DIR}/durations.json"
JUNIT = f"{STATE_DIR}/junit.xml"
# In the durations file: seconds a stack took to start. Never a node id (those are paths).
STACK_UP = "<stack up>"


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``1 <= K <= N``, or a DockyardError saying what is wrong."""
    remedy = "give `--shard K/N` with 1 <= K <= N, e.g. `--shard 2/4` for the second of four shards"
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise DockyardError(f"--shard {text!r} is not of the form K/N", remedy=remedy)
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= k <= n:
        raise DockyardError(f"--shard {text!r}: K must be between 1 and N (= {n})", remedy=remedy)
    return k, n


def weights(nodeids: Iterable[str], durations: Mapping[str, float]) -> dict[str, float]:
    """The seconds :func:`split` expects of each test (each once, in order).

    A test's recorded duration, else the median of the known ones, else 1.0.
    """
    unique = list(dict.fromkeys(nodeids))
    known = [durations[t] for t in unique if t in durations]
    default = statistics.median(known) if known else 1.0
    return {t: durations.get(t, default) for t in unique}


def split(
    nodeids: Sequence[str], durations: Mapping[str, float], n: int, offsets: Sequence[float] = ()
) -> list[list[str]]:
    """Split ``nodeids`` into ``n`` shards that finish about together.

    Greedy, longest first, each test onto the least-loaded shard. A test without a recorded
    duration counts as the median of the known ones (1.0 when none is known, which makes it a
    split by count). ``offsets`` are seconds shard by shard starts later than the first; such
    a shard gets that much less to do. Deterministic: ties go by node id, then to the lowest
    shard; each shard keeps the collection order.
    """
    if n < 1:
        raise ValueError(f"n must be 1 or more, not {n}")
    weight = weights(nodeids, durations)
    unique = list(weight)
    loads = [float(offsets[i]) if i < len(offsets) else 0.0 for i in range(n)]
    shards: list[list[str]] = [[] for _ in range(n)]
    for test in sorted(unique, key=lambda t: (-weight[t], t)):
        target = min(range(n), key=lambda i: (loads[i], i))
        shards[target].append(test)
        loads[target] += weight[test]
    order = {t: i for i, t in enumerate(unique)}
    return [sorted(shard, key=order.__getitem__) for shard in shards]


def start_offsets(n: int, at_once: int, up: float) -> list[float]:
    """Seconds each of ``n`` shards begins its tests after the first, stacks ``up`` s to start."""
    return [(k // at_once) * up for k in range(n)]


def load_durations(path: Path) -> dict[str, float]:
    """The recorded durations (node id -> seconds); empty when there is no file yet."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise DockyardError(
            f"cannot read the durations file {path}: {exc}", remedy=f"delete {path}; the next run writes it anew"
        ) from None
    if not isinstance(data, dict):
        raise DockyardError(f"{path} is not a JSON object", remedy=f"delete {path}; the next run writes it anew")
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}


def save_durations(path: Path, measured: Mapping[str, float]) -> dict[str, float]:
    """Merge ``measured`` into the durations file (old entries stay); the merged durations."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two runs of one checkout may finish at once: without the lock one's times would be lost.
    with FileLock(path.with_name(f".{path.name}.lock"), thread_local=False):
        merged = {**load_durations(path), **{k: round(v, 3) for k, v in measured.items()}}
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        # Sorted and indented, so the file diffs well when a project commits it for its CI.
        tmp.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
        tmp.replace(path)  # a reader never sees half a file
    return merged
