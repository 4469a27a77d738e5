"""How many shards by default, what a run cost the host, and the plugin's import weight: no Docker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.shards.cost import (
    ALONE,
    BERTH_CPU,
    FIXED,
    TEST_CPU,
    CostMeter,
    Costs,
    as_alone,
    derive,
    fixed_alone,
    host_cpu_seconds,
    own_cpu_seconds,
)
from dockyard.shards.policy import PAYS, Host, before_the_tests, default_shards, predicted_wall
from dockyard.shards.shard import TO_COME
from dockyard.shards.view import PlainShards

GIB = 1024**3
BIG = Host(cores=2, memory=24 * GIB, max_berths=16)
# The demo journeys on a 2-core host with fuse-overlayfs storage: 13 s of tests, a shard's fixed
# time (dockyard run, the stack's start and stop, pytest's own start) 5 s at ~1.7 cores.
DEMO = Costs(fixed_seconds=5.0, berth_cpu=8.5, test_cpu=0.65)


# -- the default shard count -----------------------------------------------------------------------


def test_with_nothing_measured_one_shard_says_why() -> None:
    choice = default_shards(BIG, tests=30, test_seconds=30.0, costs=None)
    assert choice.shards == 1
    assert "no earlier run measured what a berth costs" in choice.why
    assert "--shards N" in choice.why


@pytest.mark.parametrize(
    ("host", "tests", "why"),
    [
        (Host(cores=1, memory=24 * GIB, max_berths=16), 40, "a single CPU"),
        (Host(cores=8, memory=24 * GIB, max_berths=1), 40, "one berth the pool and memory allow"),
        (Host(cores=8, memory=3 * GIB, max_berths=16), 40, "one berth the pool and memory allow"),  # 2 GiB a shard
        (Host(cores=8, memory=24 * GIB, max_berths=16), 1, "one test"),
    ],
)
def test_a_small_host_or_suite_gets_one_shard(host: Host, tests: int, why: str) -> None:
    choice = default_shards(host, tests, 100.0, DEMO)
    assert choice.shards == 1
    assert why in choice.why


def test_on_two_cores_the_demo_journeys_run_in_one_shard() -> None:
    # 2 shards: 2 * 8.5 + 13 * 0.65 = 25.5 CPU-s over 2 cores at 0.8: 15.9 s against 18 s for one.
    choice = default_shards(BIG, tests=30, test_seconds=13.0, costs=DEMO, stack_up=2.0)
    assert choice.shards == 1
    assert choice.why.startswith("1 shard: on 2 cores a berth costs 8.5 CPU-s")
    assert "2 shards would take 15.9s against 18.0s for one (1.13x), less than the 1.2x that pays" in choice.why


def test_a_short_suite_is_not_worth_a_second_berth_even_on_many_cores() -> None:
    # Any count takes a shard's fixed 5 s: with 0.8 s of tests no split gains the 1.2x that pays.
    choice = default_shards(Host(16, 64 * GIB, 16), tests=10, test_seconds=0.8, costs=DEMO, stack_up=2.0)
    assert choice.shards == 1
    assert "less than the 1.2x that pays" in choice.why


def test_a_long_suite_on_a_big_host_gets_the_fewest_shards_near_the_best() -> None:
    host = Host(cores=8, memory=64 * GIB, max_berths=16)
    choice = default_shards(host, tests=400, test_seconds=300.0, costs=DEMO, stack_up=2.0)
    walls = {n: predicted_wall(n, 300.0, DEMO, 8, 2.0) for n in range(1, 17)}
    assert 1 < choice.shards < 16
    assert walls[choice.shards] <= min(walls.values()) * 1.05
    assert walls[1] / walls[choice.shards] >= PAYS
    assert choice.why.startswith(f"{choice.shards} shards: on 8 cores")


def test_more_shards_never_beat_the_cpu_bound() -> None:
    for n in range(1, 9):
        wall = predicted_wall(n, 60.0, DEMO, 2, 2.0)
        assert wall >= (n * DEMO.berth_cpu + 60.0 * DEMO.test_cpu) / 2  # at most every core busy
        assert wall >= DEMO.fixed_seconds + 60.0 / n


def test_the_shard_count_never_exceeds_the_tests_or_the_pool() -> None:
    cheap = Costs(fixed_seconds=1.0, berth_cpu=0.1, test_cpu=0.01)
    assert default_shards(Host(64, 512 * GIB, 16), 5, 500.0, cheap).shards == 5
    assert default_shards(Host(64, 512 * GIB, 4), 50, 500.0, cheap).shards == 4


# -- what a run cost ---------------------------------------------------------------------------------


def test_costs_from_one_run() -> None:
    # Starting one stack alone: 6 CPU-s in 3 s, 2 cores' worth; the shard's fixed time is 5 s.
    costs = derive(
        start_cpu=6.0, start_seconds=3.0, starting=1, run_cpu=20.0, berths=1, test_seconds=13.0, fixed_seconds=5.0
    )
    assert costs == Costs(fixed_seconds=5.0, berth_cpu=10.0, test_cpu=round(10.0 / 13.0, 3))
    # Two stacks starting at once share the rate.
    two = derive(
        start_cpu=6.0, start_seconds=3.0, starting=2, run_cpu=20.0, berths=2, test_seconds=13.0, fixed_seconds=5.0
    )
    assert two is not None
    assert two.berth_cpu == 5.0
    assert (
        derive(start_cpu=1, start_seconds=1, starting=1, run_cpu=1, berths=1, test_seconds=0, fixed_seconds=1) is None
    )


def test_costs_round_trip_through_the_durations_file() -> None:
    assert Costs.recorded({}) is None
    assert Costs.recorded({FIXED: 5.0, BERTH_CPU: 8.0}) is None  # a figure missing
    assert Costs.recorded(DEMO.as_durations()) == DEMO
    assert set(DEMO.as_durations()) == {FIXED, BERTH_CPU, TEST_CPU}
    assert all(key.startswith("<") for key in DEMO.as_durations())  # never a node id


def test_the_meter_reads_the_cpu_at_the_first_start_the_first_stack_up_and_the_last_end(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CI", "1")
    cpu = iter([100.0, 106.0, 112.0, 130.0])
    clock = iter([0.0, 3.0, 10.0, 20.0])
    meter = CostMeter(PlainShards(), cpu=lambda: next(cpu), clock=lambda: next(clock), own=lambda: 0.0)
    meter.queued("1/2", 3)
    meter.started("1/2", 3, tmp_path / "shard-1.log")  # 100 CPU-s at 0 s
    meter.stack_up("1/2", 0, "demo-20000", 3.0)  # 106 at 3 s: one stack started alone
    meter.started("2/2", 3, tmp_path / "shard-2.log")
    meter.stack_up("2/2", 1, "demo-20100", 3.0)
    meter.ended("1/2", 0, 9.0)  # 112 at 10 s
    meter.ended("2/2", 0, 19.0)  # 130 at 20 s: the end of the run
    costs = meter.costs(berths=2, test_seconds=20.0, fixed_seconds=5.0)
    assert costs == Costs(fixed_seconds=5.0, berth_cpu=10.0, test_cpu=0.5)  # (30 - 2 * 10) / 20


def test_what_the_run_itself_did_while_the_first_stack_started_is_no_berth_s(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The tests are collected while the first stacks start: that CPU is the parallel run's own."""
    monkeypatch.setenv("CI", "1")
    cpu = iter([100.0, 108.0, 130.0])
    clock = iter([0.0, 4.0, 20.0])
    own = iter([1.0, 3.0])  # the collecting pytest: 2 CPU-s in the window
    meter = CostMeter(PlainShards(), cpu=lambda: next(cpu), clock=lambda: next(clock), own=lambda: next(own))
    meter.started("1/1", TO_COME, tmp_path / "shard-1.log")  # 100 CPU-s at 0 s
    meter.stack_up("1/1", 0, "demo-20000", 4.0)  # 108 at 4 s, of which 2 the collection's
    meter.ended("1/1", 0, 19.0)  # 130 at 20 s
    costs = meter.costs(berths=1, test_seconds=10.0, fixed_seconds=5.0)
    # (8 - 2) CPU-s over 4 s: 1.5 a second, 7.5 over the fixed 5 s; the tests (30 - 2 - 7.5) / 10
    assert costs == Costs(fixed_seconds=5.0, berth_cpu=7.5, test_cpu=2.05)


