"""`cleanup`'s policy (which engines, resources and lease records go) and its door, with a fake engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from dockyard.cli import cleanup as sweep
from dockyard.cli.tasks import cleanup
from dockyard.engine.endpoints import Engine
from dockyard.engine.labels import MANAGED, Resource
from dockyard.errors import DockerUnavailable, DockyardError, ExitCode
from dockyard.pool.berth import BerthPool
from dockyard.pool.lease import LeaseRecord, write_record
from dockyard.settings import Settings

GONE = "tcp://gone.invalid:2375"
ORPHAN = Resource("container", "c1", "demo-web-1", {MANAGED: "true", "dockyard.project": "demo"})  # no lock: orphaned


class FakeEngine:
    """preflight / find / remove of one answering engine; ``GONE`` does not answer."""

    def __init__(self, found: list[Resource]) -> None:
        self.found = found
        self.removed: list[Resource] = []

    def preflight(self, engine: Engine | None = None) -> object:
        if engine is not None and engine.endpoint == GONE:
            raise DockerUnavailable(f"the Docker daemon at {GONE} is unreachable", remedy="start it")
        return self

    def find(self, client: object) -> list[Resource]:
        return list(self.found)

    def remove(self, client: object, resources: list[Resource]) -> list[str]:
        self.removed += resources
        return []


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[Resource]], FakeEngine]:
    def install(found: list[Resource]) -> FakeEngine:
        fake = FakeEngine(found)
        for name in ("preflight", "find", "remove"):
            monkeypatch.setattr(sweep, name, getattr(fake, name))
        return fake

    return install


def stale_record(settings: Settings, index: int, engine: str) -> Path:
    """A lease record left by a dead holder of berth ``index`` whose stack ran on ``engine``."""
    pool = BerthPool(settings)
    pool.lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = pool.lock_path(index).with_suffix(".json")
    block = settings.port_block(index)
    write_record(path, LeaseRecord.for_current_process(index, settings.project_name(index), block, engine))
    return path


def test_an_engine_that_does_not_answer_is_skipped_and_its_stale_records_kept(
    make_settings: Callable[..., Settings], engine: Callable[[list[Resource]], FakeEngine]
) -> None:
    settings = make_settings(port_range="13000-13199", block_size=100)
    kept, cleared = stale_record(settings, 0, GONE), stale_record(settings, 1, "")
    fake = engine([ORPHAN])
    found = sweep.plan(settings)
    assert list(found.unreachable) == [GONE]
    assert found.several_engines  # the current engine and the one the stale lease ran on
    assert [res for res, _ in found.resources] == [ORPHAN]
    assert found.carry_out() == []
    assert fake.removed == [ORPHAN]
    assert kept.exists(), "the record of a stack on an engine that did not answer is how a later cleanup finds it"
    assert not cleared.exists()


def test_the_only_engine_not_answering_is_an_error(
    make_settings: Callable[..., Settings], engine: Callable[[list[Resource]], FakeEngine]
) -> None:
    settings = make_settings(port_range="13000-13199", block_size=100, engines=[GONE])
    engine([])
    with pytest.raises(DockerUnavailable, match="unreachable"):
        sweep.plan(settings)


def test_a_bad_age_names_the_option() -> None:
    assert sweep.older_than("2h") == 7200
    assert sweep.older_than("") is None
    with pytest.raises(DockyardError, match="--older-than: '5x' is not a duration"):
        sweep.older_than("5x")


def test_the_door_lists_removes_and_fails_on_a_skipped_engine(
    make_settings: Callable[..., Settings],
    engine: Callable[[list[Resource]], FakeEngine],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(port_range="13000-13199", block_size=100)
    monkeypatch.chdir(settings.root)
    stale_record(settings, 0, GONE)
    fake = engine([ORPHAN])
    cleanup(Context(), dry_run=True)
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith(f"would remove {ORPHAN} on ")
    assert "1 resource(s) to remove, 1 stale lease record(s) to clear" in err
    assert fake.removed == []
    with pytest.raises(Exit) as failed:
        cleanup(Context())
    assert failed.value.code == ExitCode.FAILURE
    assert f"skipped engine {GONE}" in capsys.readouterr().err
    assert fake.removed == [ORPHAN]
