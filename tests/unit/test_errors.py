"""Errors keep their class and evidence across processes: pickled, and through the keeper's JSON line.

Every subclass of :class:`DockyardError` found once the whole package is imported is round-tripped,
so a new error class fails here until it has an example below.
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dockyard
from dockyard.errors import (
    BaseImageUnavailable,
    BuildError,
    ComposeError,
    ConfigError,
    CorruptRecord,
    DockerUnavailable,
    DockyardError,
    ExitCode,
    LockDirError,
    NoFreeBerth,
    StackUnhealthy,
    TeardownIncomplete,
)
from dockyard.sessions import keeper, keeper_client
from dockyard.settings import load_settings

EXAMPLES: dict[type[DockyardError], Callable[[], DockyardError]] = {
    DockyardError: lambda: DockyardError("no stack of this project is up", remedy="start one with `dockyard up`"),
    ConfigError: lambda: ConfigError("block_size", 0, "must be greater than 0", source="DOCKYARD_BLOCK_SIZE"),
    LockDirError: lambda: LockDirError("/run/dockyard is writable by others", remedy="chmod 700 it"),
    DockerUnavailable: lambda: DockerUnavailable("Compose v2 is missing", remedy="run `dockyard setup`"),
    BaseImageUnavailable: lambda: BaseImageUnavailable(
        "no registry answered and no Debian mirror is known", remedy="set DOCKYARD_DEBIAN_MIRROR"
    ),
    NoFreeBerth: lambda: NoFreeBerth("no free berth within 2s", lock_dir="/var/locks", holders=["berth 0: pid 7"]),
    StackUnhealthy: lambda: StackUnhealthy("db did not become healthy", services=["db", "api"], bundle="artifacts/db"),
    ComposeError: lambda: ComposeError("compose up", ["docker", "compose", "up"], 17, "line 1\nno such image\n"),
    BuildError: lambda: BuildError("building demo/api failed:\nstep 3", remedy="fix docker/api/Dockerfile"),
    CorruptRecord: lambda: CorruptRecord(Path("/var/locks/berth-3.json"), "ValueError: Expecting value"),
    TeardownIncomplete: lambda: TeardownIncomplete(
        "the teardown of demo-20000 left volume demo-20000_data", remedy="run `dockyard cleanup`"
    ),
}


def _subclasses(root: type[DockyardError]) -> Iterator[type[DockyardError]]:
    yield root
    for sub in root.__subclasses__():
        yield from _subclasses(sub)


def _every_error_class() -> list[type[DockyardError]]:
    # Import every module first, so an error class defined anywhere in the package is found.
    for module in pkgutil.walk_packages(dockyard.__path__, "dockyard."):
        importlib.import_module(module.name)
    return sorted(set(_subclasses(DockyardError)), key=lambda kind: kind.__qualname__)


ERROR_CLASSES = _every_error_class()


def _example(kind: type[DockyardError]) -> DockyardError:
    make = EXAMPLES.get(kind)
    assert make is not None, f"add an example of {kind.__qualname__} to EXAMPLES in {__file__}"
    example = make()
    example.add_note("evidence: the last log lines")
    return example


def _same(restored: BaseException, original: DockyardError) -> None:
    assert type(restored) is type(original)
    assert isinstance(restored, DockyardError)
    assert str(restored) == str(original)
    assert restored.args == original.args
    assert (restored.message, restored.remedy, restored.exit_code) == (
        original.message,
        original.remedy,
        original.exit_code,
    )
    assert vars(restored) == vars(original)  # the class's own evidence too, with its types


def test_every_error_lives_in_errors_py() -> None:
    assert {kind.__module__ for kind in ERROR_CLASSES} == {"dockyard.errors"}


@pytest.mark.parametrize("kind", ERROR_CLASSES, ids=lambda kind: kind.__qualname__)
def test_pickle_round_trip(kind: type[DockyardError]) -> None:
    original = _example(kind)

    _same(pickle.loads(pickle.dumps(original)), original)  # noqa: S301 - our own bytes


@pytest.mark.parametrize("kind", ERROR_CLASSES, ids=lambda kind: kind.__qualname__)
def test_json_round_trip(kind: type[DockyardError]) -> None:
    original = _example(kind)

    _same(DockyardError.from_json(json.loads(json.dumps(original.to_json()))), original)


def test_standard_bases_are_kept() -> None:
    assert isinstance(DockyardError.from_json(EXAMPLES[NoFreeBerth]().to_json()), TimeoutError)
    assert isinstance(DockyardError.from_json(EXAMPLES[CorruptRecord]().to_json()), ValueError)
    assert isinstance(pickle.loads(pickle.dumps(EXAMPLES[ConfigError]())), ValueError)  # noqa: S301 - our own bytes


def test_an_unknown_class_arrives_as_the_root_with_its_exit_code() -> None:
    data = {**EXAMPLES[NoFreeBerth]().to_json(), "type": "dockyard.errors.FromANewerVersion"}

    restored = DockyardError.from_json(data)

    assert type(restored) is DockyardError
    assert restored.exit_code is ExitCode.NO_FREE_BERTH
    assert str(restored) == str(EXAMPLES[NoFreeBerth]())


def test_values_json_cannot_carry_arrive_as_text() -> None:
    original = ConfigError("when", object(), "must be a date")

    restored = DockyardError.from_json(json.loads(json.dumps(original.to_json())))

    assert isinstance(restored, ConfigError)
    assert restored.value == str(original.value)


class _FakeKeeper:
    """What ``subprocess.Popen`` returns for the keeper: its stdout lines, then its exit."""

    def __init__(self, lines: str) -> None:
        self.stdout = io.StringIO(lines)
        self.returncode = 6

    def wait(self) -> int:
        return self.returncode


def test_the_keepers_error_reaches_up_as_its_own_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.dockyard]\nblock_size = 0\n")
    (tmp_path / "compose.yaml").write_text("services: {}\n")

    assert keeper.main(str(tmp_path), "build") == ExitCode.BAD_CONFIGURATION  # fails before any Docker
    line = capsys.readouterr().out
    settings = load_settings(tmp_path, env={"DOCKYARD_BLOCK_SIZE": "1"})

    def popen(*_args: Any, **_kwargs: Any) -> _FakeKeeper:
        return _FakeKeeper(line)

    monkeypatch.setattr("dockyard.sessions.keeper_client.subprocess.Popen", popen)
    with pytest.raises(ConfigError) as info:
        keeper_client.start_keeper(settings)

    assert (info.value.key, info.value.value, info.value.source) == ("block_size", 0, "pyproject.toml")
    assert info.value.exit_code is ExitCode.BAD_CONFIGURATION
