"""The daily loop against the real engine: a warm stack reused, any runner, kept after a failure.

Each test drives the commands a user types (`dockyard up`, plain `pytest`, `dockyard run`,
`dockyard down`) in a project of its own, and judges what Docker and the pool hold after.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dockyard

from .helpers import (
    DOCKYARD,
    IMAGE,
    NOTHING,
    Project,
    Projects,
    clean_env,
    compose,
    docker,
    ids,
    project_resources,
    service,
    wait_for,
)
from .servers import http_server
from .test_cli import stop_keepers

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

WEB = service("web", ports=["80"], command=["bash", "-c", "echo started; exec sleep infinity"])
TWO = compose(WEB, service("db", ports=["6000"]))
INNER_INI = '\n[tool.pytest.ini_options]\naddopts = "-ra -p no:cacheprovider"\nfilterwarnings = ["error"]\n'

NOTE_THE_STACK = """
    import json, os
    from pathlib import Path


    def test_note_the_stack(dockyard_stack):
        web = [s for s in dockyard_stack.ps() if s.service == "web"]
        Path(os.environ["NOTE"]).write_text(json.dumps({"project": dockyard_stack.project, "web": web[0].container}))
"""


def _pytest(project: Project, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Plain ``pytest`` in the project directory, as a user would type it."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=project.root,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )


def _container_ids(project_name: str) -> set[str]:
    return set(ids("container", f"com.docker.compose.project={project_name}"))


def _write_compose(project: Project, web: str = WEB) -> None:
    """The kept project's compose file, on its own tag of the base image.

    The engine is shared: another session rebuilding the base image would be real drift
    (the kept stack then runs an older build), which these tests must not mistake for theirs.
    """
    text = compose(web, service("db", ports=["6000"]))
    project.compose.write_text(text.replace(IMAGE, f"{project.prefix}-base:latest"))


@pytest.fixture
def kept(make_project: Projects) -> Iterator[tuple[Project, dict[str, Any]]]:
    """A project of two services with `dockyard up` done: (project, the berth `up --json` printed)."""
    project = make_project("warm", "26800-26829", TWO)
    docker("tag", IMAGE, f"{project.prefix}-base:latest")
    _write_compose(project)
    with (project.root / "pyproject.toml").open("a") as fh:
        fh.write(INNER_INI)
    (project.root / "test_inner.py").write_text(textwrap.dedent(NOTE_THE_STACK))
    try:
        up = project.cli("up", "--json")
        assert up.returncode == 0, up.stdout + up.stderr
        yield project, json.loads(up.stdout)
        down = project.cli("down")
        assert down.returncode == 0, down.stdout + down.stderr
    finally:
        stop_keepers(project.settings)
        docker("rmi", f"{project.prefix}-base:latest", check=False)


def test_pytest_reuses_the_kept_stack_and_never_tears_it_down(
    kept: tuple[Project, dict[str, Any]], tmp_path: Path
) -> None:
    project, info = kept
    before = _container_ids(info["project"])
    note = tmp_path / "note.json"
    for _ in range(2):  # the second run finds the stack as the first left it: up, unchanged
        result = _pytest(project, "test_inner.py", NOTE=str(note))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"using the stack `dockyard up` keeps in berth {info['index']}" in result.stdout
        assert "refreshing" not in result.stdout
        assert json.loads(note.read_text())["project"] == info["project"]
        assert _container_ids(info["project"]) == before  # nothing started, nothing torn down
    states = [s.state for s in dockyard.BerthPool(project.settings).statuses()]
    assert states.count(dockyard.State.LIVE) == 1  # no second berth was taken

    own = _pytest(project, "test_inner.py", "--dockyard-no-reuse", NOTE=str(note))
    assert own.returncode == 0, own.stdout + own.stderr
    assert json.loads(note.read_text())["project"] != info["project"]
    assert _container_ids(info["project"]) == before


def test_a_changed_service_is_refreshed_before_reuse_and_said_so(
    kept: tuple[Project, dict[str, Any]], tmp_path: Path
) -> None:
    project, info = kept
    old = _container_ids(info["project"])
    web_before = next(c for c in project_resources(info["project"])["container"] if "web" in c["Name"])["Id"]
    _write_compose(project, WEB.replace("echo started", "echo started again"))
    note = tmp_path / "note.json"
    result = _pytest(project, "test_inner.py", NOTE=str(note))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "web has a changed compose configuration" in result.stdout
    assert "refreshing web" in result.stdout
    noted = json.loads(note.read_text())
    assert noted["project"] == info["project"]
    now = _container_ids(info["project"])
    assert web_before not in now  # web was recreated ...
    assert len(old & now) == 1  # ... and db, unchanged, was not
    again = _pytest(project, "test_inner.py", NOTE=str(note))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "refreshing" not in again.stdout  # judged current now


def test_a_changed_service_under_another_run_means_a_berth_of_its_own(
    kept: tuple[Project, dict[str, Any]], tmp_path: Path
) -> None:
    project, info = kept
    from dockyard.sessions.reuse import reused_stack  # noqa: PLC0415 - the module under test, in this process

    with reused_stack(project.settings) as other_run:  # another test run, using the stack
        assert other_run is not None
        _write_compose(project, WEB.replace("echo started", "echo changed"))
        note = tmp_path / "note.json"
        result = _pytest(project, "test_inner.py", NOTE=str(note))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "another test run is using it: taking a berth of its own" in result.stdout
        assert json.loads(note.read_text())["project"] != info["project"]


# The engine's first check comes a minute after the start; dockyard's own, once port 80 listens.
SLOW_CHECK = service("web", ports=["80"], command=http_server(80), interval="60s")
READY_AS_SAID = """
    def test_ready_as_up_said(dockyard_stack):
        states = {s.service: (s.health, s.ready) for s in dockyard_stack.ps()}
        assert states == {"web": ("healthy", True)}, states
