"""`invoke <task>` in this repository does what `dockyard <task>` does, the words after `--` included."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import dockyard

from .helpers import DOCKYARD, Projects, clean_env, compose, service

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]  # this repository: its tasks.py is what `invoke` loads
INVOKE = Path(sys.executable).parent / "invoke"
FORMS = {"invoke": INVOKE, "dockyard": DOCKYARD}


def run_as(name: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``invoke ARGS`` or ``dockyard ARGS`` (``name``) in this repository, with a private pool."""
    return subprocess.run(
        [str(FORMS[name]), *args],
        cwd=ROOT,
        # Not the host's pool, which other sessions use: only the lease is under test. Nor its
        # ports: a pool of its own on the demo's range would start `parallel`'s shards' stacks
        # on the ports of a berth the host's pool hands to another test at the same time.
        env=clean_env(DOCKYARD_LOCK_DIR=str(tmp_path / f"locks-{name}"), DOCKYARD_PORT_RANGE="25500-25699"),
        capture_output=True,
        text=True,
        check=False,
        timeout=150,
    )


def both(tmp_path: Path, *args: str) -> dict[str, subprocess.CompletedProcess[str]]:
    """``invoke ARGS`` and ``dockyard ARGS``, by form."""
    return {name: run_as(name, tmp_path, *args) for name in FORMS}


def test_run_hands_the_quoted_words_after_the_double_dash_to_the_command(tmp_path: Path) -> None:
    code = "import json, sys; print(json.dumps(sys.argv[1:])); raise SystemExit(7)"
    results = both(tmp_path, "run", "--no-up", "--", sys.executable, "-c", code, "a b", "c; d")
    for name, done in results.items():
        output = f"{name}:\n{done.stdout}{done.stderr}"
        assert done.returncode == 7, output  # the command's own code, passed through
        assert json.loads(done.stdout.splitlines()[0]) == ["a b", "c; d"], output


def test_parallel_collects_the_pytest_arguments_after_the_double_dash(tmp_path: Path) -> None:
    # A selection that matches nothing ends the run after collection, before any stack starts;
    # without the words after `--` the shards would collect the whole suite instead. Two
    # shards, since one runs its tests without collecting them first.
    selection = ["tests/unit/test_status.py", "-k", "no_test_is_called_this"]
    results = both(tmp_path, "parallel", "--shards", "2", "--", *selection)
    for name, done in results.items():
        output = f"{name}:\n{done.stdout}{done.stderr}"
        assert done.returncode == dockyard.ExitCode.FAILURE, output
        assert f"pytest collected no tests from {' '.join(selection)}" in done.stderr, output
        assert "Traceback" not in output


def test_junit_merge_merges_the_files_after_the_double_dash(tmp_path: Path) -> None:
    reports = tmp_path / "reports with a space"
    reports.mkdir()
    for shard, failure in ((1, ""), (2, '<failure message="boom"/>')):
        (reports / f"shard-{shard}.xml").write_text(
            f'<testsuite name="pytest" tests="2" failures="{int(bool(failure))}" errors="0" skipped="0">'
            f'<testcase classname="t" name="a{shard}"/><testcase classname="t" name="b{shard}">{failure}</testcase>'
            "</testsuite>"
        )
    merged = {}
    for name in FORMS:
        out = tmp_path / f"merged-{name}.xml"
        done = run_as(name, tmp_path, "junit-merge", "--output", str(out), "--", str(reports))
        assert done.returncode == 0, f"{name}:\n{done.stdout}{done.stderr}"
        assert f"merged 2 file(s) into {out}: 4 tests, 3 passed, 1 failed" in done.stderr, done.stderr
        root = ET.parse(out).getroot()  # noqa: S314 - a file this test wrote
        merged[name] = sorted(case.get("name", "") for case in root.iter("testcase"))
    assert merged["invoke"] == merged["dockyard"] == ["a1", "a2", "b1", "b2"]


INNER = """\
import os


def test_one():
    assert os.environ["DOCKYARD_BERTH"]


def test_two():
    assert os.environ["DOCKYARD_BERTH"]
"""


@pytest.mark.timeout(330)  # two parallel runs, each starting a stack
def test_a_small_parallel_run_selects_the_same_tests_in_both_forms(make_project: Projects) -> None:
    # A project of its own, with the tasks.py this repository has, so the shard's stack is small.
    project = make_project("invokepar", "27000-27099", compose(service("app", ports=["80"])))
    (project.root / "tasks.py").write_text("from dockyard.cli.tasks import namespace as ns\n")
    (project.root / "tests").mkdir()
    (project.root / "tests" / "test_inner.py").write_text(INNER)
    env = {k: v for k, v in clean_env().items() if not k.startswith("PYTEST_")}  # no outer pytest's options
    totals = {}
    for name, program in FORMS.items():
        done = subprocess.run(
            [str(program), "parallel", "--shards", "1", "--json", "--", "tests/test_inner.py", "-k", "two"],
            cwd=project.root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=150,
        )
        assert done.returncode == 0, f"{name}:\n{done.stdout}{done.stderr}"
        totals[name] = json.loads(done.stdout)["totals"]
    assert totals["invoke"] == totals["dockyard"]
    assert (totals["invoke"]["tests"], totals["invoke"]["passed"]) == (1, 1)  # `-k two` reached the shard
