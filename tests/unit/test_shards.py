"""Parallel shards without Docker: the split, the shard count, `--shard K/N`, JUnit, durations."""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from dockyard import DockyardError, Settings
from dockyard.shards.junit import Counts, junit_counts, junit_durations, junit_key, merge_junit, write_xml
from dockyard.shards.parallel import run_shards
from dockyard.shards.plan import load_durations, parse_shard, save_durations, split, start_offsets, weights
from dockyard.shards.policy import choose_shards, starts_at_once
from dockyard.shards.runs import run_directory
from dockyard.shards.shard import ShardRun, isolation_problems
from dockyard.shards.summary import Summary
from dockyard.ui.console import table_rows

# One slow journey, a few medium ones, many quick ones: the shape of a real e2e suite.
SKEWED = {
    "tests/test_slow.py::test_two_berths": 30.0,
    **{f"tests/test_mid.py::test_mid[{i}]": 5.0 for i in range(6)},
    **{f"tests/test_quick.py::test_quick_{i:02d}": 1.0 for i in range(20)},
}


def totals(shards: Sequence[Sequence[str]], durations: Mapping[str, float]) -> list[float]:
    """Seconds each shard takes."""
    return [sum(durations[t] for t in shard) for shard in shards]


def imbalance(shards: Sequence[Sequence[str]], durations: Mapping[str, float]) -> float:
    """Longest shard / mean shard: 1.0 is a perfect split; the run takes as long as the longest."""
    seconds = totals(shards, durations)
    return max(seconds) / statistics.mean(seconds)


# -- split ----------------------------------------------------------------------------------------


def test_split_by_durations_balances_a_skewed_suite_better_than_by_count() -> None:
    ids = list(SKEWED)
    by_durations = split(ids, SKEWED, 3)
    by_count = split(ids, {}, 3)
    assert totals(by_durations, SKEWED) == [30.0, 25.0, 25.0]
    assert imbalance(by_durations, SKEWED) < 1.13
    assert imbalance(by_count, SKEWED) > 1.3
    assert imbalance(by_durations, SKEWED) < imbalance(by_count, SKEWED)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 40])
def test_split_covers_every_test_exactly_once(n: int) -> None:
    shards = split(list(SKEWED), SKEWED, n)
    assert len(shards) == n
    flat = [t for shard in shards for t in shard]
    assert sorted(flat) == sorted(SKEWED)


def test_split_is_deterministic_whatever_the_input_order() -> None:
    ids = list(SKEWED)
    first = split(ids, SKEWED, 3)
    shuffled = ids[:]
    random.Random(7).shuffle(shuffled)
    again = split(shuffled, SKEWED, 3)
    assert [set(s) for s in again] == [set(s) for s in first]
    assert split(ids, SKEWED, 3) == first


def test_each_shard_keeps_the_collection_order() -> None:
    ids = list(SKEWED)
    for shard in split(ids, SKEWED, 3):
        assert shard == sorted(shard, key=ids.index)


def test_without_durations_the_split_is_by_count() -> None:
    ids = [f"tests/test_a.py::test_{i}" for i in range(10)]
    shards = split(ids, {}, 3)
    assert sorted(len(s) for s in shards) == [3, 3, 4]


def test_unknown_tests_count_as_the_median_known_duration() -> None:
    known = {"t::a": 10.0, "t::b": 9.0, "t::c": 1.0}  # median 9: the new test "t::d" weighs 9
    assert split(["t::a", "t::b", "t::c", "t::d"], known, 2) == [["t::a", "t::c"], ["t::b", "t::d"]]
    # Had it counted 1 s (the default when nothing is known), it would join the 10 s test.
    assert split(["t::a", "t::b", "t::c", "t::d"], {**known, "t::d": 1.0}, 2) == [["t::a", "t::d"], ["t::b", "t::c"]]


