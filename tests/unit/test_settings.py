"""``[tool.dockyard]``: defaults, ``DOCKYARD_<KEY>`` overrides, and every bad input named."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from dockyard.errors import ConfigError, ExitCode
from dockyard.portblock import PortBlock
from dockyard.settings import KEYS, Settings, load_settings, reference_markdown
from dockyard.stack.compose import ComposeModel

WriteProject = Callable[..., Path]


def test_defaults(write_project: WriteProject, tmp_path: Path) -> None:
    root = write_project(tmp_path, {"compose_files": ["compose.yaml"]})

    s = load_settings(root, env={})

    assert s.root == tmp_path.resolve()
    assert s.compose_files == (tmp_path.resolve() / "compose.yaml",)
    assert s.profiles == ()
    assert s.project_prefix == "dockyard"
    assert s.port_range == PortBlock.between(20000, 29999)
    assert s.block_size == 100
    assert s.max_berths == 16  # 100 blocks fit; capped by the bridge address pools
    assert s.lock_dir == Path(tempfile.gettempdir()) / f"dockyard-{os.getuid()}"
    assert s.acquire_timeout == 120.0
    assert s.health_timeout == 120.0
    assert s.stop_timeout == 1
    assert s.artifacts_dir == tmp_path.resolve() / ".dockyard" / "artifacts"
    assert s.keep_on_failure is False
    assert s.skip_missing_docker is False
    assert s.base_image_arg == "BASE_IMAGE"
    assert s.sources["compose_files"] == "pyproject.toml"
    assert {k for k, v in s.sources.items() if v == "default"} == {k.name for k in KEYS} - {"compose_files"}


def test_no_table_means_all_defaults(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    (tmp_path / "compose.yaml").write_text("services: {}\n")

    s = load_settings(tmp_path, env={})

    assert s.compose_files == (tmp_path.resolve() / "compose.yaml",)
    assert set(s.sources.values()) == {"default"}


def test_file_values_are_read(write_project: WriteProject, tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("services: {}\n")
    root = write_project(
        tmp_path,
        {
            "compose_files": ["compose.yaml", "a.yml"],
            "profiles": ["debug"],
            "project_prefix": "demo",
            "port_range": "22000-22099",
            "block_size": 25,
            "lock_dir": "locks",
            "acquire_timeout": 3,
            "stop_timeout": 0,
            "keep_on_failure": True,
        },
    )

    s = load_settings(root, env={})

    assert s.compose_files == (root.resolve() / "compose.yaml", root.resolve() / "a.yml")
    assert s.profiles == ("debug",)
    assert s.port_range == PortBlock.between(22000, 22099)
    assert s.max_berths == 4  # as many as fit
    assert s.lock_dir == root.resolve() / "locks"  # relative to the project root
    assert s.acquire_timeout == 3.0
    assert isinstance(s.acquire_timeout, float)
    assert s.stop_timeout == 0
    assert s.keep_on_failure is True
    assert s.port_block(0) == PortBlock(22000, 25)
    assert s.port_block(3) == PortBlock(22075, 25)
    assert s.project_name(2) == "demo-22050"


def test_env_overrides_file(write_project: WriteProject, tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("services: {}\n")
    root = write_project(
        tmp_path,
        {"project_prefix": "fromfile", "block_size": 50, "keep_on_failure": True, "skip_missing_docker": False},
    )
    env = {
        "DOCKYARD_PROJECT_PREFIX": "fromenv",
        "DOCKYARD_COMPOSE_FILES": " compose.yaml , a.yml ,",
        "DOCKYARD_PORT_RANGE": " 23000 - 23999 ",
        "DOCKYARD_BLOCK_SIZE": "10",
        "DOCKYARD_MAX_BERTHS": "7",
        "DOCKYARD_ACQUIRE_TIMEOUT": "2.5",
        "DOCKYARD_KEEP_ON_FAILURE": "off",
        "DOCKYARD_SKIP_MISSING_DOCKER": "YES",
        "DOCKYARD_LOCK_DIR": "/somewhere/locks",
        "UNRELATED": "ignored",
    }

    s = load_settings(root, env=env)

    assert s.project_prefix == "fromenv"
    assert s.compose_files == (root.resolve() / "compose.yaml", root.resolve() / "a.yml")
    assert s.port_range == PortBlock.between(23000, 23999)
    assert s.block_size == 10
    assert s.max_berths == 7
    assert s.acquire_timeout == 2.5
    assert s.keep_on_failure is False
    assert s.skip_missing_docker is True
    assert s.lock_dir == Path("/somewhere/locks")
    assert s.sources["project_prefix"] == "DOCKYARD_PROJECT_PREFIX"
    assert s.sources["stop_timeout"] == "default"


class Bad(NamedTuple):
    """A bad configuration and what its ConfigError must name."""

    id: str
    table: dict[str, Any]  # [tool.dockyard]
    env: dict[str, str]
    key: str
    value: object


BAD = [
    Bad("unknown key", {"colour": "red"}, {}, "colour", "red"),
    Bad("string for int", {"block_size": "ten"}, {}, "block_size", "ten"),
    Bad("float for int", {"stop_timeout": 1.5}, {}, "stop_timeout", 1.5),
    Bad("bool for int", {"block_size": True}, {}, "block_size", True),
    Bad("int for bool", {"keep_on_failure": 1}, {}, "keep_on_failure", 1),
    Bad("string for bool in file", {"keep_on_failure": "yes"}, {}, "keep_on_failure", "yes"),
    Bad("list of ints for compose_files", {"compose_files": [1, 2]}, {}, "compose_files", [1, 2]),
    Bad("string for list", {"compose_files": "compose.yaml"}, {}, "compose_files", "compose.yaml"),
    Bad("empty string", {"project_prefix": ""}, {}, "project_prefix", ""),
    Bad("env bool maybe", {}, {"DOCKYARD_KEEP_ON_FAILURE": "maybe"}, "keep_on_failure", "maybe"),
    Bad("env int not a number", {}, {"DOCKYARD_BLOCK_SIZE": "lots"}, "block_size", "lots"),
    Bad("env float not a number", {}, {"DOCKYARD_ACQUIRE_TIMEOUT": "soon"}, "acquire_timeout", "soon"),
    Bad("port_range past 65535", {"port_range": "65000-65536"}, {}, "port_range", "65000-65536"),
    Bad("port_range low == high", {"port_range": "30000-30000"}, {}, "port_range", "30000-30000"),
    Bad("port_range low > high", {"port_range": "30010-30000"}, {}, "port_range", "30010-30000"),
    Bad("port_range below 1024", {"port_range": "80-2000"}, {}, "port_range", "80-2000"),
    Bad("port_range malformed", {"port_range": "20000:29999"}, {}, "port_range", "20000:29999"),
    Bad("port_range one number", {"port_range": "20000"}, {}, "port_range", "20000"),
    Bad("port_range not a string", {"port_range": 20000}, {}, "port_range", 20000),
    Bad("env port_range malformed", {}, {"DOCKYARD_PORT_RANGE": "a-b"}, "port_range", "a-b"),
    Bad("block_size 0", {"block_size": 0}, {}, "block_size", 0),
    Bad("block_size negative", {"block_size": -5}, {}, "block_size", -5),
    Bad("block_size larger than range", {"port_range": "30000-30009", "block_size": 11}, {}, "block_size", 11),
    Bad(
        "max_berths more than fit",
        {"port_range": "30000-30099", "block_size": 10, "max_berths": 11},
        {},
        "max_berths",
        11,
    ),
    Bad("max_berths 0", {"max_berths": 0}, {}, "max_berths", 0),
    Bad("compose file missing", {"compose_files": ["compose.yaml", "nope.yml"]}, {}, "compose_files", "nope.yml"),
    Bad("prefix uppercase", {"project_prefix": "Demo"}, {}, "project_prefix", "Demo"),
    Bad("prefix with spaces", {"project_prefix": "my project"}, {}, "project_prefix", "my project"),
    Bad("prefix starts with dash", {"project_prefix": "-demo"}, {}, "project_prefix", "-demo"),
    Bad("prefix too long", {"project_prefix": "a" * 41}, {}, "project_prefix", "a" * 41),
    Bad("negative stop_timeout", {"stop_timeout": -1}, {}, "stop_timeout", -1),
    Bad("negative acquire_timeout", {"acquire_timeout": -0.5}, {}, "acquire_timeout", -0.5),
    Bad("zero health_timeout", {"health_timeout": 0}, {}, "health_timeout", 0),
    Bad("zero settle", {"settle": 0}, {}, "settle", 0),
    Bad("env settle negative", {}, {"DOCKYARD_SETTLE": "-1"}, "settle", "-1"),
    Bad("runner not a mode", {"runner": "docker"}, {}, "runner", "docker"),
    Bad("env runner not a mode", {}, {"DOCKYARD_RUNNER": "dind"}, "runner", "dind"),
]


@pytest.mark.parametrize("case", BAD, ids=[case.id for case in BAD])
def test_bad_input_names_key_and_value(write_project: WriteProject, tmp_path: Path, case: Bad) -> None:
    root = write_project(tmp_path, case.table)
    key, value = case.key, case.value

    with pytest.raises(ConfigError) as info:
        load_settings(root, env=case.env)

    err = info.value
    assert err.key == key
    assert err.value == value
    assert f"{key} = {value!r}" in str(err)
    assert err.exit_code is ExitCode.BAD_CONFIGURATION
    assert err.remedy is not None
    assert f"DOCKYARD_{key.upper()}" in err.remedy
    for env_key in case.env:
        assert f"(from {env_key})" in str(err)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.dockyard]\nblock_size = = 3\n")

    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_settings(tmp_path, env={})

    assert info.value.key == "pyproject.toml"
    assert str(path) in str(info.value)


def test_table_that_is_not_a_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool]\ndockyard = "on"\n')

    with pytest.raises(ConfigError, match="must be a table") as info:
        load_settings(tmp_path, env={})

    assert info.value.key == "tool.dockyard"


def test_reference_lists_every_field() -> None:
    text = reference_markdown()

    rows = text.splitlines()[2:]
    assert len(rows) == len(KEYS)
    for k, row in zip(KEYS, rows, strict=True):
        assert f"`{k.name}`" in row
        assert f"`DOCKYARD_{k.name.upper()}`" in row
        assert k.help in row


def test_block_smaller_than_published_ports(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(port_range="30000-30001", block_size=2)
    model = ComposeModel(
        settings,
        {
            "services": {
                "app": {"ports": [{"target": 80, "protocol": "tcp"}, {"target": 443, "protocol": "tcp"}]},
                "db": {"ports": [{"target": 5432, "published": "5432", "protocol": "tcp"}]},
            }
        },
    )

    with pytest.raises(ConfigError, match="publishes 3 ports") as info:
        model.port_map(settings.port_block(0))

    assert info.value.key == "block_size"
    assert info.value.value == 2


def test_every_field_but_root_and_sources_is_a_declared_key() -> None:
    assert [f.name for f in fields(Settings)] == ["root", *(k.name for k in KEYS), "sources"]
    assert all(k.env == f"DOCKYARD_{k.name.upper()}" for k in KEYS)
    assert {k.kind for k in KEYS} == {"str", "int", "float", "bool", "list", "range", "path", "table"}


def test_unknown_key_lists_the_known_ones_in_declaration_order(write_project: WriteProject, tmp_path: Path) -> None:
    root = write_project(tmp_path, {"colour": "red"})

    with pytest.raises(ConfigError) as info:
        load_settings(root, env={})

    assert info.value.allowed == f"unknown key; known keys: {', '.join(k.name for k in KEYS)}"


def test_engines_runner_and_paths(write_project: WriteProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path, {"artifacts_dir": str(tmp_path / "bundles"), "runner": "container"})
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # expanduser reads the process's HOME
    env = {
        "DOCKYARD_ENGINES": "unix:///var/run/docker.sock, ssh://ci@builder",
        "DOCKYARD_LOCK_DIR": "~/locks",
        "DOCKYARD_PROFILES": "",
        "DOCKYARD_KEEP_ON_FAILURE": "",
    }

    s = load_settings(root, env=env)

    assert s.engines == ("unix:///var/run/docker.sock", "ssh://ci@builder")
    assert s.runner == "container"
    assert s.artifacts_dir == tmp_path / "bundles"  # absolute: not under the root
    assert s.lock_dir == tmp_path / "home" / "locks"
    assert s.profiles == ()  # an empty variable is an empty list
    assert s.keep_on_failure is False  # and an empty flag is false
    assert isinstance(s.health_timeout, float)
    assert (s.sources["engines"], s.sources["runner"]) == ("DOCKYARD_ENGINES", "pyproject.toml")


def test_defaults_of_the_later_keys(write_project: WriteProject, tmp_path: Path) -> None:
    s = load_settings(write_project(tmp_path, {"compose_files": []}), env={})

    assert (s.runner, s.engines, s.compose_files) == ("auto", (), ())


@pytest.mark.parametrize(
    ("table", "env", "allowed"),
    [
        ({"engines": ["docker.sock"]}, {}, "must be engine endpoints like"),
        ({}, {"DOCKYARD_ENGINES": "tcp://ok:2375,nope"}, "not 'nope'"),
    ],
)
def test_engines_that_are_no_endpoints(
    write_project: WriteProject, tmp_path: Path, table: dict[str, Any], env: dict[str, str], allowed: str
) -> None:
    root = write_project(tmp_path, table)

    with pytest.raises(ConfigError) as info:
        load_settings(root, env=env)

    assert info.value.key == "engines"
    assert allowed in info.value.allowed
