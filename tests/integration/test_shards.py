"""`dockyard parallel` against the real engine: shards at once, each in a berth of its own."""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape as xml_escape

import pytest

from dockyard.errors import ExitCode
from dockyard.shards.policy import starts_at_once
from dockyard.ui.console import table_rows

from .helpers import Project, Projects, clean_env, compose, leftovers, service, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

ONE_SERVICE = compose(service("app", ports=["80"]))

# Every test waits until three berths have checked in, so the shards provably hold their
# berths at the same time (and three distinct ones), however late one of them starts.
INNER_TEST = """\
import json
import os
import time
from pathlib import Path

RENDEZVOUS = Path(__file__).resolve().parent.parent / "rendezvous"


def test_runs_in_a_berth_{n}():
    berth = json.loads(os.environ["DOCKYARD_BERTH"])
    assert berth["project"].startswith("{prefix}-")
    assert berth["ports"]["app"]["80"] in range(berth["port_block"][0], berth["port_block"][1] + 1)
    RENDEZVOUS.mkdir(exist_ok=True)
    (RENDEZVOUS / berth["project"]).touch()
    deadline = time.monotonic() + {wait}
    while len(list(RENDEZVOUS.iterdir())) < {berths} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert {fail} == 0
"""


def shard_project(make_project: Projects, name: str, port_range: str, *, berths: int, failing: int = 0) -> Project:
    """A one-service project with six trivial test files under ``tests/``; test ``failing`` fails."""
    project = make_project(name, port_range, ONE_SERVICE)
    tests = project.root / "tests"
    tests.mkdir()
    for n in range(1, 7):
        text = INNER_TEST.format(n=n, prefix=project.prefix, berths=berths, wait=60 if berths > 1 else 0, fail=0)
        if n == failing:
            text = text.replace("assert 0 == 0", "assert 1 == 0, 'the failing test'")
        (tests / f"test_{n}.py").write_text(text)
    return project


def inner_env() -> dict[str, str]:
    """The environment without an outer berth, xdist worker or pytest options."""
    return {k: v for k, v in clean_env().items() if not k.startswith("PYTEST_")}