def test_the_meter_prices_nothing_when_no_stack_came_up(tmp_path: Path) -> None:
    meter = CostMeter(PlainShards(), cpu=lambda: 1.0, clock=lambda: 1.0)
    meter.started("1/1", 3, tmp_path / "shard-1.log")
    meter.ended("1/1", 1, 2.0)
    assert meter.costs(berths=1, test_seconds=10.0, fixed_seconds=5.0) is None
    unknown = CostMeter(PlainShards(), cpu=lambda: None)
    unknown.started("1/1", 3, tmp_path / "shard-1.log")
    unknown.stack_up("1/1", 0, "demo-20000", 1.0)
    unknown.ended("1/1", 0, 2.0)
    assert unknown.costs(berths=1, test_seconds=10.0, fixed_seconds=5.0) is None


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads Linux's /proc/stat")
def test_the_host_cpu_counter_runs_forward() -> None:
    first = host_cpu_seconds()
    sum(i * i for i in range(300_000))  # some CPU of our own
    second = host_cpu_seconds()
    assert first is not None
    assert second is not None
    assert second >= first > 0


# -- the plugin every shard loads ----------------------------------------------------------------------


def test_the_per_shard_plugin_imports_no_docker_requests_rich_or_yaml() -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import dockyard.shards.plugin"],
        capture_output=True,
        text=True,
        check=True,
    )
    modules = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert "dockyard.shards.plugin" in modules
    heavy = {m for m in modules if m.split(".")[0] in ("docker", "requests", "rich", "yaml", "python_on_whales")}
    assert heavy == set()


