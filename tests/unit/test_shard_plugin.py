"""Collecting the tests, and the plugin each shard loads, run in an inner pytest (pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard import DockyardError
from dockyard.shards.collect import collect
from dockyard.shards.plugin import COLLECT_ENV, SHARD_FILE_ENV
from dockyard.shards.shard import ShardRun

pytest_plugins = ["pytester"]

INNER = """
import pytest

def test_one(): pass
def test_two(): pass

@pytest.mark.parametrize("x", [1, 2])
def test_three(x): pass
"""


def test_collect_lists_node_ids_in_order(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER)
    pytester.makeini("[pytest]\naddopts = -v\n")  # changes pytest's own listing, not ours
    ids = collect([], cwd=pytester.path)
    assert ids == [
        "test_inner.py::test_one",
        "test_inner.py::test_two",
        "test_inner.py::test_three[1]",
        "test_inner.py::test_three[2]",
    ]
    assert collect(["-k", "nothing_matches"], cwd=pytester.path) == []  # pytest's exit 5


def test_collect_errors_carry_the_evidence(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_broken="def test_x(:\n")
    with pytest.raises(DockyardError, match="collecting the tests failed") as info:
        collect([], cwd=pytester.path)
    assert "test_broken.py" in info.value.message


def test_a_shard_runs_only_its_tests(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_inner=INNER)
    keep = pytester.path / "shard.ids"
    keep.write_text("test_inner.py::test_two\ntest_inner.py::test_three[2]\n")
    monkeypatch.setenv(SHARD_FILE_ENV, str(keep))
    result = pytester.runpytest("-p", "dockyard.shards.plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, deselected=2)


def test_a_shard_fails_when_its_tests_are_not_collected(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_inner=INNER)
    keep = pytester.path / "shard.ids"
    keep.write_text("test_inner.py::test_two\ntest_inner.py::test_gone\n")
    monkeypatch.setenv(SHARD_FILE_ENV, str(keep))
    result = pytester.runpytest("-p", "dockyard.shards.plugin", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*1 test(s) of this shard were not collected*test_gone*"])


def test_without_a_shard_file_the_plugin_keeps_everything(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_inner=INNER)
    monkeypatch.delenv(SHARD_FILE_ENV, raising=False)
    result = pytester.runpytest("-p", "dockyard.shards.plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_one_whole_shard_lists_what_its_pytest_collected(tmp_path: Path) -> None:
    run = ShardRun(1, 1, [], tmp_path, whole=True)
    assert not run.empty  # it runs, though nothing was split into it
    before = run.tests
    assert before is None  # not counted before its pytest collects
    run.path("ids").write_text("t::a\nt::b\n")  # what the plugin's collection hook writes
    run.exit_code = 0
    run.gather()
    assert (run.nodeids, run.tests) == (["t::a", "t::b"], 2)
    assert ShardRun(2, 2, [], tmp_path).empty


def test_a_whole_shard_collects_in_its_own_pytest(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_inner=INNER)
    listing = pytester.path / "shard-1.ids"
    monkeypatch.setenv(COLLECT_ENV, str(listing))
    monkeypatch.delenv(SHARD_FILE_ENV, raising=False)
    result = pytester.runpytest("-p", "dockyard.shards.plugin", "-p", "no:cacheprovider", "-k", "not two")
    result.assert_outcomes(passed=3, deselected=1)
    assert listing.read_text().splitlines() == [
        "test_inner.py::test_one",
        "test_inner.py::test_three[1]",
        "test_inner.py::test_three[2]",
    ]