"""


def up_info(up: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return dict(json.loads(up.stdout))


def test_a_session_reusing_the_stack_sees_it_ready_as_up_said(make_project: Projects) -> None:
    """`dockyard up` ran the check itself; the engine says "starting" until its own, a minute on."""
    project = make_project("saidready", "27160-27189", compose(SLOW_CHECK))
    with (project.root / "pyproject.toml").open("a") as fh:
        fh.write(INNER_INI)
    (project.root / "test_ready.py").write_text(textwrap.dedent(READY_AS_SAID))
    try:
        up = project.cli("up", "--json")
        assert up.returncode == 0, up.stdout + up.stderr
        result = _pytest(project, "test_ready.py")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "using the stack `dockyard up` keeps" in result.stdout
        web = next(c for c in project_resources(up_info(up)["project"])["container"] if "web" in c["Name"])
        assert docker("inspect", "--format", "{{.State.Health.Status}}", web["Id"]).strip() == "starting"
        down = project.cli("down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert not list(project.settings.lock_dir.rglob("*.ready.json"))  # the keeper took its word back
    finally:
        stop_keepers(project.settings)


RUNNER = """\
#!/bin/sh
# A test runner that is not Python: it reads only the environment dockyard exports.
set -eu
echo "project=$DOCKYARD_PROJECT block=$DOCKYARD_PORT_BLOCK web=$DOCKYARD_WEB_80 db=$DOCKYARD_DB_6000" > "$1"
"""


def test_dockyard_run_gives_any_runner_a_variable_per_port(make_project: Projects, tmp_path: Path) -> None:
    project = make_project("anyrun", "26830-26859", TWO)
    script = project.root / "runner.sh"
    script.write_text(RUNNER)
    out, env_file = tmp_path / "seen.txt", tmp_path / "stack.env"
    result = project.cli("run", "--env-file", str(env_file), "--", "sh", str(script), str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    seen = dict(word.split("=", 1) for word in out.read_text().split())
    settings = project.settings
    block = settings.port_block(0)
    assert seen["project"] == settings.project_name(0)
    assert seen["block"] == f"{block.start}-{block.stop - 1}"
    hosts = {seen["web"], seen["db"]}
    assert all(h.startswith("127.0.0.1:") and int(h.split(":")[1]) in block for h in hosts)
    assert len(hosts) == 2
    dotenv = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert dotenv["DOCKYARD_WEB_80"] == seen["web"]
    assert dotenv["DOCKYARD_PROJECT"] == seen["project"]
    assert project_resources(settings.project_name(0)) == NOTHING  # the run's own stack went down


def test_dockyard_run_reuse_runs_against_the_kept_stack(kept: tuple[Project, dict[str, Any]], tmp_path: Path) -> None:
    project, info = kept
    script = project.root / "runner.sh"
    script.write_text(RUNNER)
    out = tmp_path / "seen.txt"
    before = _container_ids(info["project"])
    result = project.cli("run", "--reuse", "--", "sh", str(script), str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    seen = dict(word.split("=", 1) for word in out.read_text().split())
    assert seen["project"] == info["project"]
    assert seen["web"] == info["addresses"]["web"]["80"]
    assert _container_ids(info["project"]) == before


FAILS = """
    def test_fails(dockyard_stack):
        assert False, "deliberate"
