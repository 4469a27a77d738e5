"""Security: loopback-only ports, cleanup touching only what is ours, private files, no secrets out.

A planted token is set in the compose environment of services that also print it; every
output dockyard produces (messages, `dockyard logs`, artifact bundles, the plugin's failure
logs and report sections, JSON) is searched for it.
"""

from __future__ import annotations

import secrets
import socket
import stat
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dockyard
from dockyard.engine.labels import labels_for
from dockyard.stack.masking import MASK
from integration.helpers import IMAGE, TOKEN, Projects, clean_env, compose, docker, inspect, service

from .host import PortClaims, managed_of, of_session, pool_not_free
from .session import dockyard_cli, run_session
from .tally import Tally

pytestmark = [pytest.mark.docker, pytest.mark.chaos, pytest.mark.timeout(300)]


# -- every published port on 127.0.0.1 ----------------------------------------------------------

# Published every way compose allows, on all interfaces and fixed host ports included.
MANY_PORTS = compose(
    service("web", ports=["80", "8080:8080", "0.0.0.0:9000:9000/tcp", "53/udp"]),
    service("db", ports=["127.0.0.1::5432", "6379"]),
    service(
        "admin",
        extra=["ports:", "  - {target: 81, published: '8081', host_ip: 0.0.0.0}", "  - {target: 82}"],
    ),
)
PUBLISHED = 8  # per berth


