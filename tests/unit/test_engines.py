"""Engine identity, port scopes and spreading berths over engines: no Docker (fake probes)."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from dockyard.engine.endpoints import LOCAL, Engine, current_engine, engines_of, publish_address, publish_note
from dockyard.engine.labels import Resource, labels_for
from dockyard.errors import ConfigError, DockerUnavailable, NoFreeBerth
from dockyard.pool import leasing
from dockyard.pool.berth import pool_id
from dockyard.pool.lease import LeaseRecord, read_record, remove_record, write_record
from dockyard.pool.leasing import acquire_from, pools, share_images
from dockyard.pool.reaping import orphaned
from dockyard.portblock import PortBlock
from dockyard.sessions.keeper_client import lock_path_of
from dockyard.settings import Settings
from dockyard.stack.compose import ComposeModel
from dockyard.stack.stack import Stack

MakeSettings = Callable[..., Settings]
A, B = "unix:///run/a.sock", "unix:///run/b.sock"
REMOTE = "ssh://ci@buildbox.example"


def always(engine: Engine) -> str | None:
    """A probe that finds every engine reachable."""
    return None


@pytest.mark.parametrize(
    ("endpoint", "scope"),
    [
        ("unix:///var/run/docker.sock", LOCAL),
        ("unix:///tmp/second/docker.sock", LOCAL),
        ("tcp://127.0.0.1:2375", LOCAL),
        ("tcp://localhost:2376", LOCAL),
        ("tcp://[::1]:2375", LOCAL),
        ("tcp://10.1.2.3:2376", "10.1.2.3"),
        ("ssh://ci@BuildBox.example:22", "buildbox.example"),
    ],
)
def test_port_scope_is_where_ports_are_bound(endpoint: str, scope: str) -> None:
    assert Engine(endpoint).scope == scope


def test_current_engine_docker_host_wins_over_a_context(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": "tcp://10.0.0.9:2375", "DOCKER_CONTEXT": "other", "DOCKER_CONFIG": str(tmp_path)}
    assert current_engine(env) == Engine("tcp://10.0.0.9:2375")


def _context_store(config: Path, name: str, host: str) -> None:
    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Endpoints": {"docker": {"Host": host}}}))


def test_current_engine_from_the_current_context(tmp_path: Path) -> None:
    _context_store(tmp_path, "box", "ssh://me@box")
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "box"}))
    assert current_engine({"DOCKER_CONFIG": str(tmp_path)}) == Engine("ssh://me@box", "box")
    assert current_engine({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "default"}).endpoint.startswith("unix://")


def test_a_missing_context_is_named(tmp_path: Path) -> None:
    with pytest.raises(DockerUnavailable, match="'gone'"):
        current_engine({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "gone"})


def test_cli_env_points_the_docker_cli_at_the_engine() -> None:
    base = {"DOCKER_HOST": "unix:///elsewhere", "DOCKER_CONTEXT": "x", "PATH": "/bin"}
    assert Engine(B).cli_env(base) == {"DOCKER_HOST": B, "PATH": "/bin"}
    assert Engine(B, "ctx").cli_env(base) == {"DOCKER_CONTEXT": "ctx", "PATH": "/bin"}


def test_engines_setting_is_validated(make_settings: MakeSettings) -> None:
    assert make_settings(engines=[A, REMOTE]).engines == (A, REMOTE)
    with pytest.raises(ConfigError, match="engines"):
        make_settings(engines=["/var/run/docker.sock"])
    assert engines_of(()) == [current_engine()]


def test_local_engines_share_the_host_pool_a_remote_host_has_its_own(make_settings: MakeSettings) -> None:
    settings = make_settings(port_range="30700-30739", block_size=10, engines=[A, REMOTE, B])
    local, remote = pools(settings)
    assert [e.endpoint for e in local.engines] == [A, B]
    assert local.lock_dir == settings.lock_dir
    assert [e.endpoint for e in remote.engines] == [REMOTE]
    assert remote.lock_dir == settings.lock_dir / "engine-buildbox.example"


def test_berths_spread_over_local_engines_without_sharing_a_block(make_settings: MakeSettings) -> None:
    settings = make_settings(port_range="30740-30779", block_size=10, engines=[A, B])
    candidates = pools(settings)
    held = [acquire_from(candidates, timeout=1, probe=always) for _ in range(4)]
    try:
        assert [b.record.engine for b in held] == [A, B, A, B]  # least-loaded first, ties in setting order
        assert len({b.port_block.start for b in held}) == 4, "two daemons on one host share its ports"
        with pytest.raises(NoFreeBerth):
            acquire_from(candidates, timeout=0, probe=always)
    finally:
        for berth in held:
            berth.release()


def test_a_remote_engine_reuses_the_blocks_of_the_host_pool(make_settings: MakeSettings) -> None:
    settings = make_settings(port_range="30780-30799", block_size=10, engines=[A, REMOTE])
    candidates = pools(settings)
    first, second = (acquire_from(candidates[::-1], timeout=1, probe=always) for _ in range(2))
    try:
        assert oct(settings.lock_dir.stat().st_mode & 0o777) == "0o700"
        assert (first.record.engine, second.record.engine) == (REMOTE, A)
        assert first.port_block == second.port_block  # its ports are bound on another machine
        # Same index, same block: still two override files (with one, each stack's
        # `compose up` would read the other's labels).
        overrides = {
            Stack(settings, berth, model=ComposeModel(settings, {})).override_path for berth in (first, second)
        }
        assert len(overrides) == 2
    finally:
        first.release()
        second.release()


def test_an_unreachable_engine_is_passed_over(make_settings: MakeSettings) -> None:
    settings = make_settings(port_range="30800-30819", block_size=10, engines=[A, B])

    def a_is_down(engine: Engine) -> str | None:
        return "the Docker daemon at unix:///run/a.sock is unreachable" if engine.endpoint == A else None

    with acquire_from(pools(settings), timeout=1, probe=a_is_down) as berth:
        assert berth.record.engine == B


def test_an_engine_that_did_not_answer_is_not_asked_on_every_sweep(make_settings: MakeSettings) -> None:
    settings = make_settings(port_range="30860-30869", block_size=10, engines=[A, B])  # one berth
    asked: list[str] = []

    def a_is_down(engine: Engine) -> str | None:
        asked.append(engine.endpoint)
        return "unreachable" if engine.endpoint == A else None

    with acquire_from(pools(settings), timeout=1, probe=a_is_down):
        asked.clear()
        with pytest.raises(NoFreeBerth) as caught:
            acquire_from(pools(settings), timeout=0.6, probe=a_is_down)  # ~6 sweeps of the pools
    assert asked.count(A) == 1
    assert asked.count(B) > 1  # the reachable one is asked every sweep
    assert f"engine {A}: unreachable (unreachable)" in str(caught.value)


def test_no_reachable_engine_names_every_one(make_settings: MakeSettings) -> None:
    settings = make_settings(port_range="30820-30839", block_size=10, engines=[A, B])
    # The real probe: nothing listens on these sockets, so no Docker is needed to find that out.
    with pytest.raises(DockerUnavailable) as info:
        acquire_from(pools(settings), timeout=1)
    assert A in str(info.value)
    assert B in str(info.value)


def test_records_of_older_and_newer_versions_are_read(tmp_path: Path) -> None:
    record = LeaseRecord.for_current_process(0, "p-1", PortBlock(1, 2), B, "ID:1")
    path = tmp_path / "berth-0.json"
    write_record(path, record)
    # The record itself keeps the keys an older dockyard knows (it takes others for corruption).
    assert set(json.loads(path.read_text())) == set(record.to_json()) - {"engine", "engine_id"}
    assert read_record(path) == record
    data = record.to_json()
    path.write_text(json.dumps({**data, "from_the_future": 1}))
    assert read_record(path) == record  # not corrupt: a corrupt record's stack would be reaped
    later = LeaseRecord.for_current_process(0, "p-1", PortBlock(1, 2))
    path.write_text(json.dumps(later.to_json()))  # another lease's record: the engine kept is not its
    assert read_record(path) == replace(later, engine="", engine_id="")  # "": the current engine
    remove_record(path)
    assert list(tmp_path.iterdir()) == []


def test_another_machines_resources_are_not_judged_orphans_here(tmp_path: Path) -> None:
    lock = tmp_path / "berth-0.lock"
    labels = labels_for(0, "p-1", lock, "lease", 0.0)
    assert labels["dockyard.host"] == socket.gethostname()
    assert orphaned(Resource("network", "n1", "n1", labels))  # our machine, lock gone: an orphan
    elsewhere = {**labels, "dockyard.host": "another-runner"}
    assert not orphaned(Resource("network", "n1", "n1", elsewhere))  # its lock is on that machine
    lock.touch()  # a lock we can see (a container sharing this host's lock dir): judged as ever
    assert orphaned(Resource("network", "n1", "n1", elsewhere))


def test_another_pool_at_the_same_path_is_never_judged_by_our_lock(tmp_path: Path) -> None:
    """Two CI machines, one shared engine, both pools at the default path."""
    lock = tmp_path / "berth-0.lock"
    lock.touch()  # our berth 0: free, no record
    ours = pool_id(tmp_path, create=True)
    assert ours is not None
    assert pool_id(tmp_path) == ours  # stable: read back, not made anew
    assert oct((tmp_path / ".pool-id").stat().st_mode & 0o777) == "0o600"
    mine = labels_for(0, "p-1", lock, "lease-1", 0.0, pool=ours)
    theirs = {**labels_for(0, "p-1", lock, "lease-2", 0.0, pool="f" * 32), "dockyard.host": socket.gethostname()}
    assert orphaned(Resource("network", "n1", "n1", mine))
    assert not orphaned(Resource("network", "n2", "n2", theirs))
    # Our pool gone (a reboot emptied /tmp): a leftover of this host with an unknown pool id is an orphan.
    for leftover in tmp_path.iterdir():
        leftover.unlink()
    assert orphaned(Resource("network", "n2", "n2", theirs))


def test_a_kept_berth_is_found_in_the_pool_of_its_engine(make_settings: MakeSettings) -> None:
    settings = make_settings(port_range="30840-30859", block_size=10, engines=[A, REMOTE])
    remote = LeaseRecord.for_current_process(0, "p-1", PortBlock(30840, 10), REMOTE)
    local = LeaseRecord.for_current_process(0, "p-1", PortBlock(30840, 10), A)
    assert lock_path_of(settings, remote) == settings.lock_dir / "engine-buildbox.example" / "berth-0.lock"
    assert lock_path_of(settings, local) == settings.lock_dir / "berth-0.lock"


def test_with_no_other_engine_images_are_not_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """`share_images` runs on every `up`; with one engine there is nothing to copy from."""

    def no_engine_calls(engine: Engine | None = None) -> None:
        raise AssertionError(f"asked {engine} for images")

    monkeypatch.setattr(leasing, "sdk", no_engine_calls)
    only = Engine(A)
    assert share_images(only, ["demo/app:dev", "debian:bookworm-slim"], [only]) == []


@pytest.mark.parametrize(
    ("endpoint", "address"),
    [
        ("unix:///var/run/docker.sock", "127.0.0.1"),
        ("tcp://localhost:2375", "127.0.0.1"),
        ("tcp://127.0.0.1:2376", "127.0.0.1"),
        ("ssh://me@build-box", "127.0.0.1"),  # ssh: reached through the tunnel, not the network
        ("tcp://192.0.2.77:2375", "192.0.2.77"),  # dind: another host on the job's network
        ("tcp://dind-alias-of-192-0-2-78.example:2375", "192.0.2.78"),
        ("tcp://unresolvable.invalid:2375", "127.0.0.1"),  # preflight names that failure
    ],
)
def test_a_tcp_engine_on_another_host_publishes_on_its_address(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, address: str
) -> None:
    real = socket.getaddrinfo

    def resolve(host: str, port: object, *args: object) -> object:
        if host == "dind-alias-of-192-0-2-78.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.78", 2375))]
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr("dockyard.engine.endpoints.own_addresses", lambda: {"127.0.0.1", "192.0.2.2"})
    publish_address.cache_clear()
    engine = Engine(endpoint)
    assert publish_address(engine) == address
    assert (publish_note(engine) is None) == (address == "127.0.0.1")
    publish_address.cache_clear()


def test_a_tcp_address_of_this_machine_stays_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    # The LAN address of this machine: publishing there would open the stack to the LAN.
    monkeypatch.setattr("dockyard.engine.endpoints.own_addresses", lambda: {"127.0.0.1", "192.0.2.2"})
    publish_address.cache_clear()
    assert publish_address(Engine("tcp://192.0.2.2:2375")) == "127.0.0.1"
    publish_address.cache_clear()


def test_the_override_binds_to_the_address_given(make_settings: MakeSettings) -> None:
    settings = make_settings()
    text = ComposeModel.load(settings).override("p-30000", PortBlock(30000, 10), {}, "192.0.2.77")
    assert '"192.0.2.77:30000:8000/tcp"' in text
    assert "127.0.0.1" not in text
