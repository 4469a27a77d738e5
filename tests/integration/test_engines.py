"""Beyond one engine: DOCKER_HOST, Docker contexts, a pool of two engines, reaping on the right one.

The second engine is a second ``dockerd`` on this machine (see ``second_engine.py``), started
once for this module. Both publish on this host's 127.0.0.1, so they share one port pool.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import dockyard
from dockyard.engine.endpoints import current_engine
from dockyard.pool.ports import ports_in_use

from .helpers import IMAGE, TOKEN, Project, Projects, clean_env, compose, docker, service, wait_for
from .second_engine import SecondEngine, second_engine, unavailable_reason

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]
MAIN = "unix:///var/run/docker.sock"
ONE = compose(service("web", ports=["80"]))


@pytest.fixture(scope="module")
def engine2() -> Iterator[SecondEngine]:
    """A second dockerd for this module's tests, gone (with its data root) afterwards."""
    if reason := unavailable_reason():
        pytest.fail(f"a second Docker engine cannot run here: {reason}")
    with second_engine() as engine:
        yield engine


@pytest.fixture
def on_engine2(engine2: SecondEngine) -> Iterator[SecondEngine]:
    """Fail a test that leaves anything dockyard-labelled on the second engine; remove it either way."""
    yield engine2
    left = engine2.managed()
    for command in (["rm", "-f", "-v"], ["network", "rm"], ["volume", "rm", "-f"]):
        engine2.docker(*command, *left, check=False)
    assert not left, f"left behind on the second engine: {left}"


@pytest.fixture
def main_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process talks to the main engine, whatever the outer environment says."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)


def on(engine: SecondEngine, project: str) -> list[str]:
    """Container IDs of compose ``project`` on ``engine``."""
    return engine.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}").split()


def on_main(project: str) -> list[str]:
    """Container IDs of compose ``project`` on the main engine, whatever DOCKER_HOST says now."""
    return docker("-H", MAIN, "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}").split()


def assert_runs_on_second(project: Project, engine2: SecondEngine) -> None:
    """A stack of ``project`` comes up healthy on the second engine, and on it alone."""
    settings = project.settings
    with dockyard.running_stack(settings) as stack:
        assert stack.berth.record.engine == engine2.endpoint
        on_disk = dockyard.BerthPool(settings).statuses()
        assert next(on_disk).record == stack.berth.record
        assert stack.berth.record.engine_id == json.loads(engine2.docker("info", "--format", "{{json .ID}}"))
        assert len(on(engine2, stack.project)) == 1
        assert on_main(stack.project) == []
        port = stack.port("web", 80)
        assert ports_in_use([port]) == [port]  # docker-proxy of the second engine, on this host
    assert on(engine2, stack.project) == []


_HANDSHAKE = """
import sys
from dockyard.engine.endpoints import Engine, handshake
handshake(Engine(sys.argv[1]))
print(sorted(m for m in ("docker", "requests", "urllib3") if m in sys.modules))
"""