def bindings(container: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(container port, host address, host port) of every binding the engine made."""
    ports = (container.get("NetworkSettings") or {}).get("Ports") or {}
    return [(port, b["HostIp"], b["HostPort"]) for port, bound in ports.items() for b in bound or []]


def test_every_published_port_of_every_berth_is_on_loopback(
    make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally
) -> None:
    project = make_project("loopback", chaos_ports.take(40), MANY_PORTS, max_berths=2)
    settings = project.settings
    with dockyard.running_stack(settings) as first, dockyard.running_stack(settings) as second:
        for stack in (first, second):
            containers = inspect("container", [s.container for s in stack.ps()])
            bound = [(c["Name"].lstrip("/"), *b) for c in containers for b in bindings(c)]
            assert len(bound) == PUBLISHED, bound
            for name, port, address, host in bound:
                assert address == "127.0.0.1", f"{name} publishes {port} on {address}:{host}"
                assert int(host) in stack.berth.port_block, f"{name} publishes {port} outside its block"
            configured = [b for c in containers for b in (c["HostConfig"]["PortBindings"] or {}).values()]
            assert {b["HostIp"] for bs in configured for b in bs} == {"127.0.0.1"}
            # From the host's address on the stack's own network the ports are not reachable.
            gateway = next(iter(containers[0]["NetworkSettings"]["Networks"].values()))["Gateway"]
            for _name, port, _address, host in bound:
                if port.endswith("/tcp"):
                    with pytest.raises(ConnectionRefusedError), socket.create_connection((gateway, int(host)), 2):
                        pass
    chaos_tally.faults += 1
    assert not of_session(settings.project_name(0))
    assert not of_session(settings.project_name(1))


# -- cleanup --all: ours only -------------------------------------------------------------------


@pytest.mark.usefixtures("orphans_alone")
def test_cleanup_all_spares_lookalike_volumes_networks_and_containers(
    make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally
) -> None:
    text = compose(service("web", extra=["volumes: [data:/data]"]), volumes=["data"])
    project = make_project("lookalikes", chaos_ports.take(10), text, max_berths=1)
    settings = project.settings
    lookalikes: dict[str, list[str]] = {"container": [], "network": [], "volume": []}
    try:
        with dockyard.running_stack(settings) as stack:
            real = labels_for(0, stack.project, stack.berth.lock_path, stack.berth.record.lease_id, 1.0)
            # Every dockyard label but `managed=true`, under names like ours: not ours to touch.
            unmanaged = {k: v for k, v in real.items() if k != "dockyard.managed"}
            for variant, labels in {
                "unlabelled": {},
                "unmanaged": unmanaged,
                "managed-false": {**unmanaged, "dockyard.managed": "false"},
                "compose": {"com.docker.compose.project": stack.project, **unmanaged},
            }.items():
                flags = [f"--label={k}={v}" for k, v in labels.items()]
                name = f"dockyard-{TOKEN}-{variant}"
                docker("volume", "create", *flags, name)
                lookalikes["volume"].append(name)
                docker("network", "create", *flags, name)
                lookalikes["network"].append(name)
                docker("create", "--name", name, *flags, IMAGE, "true")
                lookalikes["container"].append(name)
            docker("volume", "create", f"{stack.project}_data-lookalike")  # our volume's name, plus a bit
            lookalikes["volume"].append(f"{stack.project}_data-lookalike")

            code, output = dockyard_cli(project, "cleanup", "--all")
            assert code == 0, output
            assert managed_of(stack.project) == [], "cleanup --all left the pool's own stack"
            for kind, names in lookalikes.items():
                for name in names:
                    docker(kind, "inspect", name)  # still there
                    assert name not in output, f"cleanup claims to remove the look-alike {kind} {name}:\n{output}"
    finally:
        docker("rm", "-f", *lookalikes["container"], check=False)
        docker("network", "rm", *lookalikes["network"], check=False)
        docker("volume", "rm", *lookalikes["volume"], check=False)
    chaos_tally.faults += 1


# -- private files, and the planted secret --------------------------------------------------------

SECRET = f"planted-{secrets.token_hex(8)}"
API = service(
    "api",
    command=[
        "bash",
        "-c",
        'echo "api: token $$API_TOKEN"; while true; do echo "api: tick $$API_TOKEN"; sleep 0.3; done',
    ],
    extra=["environment:", f"  API_TOKEN: {SECRET}"],
)
# Added by a second compose file for the failing runs: prints the token, and so does its health check.
SICK = service(
    "sick",
    command=["bash", "-c", 'echo "sick: token $$API_TOKEN"; exec sleep infinity'],
    health=["CMD", "bash", "-c", 'echo "auth refused $$API_TOKEN"; false'],
    retries=1,
    extra=["environment:", f"  API_TOKEN: {SECRET}"],
)
FAILING_TEST = """
    def test_fails_with_the_stack(dockyard_stack):
        assert dockyard_stack.exec("api", ["bash", "-c", "echo api: the test ran > /proc/1/fd/1"]) == 0
        assert False, "deliberate"
"""


def private_tree(root: Path) -> Iterator[str]:
    """Every directory under ``root`` (itself included) not 0700, every file not 0600."""
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        if path.is_dir() and mode != 0o700:
            yield f"{path}: directory mode {mode:04o}"
        elif path.is_file() and mode != 0o600:
            yield f"{path}: file mode {mode:04o}"


@pytest.mark.usefixtures("orphans_alone")  # the kept stack is taken down with `cleanup`
def test_files_are_private_and_the_planted_secret_never_shows(
    make_project: Projects, chaos_ports: PortClaims, chaos_tally: Tally
) -> None:
    project = make_project("secret", chaos_ports.take(10), compose(API), max_berths=1)
    (project.root / "sick.yaml").write_text(compose(SICK))
    with (project.root / "pyproject.toml").open("a") as fh:
        fh.write('\n[tool.pytest.ini_options]\naddopts = "-p no:cacheprovider -p no:randomly"\n')
    (project.root / "test_inner.py").write_text(textwrap.dedent(FAILING_TEST))
    settings = project.settings
    outputs: dict[str, str] = {}
    not_private: list[str] = []

    # A kept stack: `up --json`, `status --json`, `logs`; the lock dir and its files meanwhile.
    code, outputs["up"] = dockyard_cli(project, "up", "--json")
    assert code == 0, outputs["up"]
    try:
        not_private += private_tree(settings.lock_dir)
        assert {p.name for p in settings.lock_dir.iterdir()} >= {"berth-0.lock", "berth-0.json"}
        code, outputs["status"] = dockyard_cli(project, "status", "--json")
        assert code == 0, outputs["status"]
        code, outputs["logs"] = dockyard_cli(project, "logs")
        assert code == 0, outputs["logs"]
        assert f"api: token {MASK}" in outputs["logs"], "the service's line, masked, is in `dockyard logs`"
        # Not a vacuous search: unmasked, the service's own log holds the secret.
        api = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={settings.project_name(0)}").split()
        assert any(SECRET in docker("logs", cid) for cid in api), "the service never printed the secret"
    finally:
        code, outputs["down"] = dockyard_cli(project, "down")
    assert code == 0, outputs["down"]

    # A failing test under the plugin: the report section and the failure log file.
    code, outputs["plugin"] = run_session(project, [sys.executable, "-m", "pytest", "test_inner.py"], name="plugin")
    assert code == 1, outputs["plugin"]
    assert f"api: tick {MASK}" in outputs["plugin"], "the report section holds the masked log"
    assert list((settings.artifacts_dir / "tests").iterdir()), "no failure log file"

    # A stack that fails to start, kept for debugging: the error, the keep message, the bundle;
    # then `cleanup` takes the kept stack down.
    kept = clean_env(DOCKYARD_COMPOSE_FILES="compose.yaml,sick.yaml", DOCKYARD_KEEP_ON_FAILURE="true")
    code, outputs["kept"] = run_session(project, ["true"], env=kept, name="kept")
    assert code == dockyard.ExitCode.STACK_UNHEALTHY, outputs["kept"]
    assert f"auth refused {MASK}" in outputs["kept"], "the health check's output, masked, is in the error"
    assert "keep_on_failure" in outputs["kept"]
    code, outputs["cleanup"] = dockyard_cli(project, "cleanup")
    assert code == 0, outputs["cleanup"]

    not_private += private_tree(settings.artifacts_dir)
    bundles = [p for p in settings.artifacts_dir.iterdir() if p.is_dir() and p.name != "tests"]
    assert len(bundles) == 1, bundles
    assert {"sick.log", "sick.inspect.json", "api.log", "summary.txt"} <= {p.name for p in bundles[0].iterdir()}

    # Everything dockyard printed or wrote, and everything left in the project and the pool.
    written = {
        str(p): p.read_text(errors="replace")
        for root in (project.root, settings.lock_dir)
        for p in root.rglob("*")
        if p.is_file() and p.name not in ("compose.yaml", "sick.yaml")
    }
    shown = [name for name, text in {**outputs, **written}.items() if SECRET in text]
    chaos_tally.faults += 1
    assert not shown, f"the planted secret shows in: {shown}"
    assert not not_private, "\n".join(not_private)
    assert not pool_not_free(settings)
    assert not of_session(settings.project_name(0))
