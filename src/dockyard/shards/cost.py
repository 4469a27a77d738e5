"""What a parallel run cost the host: CPU-seconds per berth and per second of tests.

Read from ``/proc/stat`` (the whole host's busy time: a stack's containers, the engine and
fuse-overlayfs run outside this process tree) around the run. The first stack starts happen
before any test runs, so that window gives the CPU rate of a berth starting; a berth costs
that rate over its fixed time (a shard's wall time beyond its tests: `dockyard run`, the
stack's start and stop, pytest's own start). What the whole run took beyond its berths is the
price of its tests. The figures go into the durations file, for the next run's choice of how
many shards (:mod:`dockyard.shards.policy`). On a host shared with other work they include
some of that work, and a berth's stop is priced at its start's rate: both err towards fewer
shards.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from dockyard.shards.view import ShardView

# In the durations file, beside the node ids (never in angle brackets: those are paths).
FIXED = "<shard fixed s>"  # seconds of a shard's wall time that are not its tests'
BERTH_CPU = "<berth cpu s>"  # host CPU-seconds of one berth over its fixed time
TEST_CPU = "<test cpu per s>"  # host CPU-seconds per second of tests running in one berth
ALONE = "<tests alone>"  # 1: the node ids' seconds are as one shard alone on the host takes them
_KEYS = (FIXED, BERTH_CPU, TEST_CPU)


def host_cpu_seconds() -> float | None:
    """CPU-seconds the host's CPUs have been busy since boot; None where there is no /proc/stat."""
    try:
        with Path("/proc/stat").open() as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    ticks = [int(v) for v in fields[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU-seconds of this process and of the children it has waited for.

    While the shards run, that is the parallel run's own work (collecting the tests, asking
    Compose for the secrets, supervising), not theirs: a shard is waited for when it ends.
    """
    me, waited = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + waited.ru_utime + waited.ru_stime


@dataclass(frozen=True)
class Costs:
    """What an earlier run measured of this host and suite."""

    fixed_seconds: float
    berth_cpu: float
    test_cpu: float

    @classmethod
    def recorded(cls, durations: Mapping[str, float]) -> Costs | None:
        """The costs kept in a durations mapping, or None when a figure is missing."""
        values = [durations.get(key) for key in _KEYS]
        if any(v is None for v in values):
            return None
        return cls(*(float(v or 0.0) for v in values))

    def as_durations(self) -> dict[str, float]:
        """The figures under their durations-file keys."""
        return dict(zip(_KEYS, (self.fixed_seconds, self.berth_cpu, self.test_cpu), strict=True))


def derive(
    *,
    start_cpu: float,
    start_seconds: float,
    starting: int,
    run_cpu: float,
    berths: int,
    test_seconds: float,
    fixed_seconds: float,
) -> Costs | None:
    """Costs from one run's measurements (None without tests or a start window to price them).

    ``start_cpu`` host CPU-seconds over the ``start_seconds`` from the first shard's start to
    the first stack up, while ``starting`` stacks started and no test ran; ``run_cpu`` the whole
    run's, with ``berths`` berths, ``test_seconds`` of tests and ``fixed_seconds`` of each
    shard's wall time that were not its tests'.
    """
    if test_seconds <= 0 or berths < 1 or start_seconds <= 0:
        return None
    rate = start_cpu / start_seconds / max(1, starting)
    berth_cpu = rate * fixed_seconds
    test_cpu = max(0.0, run_cpu - berths * berth_cpu) / test_seconds
    return Costs(round(fixed_seconds, 3), round(berth_cpu, 3), round(test_cpu, 3))


def fixed_alone(costs: Costs, previous: Mapping[str, float], shards: int) -> Costs:
    """``costs`` with a shard's fixed time as one shard alone on the host takes it, where recorded.

    Shards at once stretch each other's stack starts and stops as they stretch the tests (four
    shards of the demo on 2 cores: 7.7 s where one alone takes 5.1 s), and one shard predicted
    from that looks slower than it is: a second shard seemed to pay where it lost. The CPU
    they cost stays as measured. Only a run of one shard, or the first run, records the time.
    """
    if shards <= 1 or FIXED not in previous:
        return costs
    return replace(costs, fixed_seconds=float(previous[FIXED]))


def as_alone(
    seconds: Mapping[str, float], previous: Mapping[str, float], at_once: int
) -> tuple[dict[str, float], bool]:
    """Per-test ``seconds`` on the scale of one shard alone on the host, and whether they are.

    Shards running ``at_once`` share the host's CPUs, so each test takes longer than it would
    alone, and one shard predicted from those times looks slower than it is: more shards would
    seem to pay where they do not. Such a run keeps its relative times (the split needs them) on
    the scale of the ``previous`` seconds of the same tests, where those were measured alone.
    Without them the seconds stay as measured, marked not alone.
    """
    if at_once <= 1:
        return dict(seconds), True
    common = [t for t in seconds if t in previous]
    ran = sum(seconds[t] for t in common)
    if previous.get(ALONE) != 1.0 or not common or ran <= 0:
        return dict(seconds), False
    factor = sum(previous[t] for t in common) / ran
    return {t: v * factor for t, v in seconds.items()}, True


class CostMeter:
    """A :class:`ShardView` that passes every event on and reads the host's CPU at the ones that count."""

    def __init__(
        self,
        view: ShardView,
        cpu: Callable[[], float | None] = host_cpu_seconds,
        clock: Callable[[], float] = time.monotonic,
        own: Callable[[], float] = own_cpu_seconds,
    ) -> None:
        self.view = view
        self._cpu, self._clock, self._own = cpu, clock, own
        self.own_begin: float | None = None  # this process's own CPU-seconds at the first shard's start
        self.own_up: float | None = None  # and at the first stack up
        self.begin: tuple[float | None, float] | None = None  # (cpu, time) at the first shard's start
        self.first_up: tuple[float | None, float] | None = None  # at the first stack up
        self.starting = 0  # shards started by then
        self.end: tuple[float | None, float] | None = None

    def read(self) -> tuple[float | None, float]:
        """The host's busy CPU-seconds (None: unknown) and the time, now."""
        return self._cpu(), self._clock()

    def queued(self, label: str, tests: int | None) -> None:
        """Passed on."""
        self.view.queued(label, tests)

    def started(self, label: str, tests: int | None, log: Path) -> None:
        """Passed on; the first one starts the clock."""
        if self.begin is None:
            self.begin = self.read()
            self.own_begin = self._own()
        if self.first_up is None:
            self.starting += 1
        self.view.started(label, tests, log)

    def counted(self, label: str, tests: int) -> None:
        """Passed on."""
        self.view.counted(label, tests)

    def stack_up(self, label: str, berth: int, project: str, seconds: float) -> None:
        """Passed on; the first one ends the window of stack starts alone."""
        if self.first_up is None:
            self.first_up = self.read()
            self.own_up = self._own()
        self.view.stack_up(label, berth, project, seconds)

    def note(self, label: str, line: str) -> None:
        """Passed on."""
        self.view.note(label, line)

    def ended(self, label: str, exit_code: int, seconds: float) -> None:
        """Passed on; each end moves the end of the run."""
        self.end = self.read()
        self.view.ended(label, exit_code, seconds)

    def costs(self, *, berths: int, test_seconds: float, fixed_seconds: float) -> Costs | None:
        """What the run cost, or None when the host's CPU could not be read or no stack came up."""
        if self.begin is None or self.first_up is None or self.end is None:
            return None
        (cpu0, t0), (cpu_up, t_up), (cpu_end, _) = self.begin, self.first_up, self.end
        if cpu0 is None or cpu_up is None or cpu_end is None:
            return None
        # What this process did meanwhile (the collection and split of the tests run while the
        # first stacks start) is no berth's: it is taken out of the window and of the run.
        own = self.own_up - self.own_begin if self.own_up is not None and self.own_begin is not None else 0.0
        return derive(
            start_cpu=max(0.0, cpu_up - cpu0 - own),
            start_seconds=t_up - t0,
            starting=self.starting,
            run_cpu=max(0.0, cpu_end - cpu0 - own),
            berths=berths,
            test_seconds=test_seconds,
            fixed_seconds=fixed_seconds,
        )