def parallel(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m dockyard parallel ARGS`` in the project."""
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "parallel", *args],
        cwd=project.root,
        env=inner_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=200,
    )


def reports(project: Project) -> list[dict[str, Any]]:
    """The `dockyard run` report of every shard of the latest run."""
    latest = max((project.root / ".dockyard" / "shards").iterdir(), key=lambda p: p.stat().st_mtime)
    return [json.loads(p.read_text()) for p in sorted(latest.glob("shard-*.json"))]


def junit(project: Project) -> ET.Element:
    """The merged JUnit XML."""
    return ET.parse(project.root / ".dockyard" / "junit.xml").getroot()  # noqa: S314 - pytest's own output


def test_three_shards_run_at_once_in_three_berths(make_project: Projects) -> None:
    project = shard_project(make_project, "shards", "24000-24099", berths=3)
    result = parallel(project, "--shards", "3", "--", "tests")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    cases = junit(project).findall("testsuite/testcase")
    assert sorted(c.get("name", "") for c in cases) == [f"test_runs_in_a_berth_{n}" for n in range(1, 7)]
    assert all(c.find("failure") is None and c.find("error") is None for c in cases)

    held = reports(project)
    assert len(held) == 3
    assert len({r["index"] for r in held}) == 3
    assert len({r["project"] for r in held}) == 3
    assert len({tuple(r["port_block"]) for r in held}) == 3
    assert all(r["exit_code"] == 0 and r["timings"]["up"] > 0 for r in held)
    assert len(list((project.root / "rendezvous").iterdir())) == 3  # every berth took part
    # Every shard got ready at the outset (interpreter, berth, watchdog), then waited for its
    # turn to start its stack: each held its berth before the first stack was up.
    windows = sorted((r["held"][0] + r["timings"]["turn"], r["timings"]["up"]) for r in held)
    first_up = min(start + up for start, up in windows)
    assert all(r["held"][0] < first_up for r in held), windows
    if starts_at_once() == 1:  # a turn is given once the stack before it is up
        for (start, up), (later, _) in itertools.pairwise(windows):
            assert later >= start + up - 0.25, f"two stacks started at once: {windows}"

    assert "dockyard parallel" in result.stdout
    assert [row[0] for row in table_rows(result.stdout)] == ["shard", "1/3", "2/3", "3/3", "total"]
    assert "6 tests over 3 shard(s), split by count" in result.stderr
    assert "isolation check: 3 shard(s) held 3 distinct berth(s)" in result.stderr
    # The count was given, so the first stack started while the tests were collected and split;
    # every shard then waited for its tests before its pytest ran.
    assert result.stderr.index("shard 1/3: tests to come") < result.stderr.index("6 tests over 3 shard(s)")
    assert all(r["timings"]["tests"] >= 0 for r in held), held

    durations = json.loads((project.root / ".dockyard" / "durations.json").read_text())
    costs = ["<berth cpu s>", "<shard fixed s>", "<stack up>", "<test cpu per s>"]  # what the run cost the host
    marks = ["<tests alone>"]  # 0: three shards at once, with no run of one shard to scale to
    tests = [f"tests/test_{n}.py::test_runs_in_a_berth_{n}" for n in range(1, 7)]
    assert sorted(durations) == [*costs, *marks, *tests]
    assert durations["<stack up>"] > 0
    assert durations["<berth cpu s>"] > 0
    assert durations["<tests alone>"] == 0.0


def test_the_default_is_one_shard_until_a_run_priced_a_berth(make_project: Projects) -> None:
    project = shard_project(make_project, "shardauto", "24400-24499", berths=1)
    first = parallel(project, "--", "tests")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "dockyard: 1 shard: no earlier run measured what a berth costs this host" in first.stderr
    assert "no split: the one shard runs every test pytest selects" in first.stderr
    assert len(junit(project).findall("testsuite/testcase")) == 6
    durations = json.loads((project.root / ".dockyard" / "durations.json").read_text())
    assert durations["<berth cpu s>"] > 0
    assert durations["<shard fixed s>"] > 0
    assert durations["<test cpu per s>"] >= 0

    # The next run chooses from those figures, and says them.
    second = parallel(project, "--json", "--", "tests")
    assert second.returncode == 0, second.stdout + second.stderr
    why = re.search(r"^dockyard: (\d+) shards?: on \d+ cores a berth costs [\d.]+ CPU-s", second.stderr, re.MULTILINE)
    assert why is not None, second.stderr
    assert json.loads(second.stdout)["totals"]["shards"] == int(why.group(1))


def test_one_shard_of_a_matrix_and_a_failing_test(make_project: Projects) -> None:
    project = shard_project(make_project, "shardfail", "24100-24199", berths=1, failing=4)
    ok = parallel(project, "--shard", "2/2", "--", "tests")  # count split: tests 2, 4, 6 -> shard 2
    assert ok.returncode == 1, ok.stdout + ok.stderr
    assert "shard 2/2 failed (exit 1); last lines of" in ok.stderr
    assert "the failing test" in ok.stderr  # the tail of the shard's log
    assert len(reports(project)) == 1
    failures = junit(project).findall("testsuite/testcase/failure")
    assert len(failures) == 1
    assert len(junit(project).findall("testsuite/testcase")) == 3

    # The whole run splits by the durations the first one recorded (for its half of the tests).
    whole = parallel(project, "--shards", "2", "--", "tests")
    assert whole.returncode == 1, whole.stdout + whole.stderr
    assert "split by the durations of 3 of them" in whole.stderr
    # (Six quick tests take less than a stack start: shard 2, started after shard 1's stack is
    # up, may get none of them. Either way every test ran once.)
    assert len(junit(project).findall("testsuite/testcase")) == 6
    assert len(junit(project).findall("testsuite/testcase/failure")) == 1


def test_a_collection_that_fails_stops_the_shards_started_meanwhile(make_project: Projects) -> None:
    project = shard_project(make_project, "shardnone", "24700-24799", berths=2)
    result = parallel(project, "--shards", "2", "--", "tests/no_such_dir")
    assert result.returncode == ExitCode.FAILURE, result.stdout + result.stderr
    assert "collecting the tests failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert all(r["exit_code"] != 0 for r in reports(project) if r["exit_code"] is not None)
    assert leftovers(project.prefix) == [], "a shard's stack outlived the failed collection"


def test_a_bad_shard_is_refused_before_anything_starts(make_project: Projects) -> None:
    project = shard_project(make_project, "shardbad", "24200-24299", berths=1)
    result = parallel(project, "--shard", "3/2", "--", "tests")
    assert result.returncode == ExitCode.FAILURE
    assert "--shard '3/2': K must be between 1 and N" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project.root / ".dockyard").exists()


STUCK_TEST = """\
import json
import os
import time
from pathlib import Path


def test_takes_long_{n}():
    berth = json.loads(os.environ["DOCKYARD_BERTH"])
    rendezvous = Path(__file__).resolve().parent.parent / "rendezvous"
    rendezvous.mkdir(exist_ok=True)
    (rendezvous / berth["project"]).touch()
    time.sleep(600)  # until `dockyard run` stops this pytest
"""


def test_sigterm_stops_every_shard_and_takes_their_stacks_down(make_project: Projects) -> None:
    project = make_project("shardterm", "24300-24399", ONE_SERVICE)
    (project.root / "tests").mkdir()
    for n in (1, 2):
        (project.root / "tests" / f"test_{n}.py").write_text(STUCK_TEST.format(n=n))
    rendezvous = project.root / "rendezvous"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard", "parallel", "--shards", "2", "--", "tests"],
        cwd=project.root,
        env=inner_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for("both shards' tests to run", lambda: len(list(rendezvous.glob("*"))) == 2, timeout=150)
        assert len(leftovers(project.prefix)) > 0  # two stacks are up
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, out + err
    assert "terminated: the shards were stopped" in err
    assert "Traceback" not in err
    assert leftovers(project.prefix) == []


def test_python_m_dockyard_is_the_console_script(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "--list"], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "parallel" in result.stdout.split()


# A URL password with characters that JSON-escaping, URL-encoding and XML-escaping each change.
SHARD_PASSWORD = 'hunter2"q&z+w'  # noqa: S105 - planted, under a key that does not look secret
PRINTING_TEST = """\
import json
import re
from pathlib import Path
from urllib.parse import quote

# What the stack holds, as a test that prints its connection string would see it.
COMPOSE = (Path(__file__).resolve().parent.parent / "compose.yaml").read_text()
URL = re.search("DATABASE_URL: '([^']+)'", COMPOSE)[1]
PASSWORD = URL.split("@")[0].split(":")[2]


def test_prints_it():
    print("plain", URL)
    print("as json", json.dumps({"url": URL}))
    print("url-encoded", quote(PASSWORD, safe=""))


def test_fails_with_it():
    print("about to connect to", URL)
    assert URL == "", f"could not reach {URL}"
"""


def shard_leaks(text: str) -> list[str]:
    """The forms of the planted password that occur in ``text``."""
    found = [
        SHARD_PASSWORD,
        json.dumps(SHARD_PASSWORD)[1:-1],
        quote(SHARD_PASSWORD, safe=""),
        xml_escape(SHARD_PASSWORD),
        xml_escape(SHARD_PASSWORD, {'"': "&quot;"}),
    ]
    return [form for form in found if form in text]


def test_a_password_a_test_prints_reaches_no_shard_file_and_no_output(make_project: Projects) -> None:
    url = f"postgres://app:{SHARD_PASSWORD}@db:5432/app"
    app = service("app", ports=["80"], extra=["environment:", f"  DATABASE_URL: '{url}'"])
    project = make_project("shardmask", "24500-24599", compose(app))
    (project.root / "tests").mkdir()
    (project.root / "tests" / "test_printing.py").write_text(PRINTING_TEST)

    result = parallel(project, "--shards", "2", "--", "-rA", "tests")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # test_fails_with_it failed, the other passed
    assert shard_leaks(output) == [], output
    assert "about to connect to postgres://app:********@db:5432/app" in output  # the failed shard's tail

    run_dir = max((project.root / ".dockyard" / "shards").iterdir(), key=lambda p: p.stat().st_mtime)
    files = {p: p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file()}
    logs = "".join(text for p, text in files.items() if p.suffix == ".log")
    # The shards did print it, in each form, and every one reached the logs masked.
    assert "plain postgres://app:********@db:5432/app" in logs, logs
    assert '"url": "postgres://app:********@db:5432/app"' in logs, logs
    assert "url-encoded ********" in logs, logs
    assert any(p.suffix == ".xml" and "could not reach" in text for p, text in files.items())
    written = {**files, **{p: p.read_text(errors="replace") for p in (project.root / ".dockyard").glob("*.*")}}
    for path, text in written.items():
        assert shard_leaks(text) == [], path
