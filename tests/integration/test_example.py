"""The adoption example (examples/jobqueue) passes its own tests in a berth, and leaves nothing.

A second project, with a compose file of its own written the ordinary way (fixed host ports,
health checks at 5 s intervals, no dockyard in it), run exactly as its README says:
``dockyard run -- pytest`` in its directory, with its own ``[tool.dockyard]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .helpers import DOCKYARD, NOTHING, clean_env, project_resources

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jobqueue"

pytestmark = pytest.mark.docker


def test_the_example_passes_its_tests_in_a_berth_of_its_own(tmp_path: Path) -> None:
    report, junit = tmp_path / "run.json", tmp_path / "junit.xml"
    # Not the outer session's berth, xdist worker or pytest options: the example's own run.
    env = {k: v for k, v in clean_env(DOCKYARD_RUN_REPORT=str(report)).items() if not k.startswith("PYTEST_")}
    pytest_cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    result = subprocess.run(
        [str(DOCKYARD), "run", "--", *pytest_cmd],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=540,
    )
    output = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
    assert result.returncode == 0, output

    # Every test ran and passed: a run that skipped (Docker "missing") would not count.
    suite = ET.parse(junit).getroot().find("testsuite")  # noqa: S314 - our own pytest's output
    assert suite is not None
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
    assert counts["tests"] >= 10
    assert counts == {**counts, "failures": 0, "errors": 0, "skipped": 0}, output

    held = json.loads(report.read_text())
    assert held["project"].startswith("jobqueue-")  # the example's own project_prefix
    low, high = held["port_block"]
    web, redis = held["ports"]["web"]["8080"], held["ports"]["redis"]["6379"]
    assert low <= web <= high
    assert low <= redis <= high  # remapped from the compose file's fixed 8080 and 6379
    assert project_resources(held["project"]) == NOTHING