def test_weights_fill_in_the_median_or_one_second() -> None:
    assert weights(["t::a", "t::b", "t::c", "t::d"], {"t::a": 1, "t::b": 3, "t::c": 10, "t::x": 99}) == {
        "t::a": 1,
        "t::b": 3,
        "t::c": 10,
        "t::d": 3,  # the median of the tests being split, not of the whole file
    }
    assert weights(["t::a", "t::a"], {}) == {"t::a": 1.0}


def test_shards_that_start_later_get_less_to_do() -> None:
    ids = [f"t::{i:02d}" for i in range(30)]
    offsets = start_offsets(3, 1, 10.0)  # stacks start one at a time, 10 s each
    assert offsets == [0.0, 10.0, 20.0]
    shards = split(ids, dict.fromkeys(ids, 2.0), 3, offsets)
    seconds = totals(shards, dict.fromkeys(ids, 2.0))
    assert seconds == [30.0, 20.0, 10.0]
    assert [s + o for s, o in zip(seconds, offsets, strict=True)] == [30.0, 30.0, 30.0]  # they end together
    assert start_offsets(4, 2, 10.0) == [0.0, 0.0, 10.0, 10.0]


def test_duplicate_ids_are_split_once_and_n_must_be_positive() -> None:
    assert split(["t::a", "t::a", "t::b"], {}, 2) == [["t::a"], ["t::b"]]
    with pytest.raises(ValueError, match="n must be 1 or more"):
        split(["t::a"], {}, 0)


# -- how many, which one ----------------------------------------------------------------------------


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (3, 1), (4, 2), (16, 8)])
def test_stacks_start_one_per_two_cores(cores: int, expected: int) -> None:
    assert starts_at_once(cores) == expected


@pytest.mark.parametrize(("text", "expected"), [("1/1", (1, 1)), ("2/3", (2, 3)), (" 4 / 4 ", (4, 4))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("4/3", "K must be between 1 and N"),
        ("0/3", "K must be between 1 and N"),
        ("1/0", "K must be between 1 and N"),
        ("garbage", "is not of the form K/N"),
        ("2", "is not of the form K/N"),
        ("-1/3", "is not of the form K/N"),
        ("", "is not of the form K/N"),
    ],
)
def test_parse_shard_rejects_bad_values_clearly(text: str, why: str) -> None:
    with pytest.raises(DockyardError, match=why) as info:
        parse_shard(text)
    assert info.value.remedy is not None
    assert "--shard K/N" in info.value.remedy


def test_choose_shards() -> None:
    assert choose_shards(0, "") == (0, None)  # the default, chosen once the tests are collected
    assert choose_shards(5, "") == (5, None)  # an explicit count is the user's call
    assert choose_shards(0, "2/4") == (4, 2)
    assert choose_shards(4, "2/4") == (4, 2)
    with pytest.raises(DockyardError, match="disagree"):
        choose_shards(3, "2/4")
    with pytest.raises(DockyardError, match="must be 1 or more"):
        choose_shards(-1, "")


# -- JUnit and durations ----------------------------------------------------------------------------

SHARD_1 = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5" time="12.5">
<testcase classname="tests.e2e.test_smoke" name="test_health" time="0.250"/>
<testcase classname="tests.e2e.test_smoke.TestLogin" name="test_login[alice-ok]" time="1.500"/>
<testcase classname="tests.e2e.test_smoke" name="test_broken" time="2.000">
  <failure message="boom">x</failure></testcase>
<testcase classname="tests.e2e.test_smoke" name="test_teardown" time="0.500">
  <error message="teardown">y</error></testcase>
<testcase classname="tests.e2e.test_smoke" name="test_later" time="0.000"><skipped message="later"/></testcase>
</testsuite></testsuites>"""

SHARD_2 = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="0" failures="0" skipped="0" tests="1" time="30.1">
<testcase classname="tests.e2e.test_isolation" name="test_two_berths" time="29.900"/>
</testsuite></testsuites>"""

NODEIDS = [
    "tests/e2e/test_smoke.py::test_health",
    "tests/e2e/test_smoke.py::TestLogin::test_login[alice-ok]",
    "tests/e2e/test_smoke.py::test_broken",
    "tests/e2e/test_smoke.py::test_teardown",
    "tests/e2e/test_smoke.py::test_later",
    "tests/e2e/test_isolation.py::test_two_berths",
]


