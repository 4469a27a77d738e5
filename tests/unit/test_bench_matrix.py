"""The CI-matrix measurement's pure parts: test times, balance, and every test exactly once."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench import BenchError
from bench.matrix import balance, best_balance, exactly_once, job_env, shard_seconds
from bench.rows import SPECS
from bench.samples import Check
from bench.targets import exit_status, row
from dockyard.shards.junit import merge_junit_files

pytest_plugins = ["pytester"]

NODEIDS = [
    "tests/e2e/test_smoke.py::test_redis_answers_ping",
    "tests/e2e/test_smoke.py::test_http_service_reports_healthy[auth]",
    "tests/e2e/test_failures.py::test_bad_input_gets_a_structured_error[empty title]",
    "tests/e2e/test_notes.py::TestNotes::test_a_note_survives",
]


def case(nodeid: str, seconds: float, outcome: str = "") -> str:
    classname, _, name = nodeid.replace(".py::", "::").replace("/", ".").partition("::")
    if "::" in name:  # a class: pytest puts it into the classname
        cls, _, name = name.partition("::")
        classname = f"{classname}.{cls}"
    body = f"<{outcome} message='x'/>" if outcome else ""
    return f'<testcase classname="{classname}" name="{name}" time="{seconds}">{body}</testcase>'


def shard_report(label: str, *cases: str) -> str:
    """A job's `.dockyard/junit.xml`, as `dockyard parallel --shard K/N` writes it."""
    suite = f'<testsuite name="pytest (shard {label})" tests="{len(cases)}">{"".join(cases)}</testsuite>'
    return f'<testsuites name="dockyard parallel">{suite}</testsuites>'


def xml(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - the test's own samples


def merged(tmp_path: Path, *reports: str) -> ET.Element:
    """The reports laid out as the template's report job downloads them, merged as junit-merge does."""
    for k, text in enumerate(reports, start=1):
        path = tmp_path / f"junit-shard-{k}" / "junit.xml"
        path.parent.mkdir(parents=True)
        path.write_text(text)
    root, _files = merge_junit_files([tmp_path])
    return root


def test_a_shards_test_time_is_the_sum_of_its_testcases_whatever_their_outcome() -> None:
    report = xml(shard_report("1/2", case(NODEIDS[0], 1.25), case(NODEIDS[1], 0.5, "error")))
    assert shard_seconds(report) == pytest.approx(1.75)


def test_balance_is_the_slowest_over_the_mean() -> None:
    assert balance([3.0, 4.0, 5.0, 4.0]) == pytest.approx(1.25)
    with pytest.raises(BenchError, match="no mean"):
        balance([0.0, 0.0])


def test_the_longest_test_bounds_the_balance_from_below() -> None:
    assert best_balance([5.0, 1.0, 1.0, 1.0], 4) == pytest.approx(2.5)  # 5 s against a mean of 2 s
    assert best_balance([1.0, 1.0, 1.0, 1.0], 4) == pytest.approx(1.0)
    assert best_balance([1.0, 1.0], 4) == pytest.approx(2.0)  # two shards must stay empty


def test_four_reports_that_split_the_suite_hold_every_test_once(tmp_path: Path) -> None:
    reports = [shard_report(f"{k}/4", case(t, 0.1)) for k, t in enumerate(NODEIDS, start=1)]
    assert exactly_once(NODEIDS, merged(tmp_path, *reports)) == []


def test_a_test_run_by_two_shards_or_by_none_fails_the_check(tmp_path: Path) -> None:
    twice, missing = NODEIDS[0], NODEIDS[3]
    reports = [
        shard_report("1/2", case(twice, 0.1), case(NODEIDS[1], 0.1)),
        shard_report("2/2", case(twice, 0.1), case(NODEIDS[2], 0.1)),
    ]
    assert exactly_once(NODEIDS, merged(tmp_path, *reports)) == [f"missing: {missing}", f"2 times: {twice}"]


def test_a_test_the_suite_does_not_hold_fails_the_check() -> None:
    report = xml(shard_report("1/1", *(case(t, 0.1) for t in NODEIDS), case("tests/e2e/test_x.py::y", 0)))
    assert exactly_once(NODEIDS, report) == ["never collected: tests.e2e.test_x::y"]


def test_nothing_collected_is_no_pass() -> None:
    assert exactly_once([], xml(shard_report("1/1"))) == ["no test was collected to look for"]


def test_the_collected_plugin_lists_the_node_ids_of_the_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_a="import pytest\n@pytest.mark.parametrize('x', [1, 2])\ndef test_p(x): pass\n")
    listing = pytester.path / "nodeids"
    monkeypatch.setenv("BENCH_COLLECTED", str(listing))
    pytester.runpytest("--collect-only", "-q", "-p", "bench.collected").assert_outcomes()
    assert listing.read_text().splitlines() == ["test_a.py::test_p[1]", "test_a.py::test_p[2]"]


def test_a_ci_job_gets_a_users_shell_without_a_shard_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_SHARDS", "3")
    monkeypatch.setenv("VIRTUAL_ENV", "/bench/.venv")
    monkeypatch.setenv("DOCKYARD_LOCK_DIR", "/var/lib/dockyard-locks")
    env = job_env()
    assert "DOCKYARD_SHARDS" not in env
    assert "VIRTUAL_ENV" not in env
    assert env["DOCKYARD_LOCK_DIR"] == "/var/lib/dockyard-locks"


def test_the_matrix_rows_judge_the_balance_and_fail_the_run_on_a_test_not_run_once() -> None:
    specs = {s.a: s for s in SPECS if s.phase == "matrix"}
    samples = {"matrix.balance": [1.1], "matrix.merge": [0.4]}
    balanced = row(specs["matrix.balance"], samples, [], 4)
    assert (balanced["target"], balanced["met"]) == ("A <= 1.2", "met")
    assert row(specs["matrix.balance"], {"matrix.balance": [1.6]}, [], 4)["met"] == "missed"
    twice = [Check("matrix.exactly_once", False, "2 times: tests/e2e/test_smoke.py::test_redis_answers_ping")]
    check = row(specs["matrix.merge"], samples, twice, 4)
    assert check["met"] == "failed"
    assert exit_status([balanced, check], twice, [], targets=False) == 1
