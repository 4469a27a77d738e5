"""The memo of ``docker compose version``: used while the CLI and its plugin are unchanged."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.engine import compose_cli
from dockyard.engine.compose_cli import remember_version, remembered_version
from dockyard.errors import DockerUnavailable


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A docker CLI and a Compose plugin (files to identify), and a private lock directory."""
    cli = tmp_path / "bin" / "docker"
    plugin = tmp_path / "config" / "cli-plugins" / "docker-compose"
    for path in (cli, plugin):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"binary")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "config"))
    monkeypatch.delenv("DOCKYARD_CONFIG_CACHE", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: str(cli))
    monkeypatch.setattr(compose_cli, "default_lock_dir", lambda: str(tmp_path / "locks"))
    compose_cli._checked_compose.cache_clear()
    yield {"cli": cli, "plugin": plugin, "locks": tmp_path / "locks"}
    compose_cli._checked_compose.cache_clear()


def test_a_remembered_version_holds_while_cli_and_plugin_are_unchanged(tools: dict[str, Path]) -> None:
    assert remembered_version() is None
    remember_version((2, 40, 3))
    assert remembered_version() == (2, 40, 3)
    assert os.stat(tools["locks"]).st_mode & 0o077 == 0
    tools["plugin"].write_bytes(b"upgraded binary")
    assert remembered_version() is None
    remember_version((2, 41, 0))
    os.utime(tools["cli"], ns=(1, 1))
    assert remembered_version() is None


def test_without_a_plugin_file_compose_is_always_asked(tools: dict[str, Path]) -> None:
    tools["plugin"].unlink()
    remember_version((2, 40, 3))
    assert remembered_version() is None
    assert not (tools["locks"] / "compose-version.json").exists()


def test_the_memo_can_be_turned_off(tools: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    remember_version((2, 40, 3))
    monkeypatch.setenv("DOCKYARD_CONFIG_CACHE", "0")
    assert remembered_version() is None


@pytest.mark.parametrize("text", ["", "{", '{"key": 1}', '{"key": null, "version": "2.40.3"}', "[]"])
def test_an_unreadable_memo_is_a_miss(tools: dict[str, Path], text: str) -> None:
    tools["locks"].mkdir(mode=0o700)
    (tools["locks"] / "compose-version.json").write_text(text)
    assert remembered_version() is None


def test_a_memo_in_a_directory_open_to_others_is_not_trusted(tools: dict[str, Path]) -> None:
    remember_version((2, 40, 3))
    tools["locks"].chmod(0o777)
    assert remembered_version() is None


def test_compose_is_asked_once_then_remembered(tools: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def installed() -> tuple[int, int, int]:
        asked.append("compose version")
        return (2, 40, 3)

    monkeypatch.setattr(compose_cli, "installed_compose_version", installed)
    assert compose_cli.compose_version() == (2, 40, 3)
    compose_cli._checked_compose.cache_clear()  # a new process
    assert compose_cli.compose_version() == (2, 40, 3)
    assert asked == ["compose version"]


def test_a_remembered_old_compose_is_still_refused(tools: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    remember_version((2, 20, 0))
    monkeypatch.setattr(compose_cli, "installed_compose_version", lambda: pytest.fail("Compose was asked"))
    with pytest.raises(DockerUnavailable, match=r"Docker Compose 2\.20\.0 is too old"):
        compose_cli.compose_version()
