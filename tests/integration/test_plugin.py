"""The pytest plugin in inner pytest sessions (pytester) against the real engine.

Each test writes a tiny project (pyproject.toml with ``[tool.dockyard]`` and
``[tool.pytest.ini_options]``, a compose file of one ticking service) and an inner test file,
runs pytest on it in a subprocess, and judges the outcome, the report and what is left on disk
and in Docker. Subprocesses, because ``dockyard.engine.endpoints.sdk`` is cached per process.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

import dockyard

from .helpers import DOCKYARD, TOKEN, Project, Projects, compose, leftovers, service

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]

TICKING = compose(
    service(
        "web",
        ports=["80"],
        command=["bash", "-c", "echo service-started; while true; do echo tick-$(date +%s%N); sleep 0.2; done"],
    )
)
# The inner sessions run with warnings as errors too, so a warning the plugin causes fails them.
INNER_INI = '\n[tool.pytest.ini_options]\naddopts = "-ra -p no:cacheprovider"\nfilterwarnings = ["error"]\n'
SECTION = "dockyard: service logs since the test started"
INNER_TIMEOUT = 150  # seconds an inner session may take before pytester kills it


@pytest.fixture(autouse=True)
def inner_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the outer session's berth, xdist worker and options away from the inner sessions.

    The plugin trusts ``DOCKYARD_BERTH`` and ``PYTEST_XDIST_WORKER``; inherited from an outer
    `dockyard run` or xdist worker they would change what the inner session does. pytester
    points HOME at its own directory; DOCKER_CONFIG keeps the docker CLI finding its plugins
    (Compose v2 among them) where they are installed.
    """
    monkeypatch.setenv("DOCKER_CONFIG", os.environ.get("DOCKER_CONFIG", str(Path.home() / ".docker")))
    for key in list(os.environ):
        if key.startswith(("DOCKYARD_", "PYTEST_XDIST_")) or key == "PYTEST_ADDOPTS":
            monkeypatch.delenv(key)


def inner_project(make_project: Projects, name: str, port_range: str, tests: str) -> Project:
    """A project of the ticking service, configured for pytest too, with ``tests`` as test_inner.py."""
    project = make_project(name, port_range, TICKING)
    with (project.root / "pyproject.toml").open("a") as fh:
        fh.write(INNER_INI)
    (project.root / "test_inner.py").write_text(textwrap.dedent(tests))
    return project


def pool_states(project: Project) -> list[dockyard.State]:
    """The state of every berth of ``project``'s pool, now."""
    return [status.state for status in dockyard.BerthPool(project.settings).statuses()]


def assert_all_gone(project: Project) -> None:
    """Nothing of ``project`` in Docker, every berth of its pool free (no stale lease records)."""
    assert leftovers(project.prefix) == []
    assert set(pool_states(project)) == {dockyard.State.FREE}


FAILING_WITH_EVIDENCE = """
    import time

    MARK = "evidence-from-the-failing-test"


    def test_fails(dockyard_stack):
        # Into the stdout of the container's PID 1: the service's own log.
        assert dockyard_stack.exec("web", ["bash", "-c", f"echo {MARK} > /proc/1/fd/1"]) == 0
        deadline = time.monotonic() + 20
        while MARK not in "".join(dockyard_stack.logs(["web"])):
            assert time.monotonic() < deadline, "the marker never reached the service's log"
            time.sleep(0.1)
        assert False, "deliberate failure"


    def test_passes(dockyard_stack):
        assert dockyard_stack.ps()
"""


def test_a_failing_test_gets_the_service_logs(make_project: Projects, pytester: pytest.Pytester) -> None:
    project = inner_project(make_project, "plugfail", "25000-25029", FAILING_WITH_EVIDENCE)
    result = pytester.runpytest_subprocess(str(project.root / "test_inner.py"), timeout=INNER_TIMEOUT)
    output = result.stdout.str()
    result.assert_outcomes(failed=1, passed=1)

    # The section pytest prints for the failure holds the service's lines, marker and ticks.
    header = next(i for i, line in enumerate(result.outlines) if SECTION in line)
    section = []
    for line in result.outlines[header + 1 :]:
        if line.startswith(("-----", "=====", "_____")):
            break
        section.append(line)
    assert any("evidence-from-the-failing-test" in line and "web" in line for line in section), output
    assert any("tick-" in line for line in section), output

    logs = sorted((project.root / "artifacts" / "tests").iterdir())
    assert [log.name for log in logs] == ["test_inner.py_test_fails.log"], output
    text = logs[0].read_text()
    assert "evidence-from-the-failing-test" in text
    assert "tick-" in text
    assert_all_gone(project)


USES_THE_HANDED_DOWN_STACK = """
    import json
    import os
    from pathlib import Path

    import dockyard


    def test_uses_the_handed_down_stack(dockyard_stack):
        pool = dockyard.BerthPool(dockyard_stack.settings)
        seen = {
            "project": dockyard_stack.project,
            "index": dockyard_stack.berth.index,
            "handed": json.loads(os.environ["DOCKYARD_BERTH"]),
            "live": [s.index for s in pool.statuses() if s.state is dockyard.State.LIVE],
            "ready": [s.service for s in dockyard_stack.ps() if s.ready],
        }
        (Path(__file__).parent / "seen.json").write_text(json.dumps(seen))
"""