"""
PASSES = """
    def test_passes(dockyard_stack):
        assert dockyard_stack.ps()
"""


def test_a_failed_session_keeps_its_stack_until_down(make_project: Projects) -> None:
    project = make_project("keep", "26860-26889", TWO)
    with (project.root / "pyproject.toml").open("a") as fh:
        fh.write(INNER_INI)
    (project.root / "test_fails.py").write_text(textwrap.dedent(FAILS))
    (project.root / "test_passes.py").write_text(textwrap.dedent(PASSES))
    settings = project.settings
    name = settings.project_name(0)
    try:
        passed = _pytest(project, "test_passes.py", "--dockyard-keep-on-failure")
        assert passed.returncode == 0, passed.stdout + passed.stderr
        assert project_resources(name) == NOTHING  # all passed: torn down as any run
        failed = _pytest(project, "test_fails.py", "--dockyard-keep-on-failure")
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "kept after 1 failed test(s): berth 0" in failed.stdout
        assert "release: dockyard down --berth 0" in failed.stdout
        assert len(project_resources(name)["container"]) == 2  # the stack stayed up ...
        row = next(r for r in json.loads(project.cli("status", "--json").stdout) if r["index"] == 0)
        assert row["state"] == "live"  # ... the berth held, by the keeper, not the dead session
        assert row["holder"]["pid"] != os.getpid()
        assert row["kept"].startswith("kept after 1 failed test, ")
        assert "kept after 1 failed test" in project.cli("status").stdout
        reused = _pytest(project, "test_passes.py")
        assert reused.returncode == 0
        assert "using the stack" not in reused.stdout  # a kept berth is for debugging, not for reuse
        down = project.cli("down", "--berth", "0")
        assert down.returncode == 0, down.stdout + down.stderr
        wait_for("the kept stack to go", lambda: project_resources(name) == NOTHING)
    finally:
        stop_keepers(settings)


BUILT = """\
services:
  app:
    build: {{context: app}}
    command: ["bash", "-c", "cat /app.txt; exec sleep infinity"]
    init: true
    stop_grace_period: 1s
    healthcheck: {{test: ["CMD", "test", "-f", "/app.txt"], interval: 1s, timeout: 5s, retries: 30}}
    ports: ["80"]
{other}"""


def _running(project_name: str) -> dict[str, str]:
    """Service -> container ID of the project's running, healthy containers."""
    return {
        c["Config"]["Labels"]["com.docker.compose.service"]: c["Id"]
        for c in project_resources(project_name)["container"]
        if c["State"]["Status"] == "running" and (c["State"].get("Health") or {}).get("Status", "healthy") == "healthy"
    }


