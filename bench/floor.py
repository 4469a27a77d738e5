"""The floor under `dockyard up`: the stack's own start, timed inside one process.

``python -m bench.floor`` takes a berth, runs :meth:`dockyard.Stack.up` (images already built,
so no build step) and takes the stack down again, printing one JSON line: the seconds ``up``
took and, moment by moment, what each service did meanwhile. No CLI, no keeper process, no
interpreter start: what is left is Compose creating the containers, the engine starting them
level by level and the services becoming ready, which is what any tool that honours
``depends_on`` waits for. Set against bare compose's ``up --wait`` it is the best ratio
`dockyard up` could reach on this host for these files.
"""

from __future__ import annotations

import json
import sys
import time

from bench import ROOT, BenchError
from bench.procs import run
from bench.samples import Bench

TIMEOUT = 300.0


def main() -> int:
    """Up and down once in a berth of its own; the JSON line on stdout."""
    from dockyard.pool import leasing  # noqa: PLC0415 - only in the child process
    from dockyard.sessions.api import docker_reaper  # noqa: PLC0415
    from dockyard.settings import load_settings  # noqa: PLC0415
    from dockyard.stack.stack import Stack  # noqa: PLC0415
    from dockyard.ui.progress import Lines, as_reporter  # noqa: PLC0415

    moments: list[tuple[float, str]] = []
    began = time.monotonic()
    progress = as_reporter(Lines(lambda line: moments.append((round(time.monotonic() - began, 3), line))))
    settings = load_settings(ROOT)
    berth = leasing.acquire(settings, reaper=docker_reaper)
    try:
        stack = Stack(settings, berth, progress=progress)
        began = time.monotonic()
        stack.up(build=False)
        seconds = time.monotonic() - began
        stack.down()
    finally:
        berth.release()
    print(json.dumps({"project": berth.project, "up": seconds, "moments": moments}))
    return 0


def measure_floor(bench: Bench, cfg: str, env: dict[str, str]) -> None:
    """One in-process up and down of the files ``env`` names, recorded as ``floor.<cfg>``."""
    proc = run([sys.executable, "-m", "bench.floor"], timeout=TIMEOUT, env=env).check()
    try:
        doc = json.loads(proc.stdout.strip().splitlines()[-1])
        seconds = float(doc["up"])
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"`python -m bench.floor` printed no result ({exc}):\n{proc.tail()}") from None
    bench.add(f"floor.{cfg}", seconds)
    bench.detail(f"floor.{cfg}.moments", doc.get("moments"))


if __name__ == "__main__":
    sys.exit(main())
