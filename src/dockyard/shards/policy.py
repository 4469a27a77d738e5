"""How many shards: as many as this host runs faster than fewer, and one where more cannot pay.

A shard costs a berth: its stack's start and stop, a `dockyard run` and a pytest, all on the
host's CPUs (with fuse-overlayfs storage, even a container's file reads are CPU). So N shards
cannot finish before ``(N * berth + tests) / cores`` CPU-seconds allow, however the tests are
split; nor before a shard's fixed time (`dockyard run`, the stack's start and stop, pytest's
start) plus its share of the tests. The default is the
count whose predicted wall time is the least, if it beats one shard by :data:`PAYS`; the
figures come from what earlier runs measured (:mod:`dockyard.shards.cost`). With nothing
measured yet the default is one shard, and that run measures them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from dockyard.errors import DockyardError
from dockyard.shards.cost import Costs
from dockyard.shards.plan import parse_shard, start_offsets

_GIB = 1024**3
MEMORY_PER_SHARD = 2 * _GIB  # a stack of a few services plus its pytest, with headroom
# The share of the CPU bound a CPU-bound parallel run achieves: 4 berths of the demo on 2 cores
# took 16.4 s where their 26.9 CPU-seconds allowed 13.4 s (0.82).
EFFICIENCY = 0.8
# More shards must be predicted this much faster than one: the model is coarse, and on a shared
# host the CPUs it counts on may be busy with other work.
PAYS = 1.2
_CLOSE = 1.05  # among counts predicted within 5% of the best, the fewest


def cores() -> int:
    """The CPUs this process may use (a container's or taskset's limit), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def memory() -> int | None:
    """Bytes of physical memory, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # not every platform names these
        return None


def starts_at_once(cpus: int | None = None) -> int:
    """How many shards may start their stacks at the same time: one per two cores.

    Starting a stack (databases initialising, interpreters importing) is the heaviest part of
    a shard. Measured on a 2-core host: the demo stack alone is up in 10-12 s, three at once
    took 33-63 s each and one run in three tripped a 2 s health-check timeout. Tests still run
    in all shards at once; only the starts queue.
    """
    return max(1, (cores() if cpus is None else cpus) // 2)


@dataclass(frozen=True)
class Host:
    """What bounds the shard count: CPUs, memory and the berth pool."""

    cores: int
    memory: int | None
    max_berths: int

    @classmethod
    def this(cls, max_berths: int) -> Host:
        """This host, with a pool of ``max_berths``."""
        return cls(cores(), memory(), max_berths)

    def most(self) -> int:
        """The most shards the pool and memory (2 GiB a shard) allow, at least one."""
        count = self.max_berths
        if self.memory is not None:
            count = min(count, self.memory // MEMORY_PER_SHARD)
        return max(1, count)


@dataclass(frozen=True)
class Choice:
    """A shard count and the one line that says why."""

    shards: int
    why: str


def predicted_wall(n: int, test_seconds: float, costs: Costs, cpus: int, stack_up: float = 0.0) -> float:
    """Seconds ``n`` shards take at least: the slower of their time bound and their CPU bound.

    The time bound: a shard's fixed time plus an even share of the tests and of the queued
    stack starts (:func:`start_offsets`, a stack taking ``stack_up`` seconds to start). The
    CPU bound: the CPU-seconds of every berth and every test over the ``cpus``, at the
    :data:`EFFICIENCY` such runs achieve.
    """
    queued = sum(start_offsets(n, starts_at_once(cpus), stack_up))
    time_bound = costs.fixed_seconds + (test_seconds + queued) / n
    cpu_bound = (n * costs.berth_cpu + test_seconds * costs.test_cpu) / (cpus * EFFICIENCY)
    return max(time_bound, cpu_bound)


def before_the_tests(
    host: Host,
    costs: Costs | None,
    recorded: Mapping[str, float] | None = None,
    stack_up: float = 0.0,
    *,
    alone: bool = True,
) -> Choice | None:
    """One shard when it is clear before the tests are collected, else None.

    Clear when the host decides it, when nothing is measured yet, when the ``recorded`` seconds
    were not measured ``alone`` (shards sharing the CPUs stretch them, and one shard predicted
    from them looks slower than it is), or when even every test in ``recorded`` (node id ->
    seconds: the most a run can hold, and more tests only make more shards pay) would not pay
    for a second shard.
    """
    if host.most() <= 1:
        return Choice(1, "1 shard: there is one berth the pool and memory allow")
    if host.cores < 2:
        return Choice(1, "1 shard: a single CPU runs one berth at a time")
    if costs is None:
        return Choice(
            1,
            "1 shard: no earlier run measured what a berth costs this host; this one does (or give --shards N)",
        )
    if not alone:
        return Choice(
            1,
            "1 shard: the recorded test times were measured with shards sharing the CPUs; "
            "this run of one shard measures them alone (or give --shards N)",
        )
    if recorded:
        bound = _by_cost(host, len(recorded), sum(recorded.values()), costs, stack_up)
        if bound.shards == 1:
            return Choice(1, f"{bound.why} (every recorded test)")
    return None


def default_shards(host: Host, tests: int, test_seconds: float, costs: Costs | None, stack_up: float = 0.0) -> Choice:
    """The shard count for ``tests`` tests expected to take ``test_seconds`` in one berth.

    ``costs`` are what an earlier run measured (None: nothing yet), ``stack_up`` the seconds
    a stack took to start.
    """
    early = before_the_tests(host, costs)
    if early is not None or costs is None:
        return early or Choice(1, "1 shard")
    return _by_cost(host, tests, test_seconds, costs, stack_up)


def _by_cost(host: Host, tests: int, test_seconds: float, costs: Costs, stack_up: float) -> Choice:
    """The fewest shards predicted near the least wall time, if that pays; else one."""
    most = min(host.most(), tests)
    if most <= 1:
        return Choice(1, "1 shard: there is one test")
    walls = {n: predicted_wall(n, test_seconds, costs, host.cores, stack_up) for n in range(1, most + 1)}
    best = min(walls[k] for k in walls if k > 1)
    n = min(k for k in walls if k > 1 and walls[k] <= best * _CLOSE)  # the fewest near the best
    gain = walls[1] / walls[n]
    figures = (
        f"on {host.cores} cores a berth costs {costs.berth_cpu:.1f} CPU-s and "
        f"the {test_seconds:.0f}s of tests {test_seconds * costs.test_cpu:.1f} CPU-s; "
        f"{n} shards would take {walls[n]:.1f}s against {walls[1]:.1f}s for one ({gain:.2f}x)"
    )
    if gain < PAYS:
        return Choice(1, f"1 shard: {figures}, less than the {PAYS}x that pays")
    return Choice(n, f"{n} shards: {figures}")


def choose_shards(shards: int = 0, shard: str = "") -> tuple[int, int | None]:
    """The shard count and the one shard to run (None: all) from ``--shards`` and ``--shard``.

    A count of 0 is the default, chosen by :func:`default_shards` once the tests are collected.
    """
    if shards < 0:
        raise DockyardError(f"--shards {shards}: must be 1 or more", remedy="give `--shards N` with N >= 1")
    if not shard:
        return shards, None
    k, n = parse_shard(shard)
    if shards and shards != n:
        raise DockyardError(
            f"--shards {shards} and --shard {shard} disagree on the number of shards",
            remedy="give only `--shard K/N` (N is the number of shards)",
        )
    return n, k