def test_watch_rebuilds_only_the_changed_service_and_reruns_the_command(make_project: Projects) -> None:
    project = make_project("watch", "26890-26919", BUILT.format(other=service("other")))
    app = project.root / "app"
    app.mkdir()
    (app / "Dockerfile").write_text(f"FROM {IMAGE}\nCOPY app.txt /app.txt\n")
    (app / "app.txt").write_text("one\n")
    tests = project.root / "tests"
    tests.mkdir()
    (tests / "test_x.txt").write_text("first\n")
    runs = project.root / "runs.log"
    name = project.settings.project_name(0)
    proc = subprocess.Popen(
        [str(DOCKYARD), "watch", "--", "sh", "-c", f'echo "$DOCKYARD_APP_80" >> {runs}'],
        cwd=project.root,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for("the first run", lambda: runs.is_file() and len(runs.read_text().splitlines()) == 1, timeout=120)
        first = _running(name)
        assert sorted(first) == ["app", "other"]

        (tests / "test_x.txt").write_text("second\n")  # a test changed: run again, rebuild nothing
        wait_for("the second run", lambda: len(runs.read_text().splitlines()) == 2)
        assert _running(name) == first

        (app / "app.txt").write_text("two\n")  # a service's source changed: rebuild app alone
        wait_for("the third run", lambda: len(runs.read_text().splitlines()) == 3, timeout=120)
        now = _running(name)
        assert now["other"] == first["other"]
        assert now["app"] != first["app"]
        out = docker("exec", now["app"][:12], "cat", "/app.txt")
        assert out == "two\n"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "rebuilding app" in output
    assert "app healthy again after" in output
    assert project_resources(name) == NOTHING


ROWS = """
    import os, time
    from pathlib import Path

    import psycopg


    def test_rows(dockyard_fresh):
        with psycopg.connect(dockyard_fresh.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS scratch (value text)")
            seen = [r[0] for r in conn.execute("SELECT value FROM scratch")]
            conn.execute("INSERT INTO scratch VALUES (%s)", (os.environ["RUN"],))
        Path(os.environ["OUT"]).write_text(",".join(seen))
        go = Path(os.environ["GO"])
        deadline = time.monotonic() + 120
        while not go.exists():  # the first run holds the stack's state until the test says go
            assert time.monotonic() < deadline
            time.sleep(0.05)
"""


def test_two_runs_on_one_kept_stack_never_see_each_others_rows(make_project: Projects, tmp_path: Path) -> None:
    infra = Path(__file__).resolve().parents[2] / "compose" / "infra.yml"
    project = make_project("rows", "26920-26949", "services: {}\n", compose_files=[str(infra)], health_timeout=300)
    with (project.root / "pyproject.toml").open("a") as fh:
        fh.write(INNER_INI)
    (project.root / "test_rows.py").write_text(textwrap.dedent(ROWS))
    go = tmp_path / "go"
    try:
        up = project.cli("up", "--json")
        assert up.returncode == 0, up.stdout + up.stderr

        def start(run: str) -> subprocess.Popen[str]:
            with (tmp_path / f"{run}.log").open("w") as log:  # the child has its own copy of the descriptor
                return subprocess.Popen(
                    [sys.executable, "-m", "pytest", "test_rows.py"],
                    cwd=project.root,
                    env=clean_env(RUN=run, OUT=str(tmp_path / f"{run}.seen"), GO=str(go)),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                )

        first = start("first")
        wait_for("the first run's row", (tmp_path / "first.seen").exists, timeout=120)
        second = start("second")
        wait_for("the second run to wait", lambda: "is testing against it" in (tmp_path / "second.log").read_text())
        assert not (tmp_path / "second.seen").exists()  # it waits, rather than sharing the first run's rows
        go.touch()
        assert first.wait(timeout=120) == 0, (tmp_path / "first.log").read_text()
        assert second.wait(timeout=120) == 0, (tmp_path / "second.log").read_text()
        assert (tmp_path / "first.seen").read_text() == ""
        assert (tmp_path / "second.seen").read_text() == ""  # reset from the template: no row of the first
        down = project.cli("down")
        assert down.returncode == 0, down.stdout + down.stderr
    finally:
        go.touch()
        stop_keepers(project.settings)


INSIDE = """\
set -eu
mkdir -p /reports
# Inside, each service is reached by its name and container port, from the same variable names.
echo "web=$DOCKYARD_WEB_80 db=$DOCKYARD_DB_6000 project=$DOCKYARD_PROJECT" > /reports/seen.txt
getent hosts db > /reports/db.txt
exit 3
"""


def test_dockyard_run_in_a_service_passes_the_exit_code_and_copies_reports(make_project: Projects) -> None:
    project = make_project("inside", "26950-26979", TWO)
    name = project.settings.project_name(0)
    result = project.cli("run", "--in", "web", "--copy-out", "/reports:out", "--", "sh", "-c", INSIDE)
    assert result.returncode == 3, result.stdout + result.stderr
    seen = dict(word.split("=", 1) for word in (project.root / "out" / "seen.txt").read_text().split())
    assert seen == {"web": "web:80", "db": "db:6000", "project": name}
    assert (project.root / "out" / "db.txt").read_text().strip()  # the stack's network resolves the service
    assert project_resources(name) == NOTHING  # the one-off container went with the stack