def xml(text: str) -> ET.Element:
    """Parse a JUnit document of this file."""
    return ET.fromstring(text)  # noqa: S314 - our own literal


def test_junit_key_mirrors_pytest() -> None:
    assert junit_key("tests/e2e/test_smoke.py::test_health") == ("tests.e2e.test_smoke", "test_health")
    assert junit_key("tests/a.py::TestX::test_y[a/b::c.py]") == ("tests.a.TestX", "test_y[a/b::c.py]")


def test_durations_and_counts_from_junit() -> None:
    root = xml(SHARD_1)
    assert junit_durations(root, NODEIDS) == {
        "tests/e2e/test_smoke.py::test_health": 0.25,
        "tests/e2e/test_smoke.py::TestLogin::test_login[alice-ok]": 1.5,
        "tests/e2e/test_smoke.py::test_broken": 2.0,
        "tests/e2e/test_smoke.py::test_teardown": 0.5,
        "tests/e2e/test_smoke.py::test_later": 0.0,
    }
    assert junit_counts(root) == Counts(tests=5, passed=2, failed=2, skipped=1)
    assert junit_counts(root) + junit_counts(xml(SHARD_2)) == Counts(6, 3, 2, 1)


def test_merged_junit_holds_every_suite_with_totals(tmp_path: Path) -> None:
    merged = merge_junit([("shard 1/2", xml(SHARD_1)), ("shard 2/2", xml(SHARD_2))])
    path = tmp_path / "out" / "junit.xml"
    write_xml(merged, path)
    root = ET.parse(path).getroot()  # noqa: S314 - our own file
    assert root.tag == "testsuites"
    assert [s.get("name") for s in root.findall("testsuite")] == ["pytest (shard 1/2)", "pytest (shard 2/2)"]
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("6", "1", "1", "1")
    assert root.get("time") == "30.100"  # the shards ran at once: the longest, not the sum
    assert len(root.findall("testsuite/testcase")) == 6


def test_durations_file_merges_and_keeps_old_entries(tmp_path: Path) -> None:
    path = tmp_path / ".dockyard" / "durations.json"
    assert load_durations(path) == {}
    save_durations(path, {"t::a": 1.23456, "t::b": 2.0})
    merged = save_durations(path, {"t::b": 3.0, "t::c": 4.0})
    assert merged == {"t::a": 1.235, "t::b": 3.0, "t::c": 4.0}
    assert load_durations(path) == merged
    assert not list(tmp_path.joinpath(".dockyard").glob(".durations.json.[0-9]*"))  # no temporary file left


def test_a_corrupt_durations_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "durations.json"
    path.write_text("{not json")
    with pytest.raises(DockyardError, match="cannot read the durations file") as info:
        load_durations(path)
    assert info.value.remedy == f"delete {path}; the next run writes it anew"


def test_each_run_gets_its_own_directory_and_old_ones_go(tmp_path: Path) -> None:
    base = tmp_path / ".dockyard" / "shards"
    base.mkdir(parents=True)
    long_ago = time.time() - 2 * 3600
    for i in range(12):
        old = base / f"20000101-0000{i:02d}-x"
        old.mkdir()
        (old / "shard-1.log").write_text("old")
        os.utime(old / "shard-1.log", (long_ago, long_ago))
    still_running = base / "20000101-000000-a"  # the oldest name, but its log is being written
    still_running.mkdir()
    (still_running / "shard-1.log").write_text("busy")
    first, second = run_directory(tmp_path), run_directory(tmp_path)
    assert first != second
    assert first.parent == base
    assert still_running.exists()
    left = sorted(p.name for p in base.iterdir())
    assert len(left) == 10 + 1 + 1  # the last ten, the busy one, and the one made last
    assert "20000101-000000-x" not in left


# -- isolation check and the shard's command ------------------------------------------------------