def test_one_shard_is_clear_before_collecting_when_every_recorded_test_cannot_pay() -> None:
    recorded = {f"t::{i}": 0.4 for i in range(30)}  # 12 s of tests recorded in all
    early = before_the_tests(BIG, DEMO, recorded, stack_up=2.0)
    assert early is not None
    assert early.shards == 1
    assert early.why.endswith("less than the 1.2x that pays (every recorded test)")
    # A long suite on a big host might pay: only the collected tests can tell.
    long = {f"t::{i}": 10.0 for i in range(40)}
    assert before_the_tests(Host(8, 64 * GIB, 16), DEMO, long, stack_up=2.0) is None
    assert before_the_tests(Host(8, 64 * GIB, 16), DEMO) is None


# -- test times as one shard alone takes them ----------------------------------------------------


def test_one_shard_alone_keeps_its_seconds_and_marks_them_alone() -> None:
    assert as_alone({"a": 2.0, "b": 1.0}, {}, at_once=1) == ({"a": 2.0, "b": 1.0}, True)


def test_shards_at_once_keep_their_proportions_on_the_alone_scale() -> None:
    previous = {"a": 1.0, "b": 1.0, ALONE: 1.0}
    scaled, alone = as_alone({"a": 3.0, "b": 1.0, "c": 2.0}, previous, at_once=4)
    assert alone
    assert scaled == pytest.approx({"a": 1.5, "b": 0.5, "c": 1.0})  # a and b took 4 s where 2 s alone


@pytest.mark.parametrize(
    "previous",
    [
        {},  # nothing recorded
        {"a": 1.0, ALONE: 0.0},  # recorded, but by shards at once too
        {"z": 1.0, ALONE: 1.0},  # alone, but none of these tests
    ],
)
def test_shards_at_once_without_an_alone_scale_are_marked_not_alone(previous: dict[str, float]) -> None:
    assert as_alone({"a": 3.0}, previous, at_once=2) == ({"a": 3.0}, False)


def test_times_not_measured_alone_mean_one_shard_before_collecting() -> None:
    choice = before_the_tests(Host(cores=16, memory=64 * GIB, max_berths=16), DEMO, {"t": 600.0}, alone=False)
    assert choice is not None
    assert choice.shards == 1
    assert "sharing the CPUs" in choice.why
    assert "--shards N" in choice.why


def test_contended_times_would_have_bought_shards_that_alone_times_do_not() -> None:
    # The demo on 2 cores: 12 s of tests alone at 1.8 CPUs. Four shards at once stretched the
    # same tests to 30 s; taken as they were, they made a second shard look worth it.
    costs = Costs(fixed_seconds=7.4, berth_cpu=5.0, test_cpu=1.8 * 12 / 30)
    assert default_shards(BIG, tests=30, test_seconds=30.0, costs=costs).shards > 1
    alone = Costs(fixed_seconds=7.4, berth_cpu=5.0, test_cpu=1.8)
    assert default_shards(BIG, tests=30, test_seconds=12.0, costs=alone).shards == 1


def test_a_shards_fixed_time_is_kept_as_one_alone_took_it() -> None:
    contended = Costs(fixed_seconds=7.7, berth_cpu=10.4, test_cpu=0.23)
    alone = {FIXED: 5.1}
    assert fixed_alone(contended, alone, shards=4) == Costs(fixed_seconds=5.1, berth_cpu=10.4, test_cpu=0.23)
    assert fixed_alone(contended, alone, shards=1) == contended  # one shard measures it alone
    assert fixed_alone(contended, {}, shards=4) == contended  # the first run: the only figure there is


def test_a_contended_fixed_time_would_have_bought_a_second_shard_that_lost() -> None:
    # Measured on the 2-core host: one shard of the demo journeys 15.4 s (10.3 s of tests),
    # two shards 16.0 s. Priced with the fixed time four shards at once had, two looked 1.24x faster.
    contended = Costs(fixed_seconds=7.7, berth_cpu=10.4, test_cpu=0.23)
    assert default_shards(BIG, tests=30, test_seconds=10.3, costs=contended, stack_up=3.0).shards == 2
    alone = fixed_alone(contended, {FIXED: 5.1}, shards=4)
    choice = default_shards(BIG, tests=30, test_seconds=10.3, costs=alone, stack_up=3.0)
    assert choice.shards == 1
    assert "15.4s for one" in choice.why


def test_the_run_s_own_cpu_counts_the_children_it_waited_for() -> None:
    before = own_cpu_seconds()
    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(2_000_000))"], check=True)
    assert own_cpu_seconds() - before > 0.05  # the child's CPU, once it was waited for
