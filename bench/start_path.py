"""dockyard's own start path against a bare interpreter: what dockyard adds before compose starts.

A: a fresh ``python`` that imports dockyard, loads the settings, takes and releases a berth,
writes the override file and shakes hands with the engine (``handshake``: the engine's ``/_ping``
and the Compose version, what ``Stack.up`` checks before anything else); B:
``python -c pass``. Context: the whole CLI doing the same, ``dockyard run --no-up -- true``.
"""

from __future__ import annotations

import json
import sys

from bench.host import dockyard_cmd, dockyard_env
from bench.procs import run
from bench.samples import Bench

_START_PATH = """\
import json, time
t0 = time.perf_counter()
import dockyard
t1 = time.perf_counter()
settings = dockyard.load_settings()
t2 = time.perf_counter()
with dockyard.acquire_berth(settings, with_ports=False) as berth:
    t3 = time.perf_counter()
    dockyard.Stack(settings, berth).write_override().unlink()
    t4 = time.perf_counter()
    from dockyard.engine.endpoints import handshake
    handshake(berth.engine)
    t5 = time.perf_counter()
t6 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "settings": t2 - t1, "lease": t3 - t2, "override": t4 - t3,
                  "engine": t5 - t4, "release": t6 - t5}))
"""


def measure_start_path(bench: Bench, round_: int) -> None:
    """Pairs of A and B, the order alternating, then the whole CLI."""
    reps = 2 if bench.quick else 4
    pair = [("start.python", "pass"), ("start.dockyard", _START_PATH)]
    for rep in range(reps):
        for key, code in pair if (round_ + rep) % 2 else pair[::-1]:
            proc = run([sys.executable, "-c", code], timeout=60, env=dockyard_env()).check()
            bench.add(key, proc.seconds * 1000)
            if key == "start.dockyard":
                parts = json.loads(proc.stdout.strip().splitlines()[-1])
                bench.detail("start.dockyard.parts_ms", {k: round(v * 1000, 1) for k, v in parts.items()})
    for _ in range(reps):
        proc = run(dockyard_cmd("run", "--no-up", "--", "true"), timeout=60, env=dockyard_env()).check()
        bench.add("start.cli", proc.seconds * 1000)