def shard(number: int, index: int, held: tuple[float, float | None]) -> ShardRun:
    """A finished shard that held berth ``index`` over ``held``."""
    run = ShardRun(number, 3, [f"t::{number}"], Path("/nowhere"))
    block = [20000 + 100 * index, 20099 + 100 * index]
    run.report = {"index": index, "project": f"demo-{block[0]}", "port_block": block, "held": list(held)}
    return run


def test_isolation_check() -> None:
    assert isolation_problems([shard(1, 0, (0, 10)), shard(2, 1, (0, 10)), shard(3, 2, (1, 9))]) == []
    # Reusing a berth another shard finished with is fine (a busy pool) ...
    assert isolation_problems([shard(1, 0, (0, 10)), shard(2, 0, (11, 20))]) == []
    # A run killed before its final report holds its berth for all we know.
    assert isolation_problems([shard(1, 0, (0, None)), shard(2, 0, (11, 20))]) != []
    # ... holding it at the same time is not.
    problems = isolation_problems([shard(1, 0, (0, 10)), shard(2, 0, (5, 20))])
    assert problems == [
        "shards 1/3 and 2/3 held the same index 0 at once",
        "shards 1/3 and 2/3 held the same project demo-20000 at once",
        "shards 1/3 and 2/3 held the same port_block [20000, 20099] at once",
    ]


def test_the_summary_has_a_line_per_shard_and_a_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CI", "1")  # plain table
    done = shard(1, 4, (0, 10))
    done.exit_code, done.wall, done.counts = 0, 61.25, Counts(1, 1, 0, 0)
    assert done.report is not None
    done.report["timings"] = {"acquire": 0.0, "up": 40.0, "run": 20.5, "down": 1.0}
    broken = ShardRun(2, 3, ["t::2"], tmp_path, exit_code=5, wall=30.0)  # its stack never came up
    Summary.of([done, broken, ShardRun(3, 3, [], tmp_path)], {"t::1": 2.0, "t::2": 3.0}, 62.0).show()
    rows = table_rows(capsys.readouterr().out)[1:]  # below the header
    assert rows == [
        ["1/3", "4", "demo-20400", "20400-20499", "1", "1", "0", "0", "2.0", "40.0", "20.5", "61.2", "passed"],
        ["2/3", "-", "-", "-", "1", "-", "-", "-", "3.0", "-", "-", "30.0", "failed (5)"],
        ["3/3", "-", "-", "-", "0", "-", "-", "-", "0.0", "-", "-", "-", "empty"],
        ["total", "1", "", "", "2", "1", "0", "0", "5.0", "", "", "62.0", "failed"],
    ]


def test_a_shard_that_does_not_exist_is_refused(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(DockyardError, match="shard 4 of 3 does not exist"):
        run_shards(make_settings(), ["tests"], 3, only=4)


def test_a_shard_runs_pytest_under_dockyard_run_with_this_python(tmp_path: Path) -> None:
    run = ShardRun(2, 3, ["t::a"], tmp_path)
    cmd = run.command(["tests/e2e", "-k", "smoke"])
    assert cmd[:5] == [sys.executable, "-m", "dockyard", "run", "--"]
    assert cmd[5:10] == [sys.executable, "-m", "pytest", "tests/e2e", "-k"]
    assert f"--junitxml={tmp_path / 'shard-2.xml'}" in cmd
    assert cmd[cmd.index("dockyard.shards.plugin") - 1] == "-p"


def test_an_empty_shard_is_fine_and_a_failed_one_is_not(tmp_path: Path) -> None:
    assert ShardRun(1, 2, [], tmp_path).ok
    ran = ShardRun(2, 2, ["t::a"], tmp_path, exit_code=0, counts=Counts(1, 1, 0, 0))
    assert ran.ok
    assert not ShardRun(2, 2, ["t::a"], tmp_path, exit_code=1, counts=Counts(1, 0, 1, 0)).ok
    assert not ShardRun(2, 2, ["t::a"], tmp_path, exit_code=0, counts=None).ok  # no JUnit XML
