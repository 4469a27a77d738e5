"""Berths: exclusive under a race, released by the kernel on SIGKILL, and honest about why not.

Each test draws its own port range from 30000-30999 (below the ephemeral ports, 32768-, so no
client socket squats them) and the tests never contend with each
other; every pool lives in its own ``tmp_path`` lock directory. No Docker: ``reaper=None``
or a recording callback.
"""

from __future__ import annotations

import getpass
import json
import multiprocessing
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.context import ForkContext, SpawnContext
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from dockyard.dirs import ensure_lock_dir
from dockyard.errors import CorruptRecord, ExitCode, LockDirError, NoFreeBerth
from dockyard.pool.berth import BerthPool, State, lock_is_held
from dockyard.pool.lease import LeaseRecord, read_record
from dockyard.pool.leasing import acquire_from
from dockyard.portblock import PortBlock
from dockyard.settings import Settings, load_settings

MakeSettings = Callable[..., Settings]


def _mp_context() -> ForkContext | SpawnContext:
    # fork starts the racers in milliseconds (no re-import of the package per child), but forking a
    # multi-threaded process (e.g. an xdist worker, which runs execnet threads) can deadlock and
    # warns on 3.12+; there, pay for spawn.
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


@pytest.fixture
def reaped() -> list[tuple[int, str, Path]]:
    """The calls a recording reaper received."""
    return []


def _recorder(calls: list[tuple[int, str, Path]]) -> Callable[[int, str, Path], None]:
    def reaper(index: int, project: str, lock_path: Path) -> None:
        calls.append((index, project, lock_path))

    return reaper


def test_acquire_writes_lease_and_release_removes_it(make_settings: MakeSettings) -> None:
    settings = make_settings(project_prefix="unit", port_range="30100-30139", block_size=10)
    pool = BerthPool(settings)
    before = time.time()

    berth = acquire_from([pool], timeout=1, reaper=None)

    assert (berth.index, berth.project, berth.port_block) == (0, "unit-30100", PortBlock(30100, 10))
    assert berth.lock_path == settings.lock_dir / "berth-0.lock"
    assert berth.held
    assert berth.stale is None
    assert lock_is_held(berth.lock_path)
    assert stat.S_IMODE(berth.record_path.stat().st_mode) == 0o600
    on_disk = json.loads(berth.record_path.read_text())
    assert on_disk["pid"] == os.getpid()
    assert on_disk["user"] == getpass.getuser()
    assert on_disk["host"] == socket.gethostname()
    assert on_disk["cwd"] == os.getcwd()
    assert on_disk["command"] == " ".join(sys.argv)[:300]
    assert before <= on_disk["started"] <= time.time()
    assert on_disk["project"] == "unit-30100"
    assert on_disk["index"] == 0
    assert on_disk["port_block"] == [30100, 30109]
    assert read_record(berth.record_path) == berth.record
    assert str(os.getpid()) in berth.record.describe()

    statuses = list(pool.statuses())
    assert [s.state for s in statuses] == [State.LIVE, State.FREE, State.FREE, State.FREE]
    assert statuses[0].record == berth.record

    berth.release()

    assert not berth.record_path.exists()
    assert not berth.held
    assert not lock_is_held(berth.lock_path)
    assert [s.state for s in pool.statuses()] == [State.FREE] * 4
    berth.release()  # idempotent


def test_berths_get_distinct_projects_and_disjoint_blocks(make_settings: MakeSettings) -> None:
    settings = make_settings(port_range="30140-30179", block_size=10)
    pool = BerthPool(settings)

    berths = [acquire_from([pool], timeout=1) for _ in range(settings.max_berths)]
    try:
        assert [b.index for b in berths] == [0, 1, 2, 3]
        assert len({b.project for b in berths}) == 4
        assert [b.project for b in berths] == [f"dockyard-{b.port_block.start}" for b in berths]
        ports = [p for b in berths for p in b.port_block]
        assert len(ports) == len(set(ports)) == 40
        assert all(30140 <= p <= 30179 for p in ports)
        assert [s.state for s in pool.statuses()] == [State.LIVE] * 4
    finally:
        for b in berths:
            b.release()


def test_context_manager_releases(make_settings: MakeSettings) -> None:
    pool = BerthPool(make_settings(port_range="30180-30199", block_size=10))

    with acquire_from([pool], timeout=1) as berth:
        assert lock_is_held(berth.lock_path)

    assert not lock_is_held(berth.lock_path)
    assert not berth.record_path.exists()
    assert acquire_from([pool], timeout=0).index == 0  # the same berth is free again


def test_no_reaper_call_for_a_clean_berth(make_settings: MakeSettings, reaped: list[tuple[int, str, Path]]) -> None:
    pool = BerthPool(make_settings(port_range="30200-30219", block_size=10))

    with acquire_from([pool], timeout=1, reaper=_recorder(reaped)):
        pass

    assert reaped == []


