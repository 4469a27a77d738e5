"""Parallel shards against one berth: the demo journeys (tests/e2e), whole process each.

B is what `nox -s e2e` runs, ``dockyard run -- pytest tests/e2e``; A is ``dockyard parallel
--json -- tests/e2e`` with the default shard count, and with ``--shards N``. The host
CPU-seconds of each run say what the host's cores allow at best: N berths cannot finish before
the CPU-seconds they use are spent on its cores, however well they overlap.
"""

from __future__ import annotations

import shlex
import statistics
import sys
from pathlib import Path

from bench import RESULTS, BenchError, say
from bench.cpu import cores
from bench.host import dockyard_cmd, dockyard_env
from bench.procs import Proc, run
from bench.readout import ParallelSummary
from bench.samples import Bench

TIMEOUT = 1200.0
E2E = "tests/e2e"


def _log(proc: Proc, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"$ {shlex.join(proc.cmd)}\n# exit {proc.code}\n{proc.stderr}\n# stdout\n{proc.stdout}")


def one_berth(log: Path) -> Proc:
    """B: the journeys in one berth, as `nox -s e2e` runs them."""
    cmd = dockyard_cmd("run", "--", sys.executable, "-m", "pytest", "-p", "no:cacheprovider", E2E)
    proc = run(cmd, timeout=TIMEOUT, env=dockyard_env())
    _log(proc, log)
    if proc.code != 0:
        raise BenchError(f"`{shlex.join(cmd)}` exited {proc.code} (log: {log}):\n{proc.tail()}")
    return proc


def sharded(shards: int | None, log: Path) -> tuple[Proc, ParallelSummary]:
    """A: `dockyard parallel --json` over ``shards`` berths (None: its default); the run and its summary."""
    cmd = dockyard_cmd("parallel", "--json", *(["--shards", str(shards)] if shards else []), "--", E2E)
    proc = run(cmd, timeout=TIMEOUT, env=dockyard_env())
    _log(proc, log)
    summary = ParallelSummary.parse(proc.json())
    if why := summary.failures():
        raise BenchError(f"`{shlex.join(cmd)}` (log: {log}): " + "; ".join(why))
    return proc, summary


def measure_parallel(bench: Bench, round_: int) -> None:
    """One berth, the default shard count and N shards, in an order rotating each round."""
    logs = RESULTS / "logs"
    runs: dict[str, Proc] = {}

    def one() -> None:
        runs["one"] = one_berth(logs / f"e2e-one-round{round_ + 1}.log")
        bench.add_proc("parallel.one", runs["one"])

    def default() -> None:
        proc, summary = sharded(None, logs / f"e2e-default-round{round_ + 1}.log")
        bench.add_proc("parallel.default", proc)
        bench.detail("parallel.default.shards", len(summary.shard_walls))

    def many() -> None:
        proc, summary = sharded(bench.shards, logs / f"e2e-{bench.shards}-round{round_ + 1}.log")
        runs["n"] = proc
        bench.add_proc("parallel.n", proc)
        bench.add("parallel.balance", max(summary.shard_ends) / statistics.mean(summary.shard_ends))
        bench.add("parallel.balance_walls", max(summary.shard_walls) / statistics.mean(summary.shard_walls))
        bench.detail("parallel.shard_walls", summary.shard_walls)
        bench.detail("parallel.shard_ends", [round(end, 3) for end in summary.shard_ends])

    steps = [("one berth", one), ("default shards", default), (f"{bench.shards} shards", many)]
    shift = round_ % len(steps)
    for name, step in steps[shift:] + steps[:shift]:
        say(f"round {round_ + 1}: {E2E} with {name}")
        bench.guarded(f"parallel: {name}", step)
    if "one" in runs and "n" in runs:
        bound = min(bench.shards, cpu_bound(runs["one"].seconds, runs["n"].cpu, cores()))
        speedup = runs["one"].seconds / runs["n"].seconds
        bench.add("parallel.bound", bound)
        bench.add("parallel.efficiency", speedup / bound)


def cpu_bound(one_wall: float, many_cpu: float, host_cores: int) -> float:
    """The best speed-up the host's cores allow N berths: 1-berth wall / (N-berth CPU-seconds / cores).

    (At most N, too: the caller caps it.)
    """
    return one_wall / (many_cpu / host_cores) if many_cpu > 0 else float("inf")
