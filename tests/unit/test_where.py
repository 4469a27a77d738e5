"""Detecting a runner in a container: fake /proc trees and a fake engine, no Docker."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from dockyard.engine import location
from dockyard.engine.endpoints import Engine
from dockyard.engine.location import Hints, hints, locate
from dockyard.errors import DockerUnavailable, DockyardError

CID = "3f" * 32
OTHER = "ab" * 32
MOUNTINFO_DOCKER = (
    "1 0 0:1 / / rw - overlay overlay rw\n"
    f"580 571 254:1 /var/lib/docker/containers/{CID}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda1 rw\n"
    f"581 571 254:1 /var/lib/docker/containers/{CID}/hostname /etc/hostname rw - ext4 /dev/vda1 rw\n"
)
MOUNTINFO_HOST = "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"


def tree(
    tmp_path: Path, *, mountinfo: str, cgroup: str = "0::/\n", hostname: str = "box", marker: bool = False
) -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (tmp_path / "proc/self/mountinfo").write_text(mountinfo)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    (tmp_path / "etc/hostname").write_text(hostname + "\n")
    if marker:
        (tmp_path / ".dockerenv").touch()
    return tmp_path


def test_a_plain_host_is_not_a_container(tmp_path: Path) -> None:
    assert hints(tree(tmp_path, mountinfo=MOUNTINFO_HOST)) == Hints(in_container=False, ids=(), hostname="box")


def test_the_container_id_comes_from_the_mount_table(tmp_path: Path) -> None:
    found = hints(tree(tmp_path, mountinfo=MOUNTINFO_DOCKER, marker=True))
    assert found.in_container
    assert found.ids == (CID,)


def test_cgroup_v1_names_the_container(tmp_path: Path) -> None:
    found = hints(tree(tmp_path, mountinfo=MOUNTINFO_HOST, cgroup=f"12:pids:/docker/{OTHER}\n1:cpu:/docker/{OTHER}\n"))
    assert found == Hints(in_container=True, ids=(OTHER,), hostname="box")


def test_dockerenv_alone_says_container_without_an_id(tmp_path: Path) -> None:
    found = hints(tree(tmp_path, mountinfo=MOUNTINFO_HOST, marker=True, hostname="3f3f3f3f3f3f"))
    assert found == Hints(in_container=True, ids=(), hostname="3f3f3f3f3f3f")


class FakeApi:
    """The one engine call detection makes: inspect_container."""

    def __init__(self, containers: dict[str, dict[str, Any]]) -> None:
        self.containers = containers
        self.asked: list[str] = []

    def inspect_container(self, ref: str) -> dict[str, Any]:
        self.asked.append(ref)
        for cid, info in self.containers.items():
            if ref in (cid, cid[:12], info["Name"].lstrip("/")):
                return info
        raise docker.errors.NotFound(f"No such container: {ref}")


class FakeClient:
    def __init__(self, api: FakeApi) -> None:
        self.api = api


def container(cid: str, name: str, hostname: str, network_mode: str = "bridge") -> dict[str, Any]:
    return {
        "Id": cid,
        "Name": f"/{name}",
        "Config": {"Hostname": hostname},
        "HostConfig": {"NetworkMode": network_mode},
    }


def engine(*infos: dict[str, Any]) -> tuple[FakeApi, Callable[[], location.Inspect]]:
    api = FakeApi({info["Id"]: info for info in infos})
    return api, lambda: location.sdk_inspect(api)


def test_found_on_the_engine_by_its_id(tmp_path: Path) -> None:
    _api, client = engine(container(CID, "ci-job", "runner-7"))  # a --hostname of its own: also its /etc/hostname
    place = locate(client, "auto", hints(tree(tmp_path, mountinfo=MOUNTINFO_DOCKER, marker=True, hostname="runner-7")))
    assert place.container == CID
    assert place.attached
    assert "ci-job" in place.note


def test_found_by_hostname_only_when_its_hostname_matches(tmp_path: Path) -> None:
    found = Hints(in_container=True, ids=(), hostname=CID[:12])
    _api, client = engine(container(CID, "job", CID[:12]))
    assert locate(client, "auto", found).container == CID
    # A container that happens to be *named* like our hostname is not us.
    impostor = Hints(in_container=True, ids=(), hostname="job")
    _api, client = engine(container(CID, "job", "someone-else"))
    assert locate(client, "auto", impostor).container is None


def test_not_on_this_engine_falls_back_to_host_ports_and_says_so(tmp_path: Path) -> None:
    _api, client = engine(container(OTHER, "unrelated", "x"))
    place = locate(client, "auto", hints(tree(tmp_path, mountinfo=MOUNTINFO_DOCKER, marker=True)))
    assert place.container is None
    assert place.worth_saying
    assert "does not know" in place.note


def test_host_network_mode_keeps_host_ports(tmp_path: Path) -> None:
    _api, client = engine(container(CID, "job", "vm", network_mode="host"))  # the host's name, in host mode
    place = locate(client, "auto", hints(tree(tmp_path, mountinfo=MOUNTINFO_DOCKER, marker=True, hostname="vm")))
    assert place.container is None
    assert "network mode host" in place.note


def test_host_mode_and_plain_hosts_never_ask_the_engine(tmp_path: Path) -> None:
    def no_engine() -> location.Inspect:
        raise AssertionError("the engine was asked")

    found = hints(tree(tmp_path, mountinfo=MOUNTINFO_DOCKER, marker=True))
    assert locate(no_engine, "host", found).container is None
    assert not locate(no_engine, "auto", Hints(in_container=False, ids=(), hostname="h")).worth_saying


def test_container_mode_fails_with_a_remedy_when_not_found(tmp_path: Path) -> None:
    _api, client = engine()
    found = hints(tree(tmp_path, mountinfo=MOUNTINFO_DOCKER, marker=True))
    with pytest.raises(DockyardError, match="does not know") as info:
        locate(client, "container", found)
    assert "docker.sock" in (info.value.remedy or "")
    with pytest.raises(DockyardError, match="not run in a container"):
        locate(client, "container", Hints(in_container=False, ids=(), hostname="h"))


def test_the_runner_is_looked_up_on_the_stacks_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    second = Engine("unix:///tmp/second/docker.sock")
    api, _inspector = engine(container(OTHER, "unrelated", "x"))
    asked: list[Engine | None] = []

    def sdk(of: Engine | None = None) -> FakeClient:
        asked.append(of)
        return FakeClient(api)

    monkeypatch.setattr(location, "sdk", sdk)
    monkeypatch.setattr(location, "plain_socket", lambda engine: None)  # as for a TCP engine
    monkeypatch.setattr(location, "hints", lambda: Hints(in_container=True, ids=(CID,), hostname="box"))
    location.runner.cache_clear()
    try:
        place = location.runner("auto", second)
    finally:
        location.runner.cache_clear()
    assert asked == [second]  # not DOCKER_HOST's engine: the berth's
    assert api.asked == [CID]
    assert f"the engine at {second.endpoint} does not know" in place.note


def test_another_containers_directory_mounted_on_the_host_is_not_ours(tmp_path: Path) -> None:
    """A host process can see /var/lib/docker/containers/<id>/mounts/shm of a shareable-IPC container."""
    shm = f"40 22 0:50 / /var/lib/docker/containers/{OTHER}/mounts/shm rw - tmpfs shm rw\n"
    assert hints(tree(tmp_path, mountinfo=MOUNTINFO_HOST + shm)) == Hints(in_container=False, ids=(), hostname="box")


def test_an_id_whose_container_has_another_hostname_is_not_ours() -> None:
    api = FakeApi({CID: container(CID, "/stranger", hostname="stranger")})
    found = Hints(in_container=True, ids=(CID,), hostname="box")
    assert location.find_container(location.sdk_inspect(api), found) is None


def test_on_a_unix_socket_the_runner_is_found_without_docker_py(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps(container(CID, "ci-job", "box")).encode()
    asked: list[bytes] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "e.sock"))
    server.listen(2)

    def answer() -> None:
        for status in (b"404 Not Found", b"200 OK"):  # the first id is unknown, the second is us
            conn, _ = server.accept()
            with conn:
                asked.append(conn.recv(4096).split(b"\r\n")[0])
                reply = body if status == b"200 OK" else b'{"message": "No such container"}'
                conn.sendall(b"HTTP/1.0 " + status + b"\r\nContent-Type: application/json\r\n\r\n" + reply)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    monkeypatch.setattr(location, "sdk", lambda engine=None: pytest.fail("docker-py was asked"))
    monkeypatch.setattr(location, "hints", lambda: Hints(in_container=True, ids=(OTHER, CID), hostname="box"))
    location.runner.cache_clear()
    try:
        place = location.runner("auto", Engine(f"unix://{tmp_path / 'e.sock'}"))
    finally:
        location.runner.cache_clear()
        thread.join(5)
        server.close()
    assert place.container == CID
    assert asked == [f"GET /containers/{OTHER}/json HTTP/1.0".encode(), f"GET /containers/{CID}/json HTTP/1.0".encode()]


def test_an_engine_gone_from_its_socket_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(location, "hints", lambda: Hints(in_container=True, ids=(CID,), hostname="box"))
    location.runner.cache_clear()
    try:
        with pytest.raises(DockerUnavailable, match=r"is unreachable .*No such file or directory"):
            location.runner("auto", Engine(f"unix://{tmp_path / 'gone.sock'}"))
    finally:
        location.runner.cache_clear()