def test_a_session_under_dockyard_run_uses_the_handed_down_stack(
    make_project: Projects, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = inner_project(make_project, "plugrun", "25100-25129", USES_THE_HANDED_DOWN_STACK)
    monkeypatch.chdir(project.root)  # `dockyard run` reads ./pyproject.toml
    result = pytester.run(DOCKYARD, "run", "--", sys.executable, "-m", "pytest", "test_inner.py", timeout=INNER_TIMEOUT)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, output
    # Not assert_outcomes: it would parse the timings of `dockyard run`'s table, printed last.
    result.stdout.fnmatch_lines(["*= 1 passed in *"])

    seen = json.loads((project.root / "seen.json").read_text())
    assert seen["project"] == seen["handed"]["project"], seen
    assert seen["index"] == seen["handed"]["index"], seen
    assert seen["live"] == [seen["handed"]["index"]], "the inner session took a berth of its own"
    assert seen["ready"] == ["web"], seen
    # The report header names that berth, its port block and the engine, before the tests.
    first, last = seen["handed"]["port_block"]
    header = f"dockyard: berth {seen['index']} ({seen['project']}), ports {first}-{last}, engine *"
    result.stdout.fnmatch_lines([header, "collected 1 item"])
    assert_all_gone(project)


EVERY_WORKER_ITS_OWN = """
    import os
    from pathlib import Path

    import pytest


    @pytest.mark.parametrize("n", range(6))
    def test_note_the_berth(dockyard_stack, n):
        seen = Path(__file__).parent / "seen" / f"{os.environ['PYTEST_XDIST_WORKER']}.txt"
        seen.parent.mkdir(exist_ok=True)
        with seen.open("a") as fh:
            fh.write(f"{dockyard_stack.berth.index} {dockyard_stack.project}\\n")
"""


def test_every_xdist_worker_gets_a_berth_of_its_own(make_project: Projects, pytester: pytest.Pytester) -> None:
    project = inner_project(make_project, "plugxdist", "25200-25229", EVERY_WORKER_ITS_OWN)
    result = pytester.runpytest_subprocess(str(project.root / "test_inner.py"), "-n", "3", timeout=INNER_TIMEOUT)
    output = result.stdout.str()
    result.assert_outcomes(passed=6)

    notes = {path.stem: set(path.read_text().splitlines()) for path in (project.root / "seen").iterdir()}
    assert sorted(notes) == ["gw0", "gw1", "gw2"], output
    assert all(len(lines) == 1 for lines in notes.values()), f"a worker changed stacks mid-session: {notes}"
    berths = [line.split() for lines in notes.values() for line in lines]
    assert len({index for index, _ in berths}) == 3, berths
    assert len({name for _, name in berths}) == 3, berths
    assert {name for _, name in berths} <= {project.settings.project_name(i) for i in range(3)}, berths
    assert_all_gone(project)


NEEDS_DOCKER = """
    def test_needs_docker(dockyard_stack):
        pass
"""


def test_without_docker_a_test_errors_with_the_remedy_or_is_skipped(
    make_project: Projects, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = inner_project(make_project, "plugnodocker", "25300-25329", NEEDS_DOCKER)
    socket = Path(tempfile.gettempdir()) / f"dockyard-{TOKEN}-{os.getpid()}-nonexistent.sock"
    assert not socket.exists()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    test_file = str(project.root / "test_inner.py")

    failed = pytester.runpytest_subprocess(test_file, timeout=INNER_TIMEOUT)
    output = failed.stdout.str()
    failed.assert_outcomes(errors=1)
    assert f"the Docker daemon at unix://{socket} is unreachable" in output, output
    assert "-> start the daemon" in output, output
    # Nothing escapes the session: no warning turned error at exit, e.g. of a leaked socket.
    assert failed.stderr.str() == "", failed.stderr.str()
    assert set(pool_states(project)) == {dockyard.State.FREE}, "the berth was not released"

    skipped = pytester.runpytest_subprocess(test_file, "--dockyard-skip-missing", timeout=INNER_TIMEOUT)
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines([f"SKIPPED *Docker unavailable: the Docker daemon at unix://{socket} is unreachable*"])
    # A CI job without Docker must pass, not crash after its summary.
    assert skipped.ret == pytest.ExitCode.OK, skipped.stderr.str()

    monkeypatch.setenv("DOCKYARD_SKIP_MISSING_DOCKER", "true")  # the setting does what the option does
    by_setting = pytester.runpytest_subprocess(test_file, timeout=INNER_TIMEOUT)
    by_setting.assert_outcomes(skipped=1)
    assert by_setting.ret == pytest.ExitCode.OK, by_setting.stderr.str()
    assert set(pool_states(project)) == {dockyard.State.FREE}


SERVICE_URL = """
    import pytest


    def test_service_url(dockyard_stack, service_url):
        port = dockyard_stack.port("web", 80)
        assert service_url("web", 80) == f"http://127.0.0.1:{port}"
        assert service_url("web", 80, "ws") == f"ws://127.0.0.1:{port}"
        assert port in dockyard_stack.berth.port_block
        # The address is where the engine really published the port.
        assert dockyard_stack.compose.compose.port("web", 80) == ("127.0.0.1", port)
        with pytest.raises(KeyError, match="published: web:80"):
            service_url("web", 81)
"""


def test_service_url_points_at_the_published_port(make_project: Projects, pytester: pytest.Pytester) -> None:
    # The inner rootdir is pytester's empty directory: the stack comes from --dockyard-root.
    project = make_project("plugurl", "25400-25429", TICKING)
    test_file = pytester.makepyfile(test_url=textwrap.dedent(SERVICE_URL))
    result = pytester.runpytest_subprocess(
        str(test_file),
        "--dockyard-root",
        str(project.root),
        "-W",
        "error",
        "-p",
        "no:cacheprovider",
        timeout=INNER_TIMEOUT,
    )
    result.assert_outcomes(passed=1)
    assert_all_gone(project)