def _race_worker(root: str, work: str, rounds: int, name: int, go: Event) -> None:
    """One racer: ``rounds`` times acquire, mark the berth occupied, hold briefly, unmark, release."""
    pool = BerthPool(load_settings(root, env={}))
    result: dict[str, list[object]] = {"acquired": [], "timeouts": [], "violations": []}
    if not go.wait(timeout=30):
        raise RuntimeError("the start signal never came")
    for _ in range(rounds):
        try:
            berth = acquire_from([pool], timeout=10, reaper=None)
        except NoFreeBerth as exc:
            result["timeouts"].append(str(exc))
            continue
        marker = Path(work) / f"occupied-{berth.index}"
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            result["violations"].append(f"berth {berth.index} already occupied when pid {os.getpid()} got it")
            berth.release()
            continue
        os.close(fd)
        record = read_record(berth.record_path)
        if record is None or record.pid != os.getpid():
            result["violations"].append(f"berth {berth.index}: record {record} is not pid {os.getpid()}'s")
        time.sleep(0.005)  # hold briefly so holders overlap in time
        os.unlink(marker)  # unmark before the release, or the next holder would see our marker
        berth.release()
        result["acquired"].append(berth.index)
    (Path(work) / f"result-{name}.json").write_text(json.dumps(result))


def test_race_sixteen_processes_four_berths(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = make_settings(port_range="30300-30339", block_size=10)
    assert settings.max_berths == 4
    work = tmp_path / "work"
    work.mkdir()
    racers, rounds = 16, 10
    ctx = _mp_context()
    go = ctx.Event()
    procs = [
        ctx.Process(target=_race_worker, args=(str(settings.root), str(work), rounds, n, go)) for n in range(racers)
    ]
    for p in procs:
        p.start()
    try:
        go.set()
        for p in procs:
            p.join(timeout=60)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()

    assert [p.exitcode for p in procs] == [0] * racers
    results = [json.loads((work / f"result-{n}.json").read_text()) for n in range(racers)]
    violations = [v for r in results for v in r["violations"]]
    assert violations == []
    acquired = [i for r in results for i in r["acquired"]]
    timeouts = [t for r in results for t in r["timeouts"]]
    assert len(acquired) + len(timeouts) == racers * rounds  # every round got a berth or a clear timeout
    assert set(acquired) <= {0, 1, 2, 3}
    for message in timeouts:
        assert "no free berth among 4" in message
        assert all(f"berth {i} (dockyard-{30300 + 10 * i})" in message for i in range(4))
    # 10 s per acquire is far beyond a 5 ms hold: a timeout here would mean starvation.
    assert timeouts == []
    assert len(acquired) == 160
    assert list(settings.lock_dir.glob("*.json")) == []  # every lease record removed on release


def _hold_forever(root: str, acquired: Event) -> None:
    """Acquire a berth, say so, then block until killed."""
    berth = acquire_from([BerthPool(load_settings(root, env={}))], timeout=5)
    acquired.set()
    time.sleep(120)  # the parent SIGKILLs us long before this ends
    berth.release()  # keeps ``berth`` alive until then: a collected FileLock releases itself


def test_sigkill_leaves_a_stale_berth_for_the_next_holder(
    make_settings: MakeSettings, reaped: list[tuple[int, str, Path]]
) -> None:
    settings = make_settings(port_range="30400-30439", block_size=10)
    pool = BerthPool(settings)
    ctx = _mp_context()
    acquired = ctx.Event()
    child = ctx.Process(target=_hold_forever, args=(str(settings.root), acquired))
    child.start()
    try:
        assert acquired.wait(timeout=30), "the child never acquired a berth"
        assert lock_is_held(pool.lock_path(0))
        assert next(pool.statuses()).state is State.LIVE
    finally:
        child.kill()  # SIGKILL: no atexit, no finally, no release
        child.join(timeout=10)
    assert child.exitcode == -9

    assert not lock_is_held(pool.lock_path(0))  # the kernel dropped the flock with the process
    status = next(pool.statuses())
    assert status.state is State.STALE
    assert status.record is not None
    assert status.record.pid == child.pid
    assert status.reason == ""

    berth = acquire_from([pool], timeout=1, reaper=_recorder(reaped))
    try:
        assert berth.index == 0
        assert berth.stale == status.record
        assert berth.stale is not None
        assert berth.stale.pid == child.pid
        assert reaped == [(0, settings.project_name(0), pool.lock_path(0))]
        assert read_record(berth.record_path) == berth.record  # ours replaced the dead holder's
        assert berth.record.lease_id != status.record.lease_id
    finally:
        berth.release()


def test_foreign_listener_blocks_a_berth(make_settings: MakeSettings) -> None:
    settings = make_settings(port_range="30500-30539", block_size=10)
    pool = BerthPool(settings)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 30503))
        listener.listen()

        first = next(pool.statuses())
        assert first.state is State.BLOCKED
        assert "30503" in first.reason

        with acquire_from([pool], timeout=1, reaper=None) as berth:
            assert berth.index == 1
            assert berth.port_block == PortBlock(30510, 10)
            assert [s.state for s in pool.statuses()] == [State.BLOCKED, State.LIVE, State.FREE, State.FREE]

    assert not lock_is_held(pool.lock_path(0))  # a blocked berth's lock is not kept


