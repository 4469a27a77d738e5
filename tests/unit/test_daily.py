"""The daily loop without Docker: state slots, port variables, watch plans, kept markers."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from dockyard.errors import DockyardError
from dockyard.pool.lease import LeaseRecord
from dockyard.portblock import PortBlock
from dockyard.sessions import keep, keeper_client
from dockyard.sessions.env import variable, write_env_file
from dockyard.sessions.keeper_client import KEEPER_PATH, fork_keeper, is_keeper, keeper_answer, owner_of
from dockyard.sessions.reuse import STATE_SLOTS, state_slot
from dockyard.sessions.watch import Plan
from dockyard.settings import Settings
from dockyard.stack.stack import Stack


def _stack(tmp_path: Path, timeout: float = 0.2) -> Stack:
    """Enough of a kept stack for the state slots: its berth's lock path, index and the timeout."""
    berth = SimpleNamespace(lock_path=tmp_path / "berth-3.lock", index=3)
    return cast(Stack, SimpleNamespace(berth=berth, settings=SimpleNamespace(acquire_timeout=timeout)))


def test_a_second_run_waits_for_slot_zero_and_is_told_who_has_it(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    heard: list[str] = []
    with state_slot(stack, worker=False) as first:
        assert first is None  # slot 0: the services' own databases
        second = state_slot(stack, worker=False, progress=heard.append)
        with pytest.raises(DockyardError, match=rf"pid {os.getpid()} .* is testing against it") as exc:
            second.__enter__()
        assert "--dockyard-no-reuse" in (exc.value.remedy or "")
        assert heard
        assert heard[0].startswith("waiting for berth 3's state")
    with state_slot(stack, worker=False) as again:  # released with the block
        assert again is None


def test_workers_get_disjoint_slots_up_to_the_redis_databases(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    names: list[str | None] = []
    holders = [state_slot(stack, worker=True) for _ in range(STATE_SLOTS)]
    names = [h.__enter__() for h in holders]
    try:
        assert names == [f"r{k}" for k in range(1, STATE_SLOTS + 1)]
        one_more = state_slot(stack, worker=True)
        with pytest.raises(DockyardError, match="all 15 worker state slots of berth 3 are in use"):
            one_more.__enter__()
    finally:
        for h in holders:
            h.__exit__(None, None, None)
    modes = {oct(p.stat().st_mode & 0o777) for p in tmp_path.glob("berth-3.state-*.lock")}
    assert modes == {"0o600"}


def test_port_variables_follow_the_documented_scheme(tmp_path: Path) -> None:
    assert variable("web", 80) == "DOCKYARD_WEB_80"
    assert variable("auth-api.v2", "8000") == "DOCKYARD_AUTH_API_V2_8000"
    path = write_env_file(tmp_path / "stack.env", {"DOCKYARD_WEB_80": "127.0.0.1:20001", "DOCKYARD_PROJECT": "p"})
    assert path.read_text() == "DOCKYARD_PROJECT=p\nDOCKYARD_WEB_80=127.0.0.1:20001\n"


def _record(command: str, lease_id: str = "abc") -> LeaseRecord:
    return LeaseRecord(lease_id, 0, "p-20000", PortBlock.between(20000, 20009), 1, "u", "h", "/r", command, 0.0)


def test_a_keeper_following_a_session_is_told_apart_from_dockyard_up() -> None:
    up = _record(f"{KEEPER_PATH} /root/project build")
    owned = _record(f"{KEEPER_PATH} /root/project build 4242")
    assert is_keeper(up)
    assert is_keeper(owned)
    assert owner_of(up) is None
    assert owner_of(owned) == 4242
    assert not is_keeper(_record("/venv/bin/dockyard run -- pytest"))


def test_a_kept_marker_names_its_lease_and_age(tmp_path: Path) -> None:
    lock = tmp_path / "berth-0.lock"
    record = _record("x", lease_id="lease1")
    berth = SimpleNamespace(lock_path=lock, record=record)
    assert keep.kept_note(lock, record) == ""
    kept = keep.mark_kept(cast(Any, berth), ["t.py::test_a", "t.py::test_b"], {"t.py::test_a": "dbname=x_failed"})
    assert keep.is_kept_after_failure(lock, "lease1")
    assert not keep.is_kept_after_failure(lock, "another-lease")  # a marker outlives no lease
    assert keep.kept_note(lock, record, now=kept.since + 125) == "kept after 2 failed tests, 2m05s ago"
    assert oct(keep.marker_path(lock).stat().st_mode & 0o777) == "0o600"


def test_a_watch_plan_tells_service_sources_from_tests(tmp_path: Path) -> None:
    context, tests = tmp_path / "app", tmp_path / "tests"
    plan = Plan({"api": (context, ["*", "!src/", "!Dockerfile"])}, [tests], ignored=[tmp_path / "locks"])
    assert plan.classify([context / "src" / "main.py"]) == (["api"], True)
    assert plan.classify([context / "Dockerfile"]) == (["api"], True)
    assert plan.classify([context / "README.md"]) == ([], False)  # not sent to the build
    assert plan.classify([tests / "test_api.py"]) == ([], True)
    assert plan.classify([tmp_path / "locks" / "berth-0.json"]) == ([], False)


def test_reuse_is_a_setting_with_its_env_override(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().reuse is True
    assert make_settings(reuse=False).reuse is False


def test_a_process_with_another_thread_starts_its_keeper_anew_instead_of_forking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[tuple[bool, int | None]] = []

    def spawn(_settings: Settings, build: bool, owner: int | None) -> io.StringIO:
        spawned.append((build, owner))
        return io.StringIO('{"event": "message", "args": {"message": "hi"}}\n{"berth": {"index": 3}}\n')

    monkeypatch.setattr(keeper_client, "_spawn", spawn)
    monkeypatch.setattr(os, "fork", lambda: pytest.fail("forked while another thread ran"))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        stream = fork_keeper(cast(Settings, SimpleNamespace(root=tmp_path)), build=False)
    finally:
        stop.set()
        other.join()

    assert keeper_answer(stream) == {"index": 3}
    assert spawned == [(False, None)]


def test_a_keeper_that_ends_without_an_answer_is_an_error() -> None:
    with pytest.raises(DockyardError, match="the keeper process ended before the stack was up"):
        keeper_answer(io.StringIO(""))