def test_the_handshake_pings_the_real_engine_without_docker_py(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-c", _HANDSHAKE, MAIN], capture_output=True, text=True, env=clean_env(), check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "[]"
    dead = f"unix://{tmp_path / 'nobody.sock'}"
    gone = subprocess.run(
        [sys.executable, "-c", _HANDSHAKE, dead], capture_output=True, text=True, env=clean_env(), check=False
    )
    assert f"the Docker daemon at {dead} is unreachable" in gone.stderr, gone.stderr


@pytest.mark.usefixtures("main_engine")
def test_docker_host_runs_the_stack_on_that_engine(
    make_project: Projects, on_engine2: SecondEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", on_engine2.endpoint)
    assert current_engine().endpoint == on_engine2.endpoint
    assert_runs_on_second(make_project("host", "26000-26029", ONE), on_engine2)


@pytest.mark.usefixtures("main_engine")
def test_a_docker_context_works_the_same(
    make_project: Projects, on_engine2: SecondEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A private DOCKER_CONFIG: the user's own contexts stay untouched; the CLI plugins are shared.
    config = tmp_path / "docker-config"
    config.mkdir()
    home_plugins = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "cli-plugins"
    (config / "cli-plugins").symlink_to(home_plugins)
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    docker("context", "create", "second", "--docker", f"host={on_engine2.endpoint}")
    monkeypatch.setenv("DOCKER_CONTEXT", "second")
    engine = current_engine()
    assert (engine.endpoint, engine.context) == (on_engine2.endpoint, "second")
    assert_runs_on_second(make_project("context", "26030-26059", ONE), on_engine2)


@pytest.mark.usefixtures("main_engine")
def test_a_two_engine_pool_spreads_berths_without_port_collisions(
    make_project: Projects, on_engine2: SecondEngine
) -> None:
    project = make_project("pool", "26100-26199", ONE, max_berths=4, engines=[MAIN, on_engine2.endpoint])
    settings = project.settings
    with contextlib.ExitStack() as held:
        stacks = [held.enter_context(dockyard.running_stack(settings)) for _ in range(3)]
        engines = [s.berth.record.engine for s in stacks]
        assert sorted(engines) == sorted([MAIN, MAIN, on_engine2.endpoint]) or sorted(engines) == sorted(
            [MAIN, on_engine2.endpoint, on_engine2.endpoint]
        )
        assert engines[:2] == [MAIN, on_engine2.endpoint]  # least-loaded first, ties in the setting's order
        ports = [s.port("web", 80) for s in stacks]
        assert len(set(ports)) == 3, f"one port pool for both engines of this host: {ports}"
        assert ports_in_use(ports) == sorted(ports)
        for stack in stacks:
            main_ids = on_main(stack.project)
            second_ids = on(on_engine2, stack.project)
            assert (len(main_ids), len(second_ids)) == ((1, 0) if stack.berth.record.engine == MAIN else (0, 1))
        status = project.cli("status", "--json")
        assert status.returncode == 0, status.stderr
        assert on_engine2.endpoint in {row["engine"] for row in json.loads(status.stdout)}
    assert all(on(on_engine2, s.project) == [] for s in stacks)


SESSION = """
import sys
import dockyard
with dockyard.running_stack(dockyard.load_settings(sys.argv[1], env={})) as stack:
    print(stack.project, flush=True)
    sys.stdin.read()  # hold the stack until killed
"""


def _killed_holder(project: Project, env: dict[str, str]) -> str:
    """Run a session holding a stack, SIGKILL it once up; the compose project it left."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SESSION, str(project.root)],
        cwd=project.root,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()  # printed once the stack is healthy
        assert line, (proc.stderr.read() if proc.stderr else b"").decode()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    return line


@pytest.mark.usefixtures("main_engine")
def test_a_killed_holders_stack_is_reaped_on_its_engine_by_the_watchdog(
    make_project: Projects, on_engine2: SecondEngine
) -> None:
    project = make_project("watched", "26200-26229", ONE)
    name = _killed_holder(project, clean_env(DOCKER_HOST=on_engine2.endpoint))
    # This process talks to the main engine: the watchdog knew the lease's engine by itself.
    wait_for("the watchdog to reap on the second engine", lambda: not on_engine2.managed(), timeout=30)
    assert on(on_engine2, name) == []


@pytest.mark.usefixtures("main_engine")
def test_the_next_holder_reaps_a_dead_leases_stack_on_its_engine(
    make_project: Projects, on_engine2: SecondEngine
) -> None:
    project = make_project("next", "26300-26329", ONE, max_berths=1)
    name = _killed_holder(project, clean_env(DOCKER_HOST=on_engine2.endpoint, DOCKYARD_WATCHDOG="0"))
    assert len(on(on_engine2, name)) == 1, "without a watchdog the stack is left behind"
    with dockyard.acquire_berth(project.settings, with_ports=False) as berth:  # on the main engine now
        assert berth.stale is not None
        assert berth.stale.engine == on_engine2.endpoint
        assert berth.record.engine == MAIN
        assert on(on_engine2, name) == []


@pytest.mark.usefixtures("main_engine")
def test_an_engine_missing_the_stacks_images_gets_them_from_another(
    make_project: Projects, on_engine2: SecondEngine
) -> None:
    image = f"it{TOKEN}-built:dev"
    text = (
        "services:\n  web:\n"
        f"    image: {image}\n    build: {{context: ., args: {{BASE_IMAGE: {IMAGE}}}}}\n"
        '    command: ["sleep", "infinity"]\n    init: true\n    stop_grace_period: 1s\n'
        "    healthcheck: {test: [CMD, 'true'], interval: 1s, timeout: 5s, retries: 30}\n"
    )
    project = make_project("images", "26400-26429", text, engines=[on_engine2.endpoint, MAIN])
    (project.root / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nLABEL dockyard.test=engines\n")
    try:
        built = project.cli("images")  # on the main engine (no DOCKER_HOST)
        assert built.returncode == 0, built.stdout + built.stderr
        assert on_engine2.docker("images", "-q", image) == ""
        with dockyard.running_stack(project.settings) as stack:  # the idle second engine gets it
            assert stack.berth.record.engine == on_engine2.endpoint
            labels = json.loads(on_engine2.docker("image", "inspect", "-f", "{{json .Config.Labels}}", image))
            assert labels["dockyard.build-hash"], "copied with its build hash: not rebuilt"
    finally:
        docker("-H", MAIN, "rmi", image, check=False)
        on_engine2.docker("rmi", image, check=False)


@pytest.mark.usefixtures("main_engine", "orphans_alone")
def test_cleanup_reaps_a_dead_leases_stack_on_its_engine(make_project: Projects, on_engine2: SecondEngine) -> None:
    project = make_project("cleanup", "27600-27629", ONE, max_berths=1)
    name = _killed_holder(project, clean_env(DOCKER_HOST=on_engine2.endpoint, DOCKYARD_WATCHDOG="0"))
    assert len(on(on_engine2, name)) == 1
    status = project.cli("status", "--json")  # from the main engine's environment
    assert [(row["state"], row["engine"]) for row in json.loads(status.stdout)][:1] == [("stale", on_engine2.endpoint)]
    cleanup = project.cli("cleanup")
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert on(on_engine2, name) == []
    assert "1 stale lease record(s) cleared" in cleanup.stdout + cleanup.stderr


@pytest.mark.usefixtures("main_engine")
def test_the_cli_follows_a_kept_berth_to_its_engine(make_project: Projects, on_engine2: SecondEngine) -> None:
    chatty = compose(service("web", ports=["80"], command=["sh", "-c", "echo hello from engine2; exec sleep infinity"]))
    project = make_project("cli", "26600-26629", chatty)
    name = project.settings.project_name(0)
    up = project.cli("up", "--json", env=clean_env(DOCKER_HOST=on_engine2.endpoint))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert json.loads(up.stdout)["project"] == name
        assert len(on(on_engine2, name)) == 1
        # From here on the main engine's environment: the berth's record says where its stack is.
        logs = project.cli("logs", "--services", "web")
        assert "hello from engine2" in logs.stdout, logs.stdout + logs.stderr
        probe = project.cli("exec", "--service", "web", "--command", "cat /etc/hostname")
        assert probe.returncode == 0, probe.stdout + probe.stderr
        assert (
            probe.stdout.strip()
            == on_engine2.docker("ps", "-q", "--filter", f"label=com.docker.compose.project={name}").strip()
        )
    finally:
        down = project.cli("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert on(on_engine2, name) == []


@pytest.mark.usefixtures("main_engine")
def test_an_engine_that_does_not_answer_is_named_and_passed_over(
    make_project: Projects, on_engine2: SecondEngine, tmp_path: Path
) -> None:
    dead = f"unix://{tmp_path / 'nobody-listens.sock'}"
    project = make_project("dead", "26700-26729", ONE, engines=[dead, on_engine2.endpoint])
    validate = project.cli("validate", "--quick")
    assert f"FAIL engine {dead}: the Docker daemon at {dead} is unreachable" in validate.stdout, validate.stdout
    assert f"ok   engine {on_engine2.endpoint}: Docker " in validate.stdout
    with dockyard.acquire_berth(project.settings, with_ports=False) as berth:
        assert berth.record.engine == on_engine2.endpoint
    alone = make_project("deadalone", "26730-26759", ONE, engines=[dead, f"unix://{tmp_path / 'nor-here.sock'}"])
    with (
        pytest.raises(dockyard.DockerUnavailable, match="no engine of the pool is reachable") as info,
        dockyard.acquire_berth(alone.settings, with_ports=False),
    ):
        pass
    assert dead in str(info.value)