def test_timeout_names_every_holder(make_settings: MakeSettings) -> None:
    settings = make_settings(port_range="30600-30619", block_size=10)
    pool = BerthPool(settings)
    held = [acquire_from([pool], timeout=1), acquire_from([pool], timeout=1)]
    try:
        start = time.monotonic()
        with pytest.raises(NoFreeBerth) as info:
            acquire_from([pool], timeout=0.3)
        elapsed = time.monotonic() - start
    finally:
        for b in held:
            b.release()

    err = info.value
    assert isinstance(err, TimeoutError)
    assert 0.3 <= elapsed < 5
    assert err.exit_code is ExitCode.NO_FREE_BERTH
    assert err.lock_dir == str(settings.lock_dir)
    text = str(err)
    assert "no free berth among 2" in text
    assert "after 0.3s" in text
    for b in held:
        assert f"berth {b.index} ({b.project}): held by pid {os.getpid()}" in text
    assert err.remedy is not None
    assert "dockyard cleanup" in err.remedy


def test_lock_dir_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "a" / "locks"

    assert ensure_lock_dir(path) == path

    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_acquire_creates_the_lock_dir(make_settings: MakeSettings) -> None:
    settings = make_settings(port_range="30700-30719", block_size=10)
    assert not settings.lock_dir.exists()

    with acquire_from([BerthPool(settings)], timeout=1):
        assert stat.S_IMODE(settings.lock_dir.stat().st_mode) == 0o700


def test_lock_dir_open_to_others_is_refused(make_settings: MakeSettings) -> None:
    settings = make_settings(port_range="30720-30739", block_size=10)
    settings.lock_dir.mkdir()
    settings.lock_dir.chmod(0o755)

    with pytest.raises(LockDirError, match="mode 0755") as info:
        acquire_from([BerthPool(settings)], timeout=1)

    assert str(settings.lock_dir) in info.value.message
    assert info.value.remedy is not None
    assert f"chmod 700 {settings.lock_dir}" in info.value.remedy
    assert list(settings.lock_dir.iterdir()) == []  # refused before any lock was taken


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory to another user")
def test_lock_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "locks"
    path.mkdir(mode=0o700)
    os.chown(path, 65534, 65534)

    with pytest.raises(LockDirError, match="owned by uid 65534") as info:
        ensure_lock_dir(path)

    assert info.value.remedy is not None
    assert "directory you own" in info.value.remedy


def test_lock_dir_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")

    with pytest.raises(LockDirError, match="cannot be created"):
        ensure_lock_dir(tmp_path / "file" / "locks")


def _half_of_a_real_record(pool: BerthPool) -> bytes:
    with acquire_from([pool], timeout=1) as berth:
        whole = berth.record_path.read_bytes()
    return whole[: len(whole) // 2]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(b"{not json", id="garbage"),
        pytest.param(None, id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param(b'{"pid": 1}', id="missing-keys"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(b"null", id="null"),
    ],
)
def test_corrupt_record(make_settings: MakeSettings, reaped: list[tuple[int, str, Path]], damage: bytes | None) -> None:
    settings = make_settings(port_range="30800-30839", block_size=10)
    pool = BerthPool(settings)
    ensure_lock_dir(settings.lock_dir)
    pool.lock_path(0).touch()  # a lock file a dead holder left, free now
    record_path = pool.lock_path(0).with_suffix(".json")
    record_path.write_bytes(_half_of_a_real_record(pool) if damage is None else damage)

    with pytest.raises(CorruptRecord) as info:
        read_record(record_path)
    assert info.value.path == record_path
    assert "corrupt" in str(info.value)

    status = next(pool.statuses())
    assert status.state is State.STALE
    assert status.record is None
    assert "corrupt" in status.reason

    with acquire_from([pool], timeout=1, reaper=_recorder(reaped)) as berth:
        assert berth.index == 0
        assert berth.stale is None  # a corrupt record is never trusted
        assert reaped == [(0, settings.project_name(0), pool.lock_path(0))]  # but still reaped by label
        assert isinstance(read_record(record_path), LeaseRecord)  # replaced by ours
    assert not record_path.exists()
