"""The engine handshake without docker-py: ``/_ping`` over a unix socket, against a fake engine."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.engine import endpoints
from dockyard.engine.endpoints import Engine, handshake
from dockyard.engine.socket_api import PingError, get, ping, status_of
from dockyard.errors import DockerUnavailable

OK = b"HTTP/1.1 200 OK\r\nApi-Version: 1.45\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nOK"
Serve = Callable[[bytes | None], str]


@pytest.fixture
def fake_engine(tmp_path: Path) -> Iterator[Serve]:
    """``serve(answer)``: a unix socket that answers one request with ``answer`` (None: never answers)."""
    servers: list[socket.socket] = []
    threads: list[threading.Thread] = []
    done = threading.Event()

    def serve(answer: bytes | None) -> str:
        path = str(tmp_path / f"e{len(servers)}.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)
        servers.append(server)

        def answer_once() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                if answer is None:
                    done.wait(5)
                else:
                    conn.sendall(answer)

        thread = threading.Thread(target=answer_once, daemon=True)
        thread.start()
        threads.append(thread)
        return path

    yield serve
    done.set()
    for thread in threads:
        thread.join(5)
    for server in servers:
        server.close()


@pytest.fixture(autouse=True)
def fresh_handshakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No cached handshake across tests; the docker CLI and Compose taken as present; no docker-py."""

    def no_sdk(engine: Engine) -> object:
        raise AssertionError(f"docker-py was asked to reach {engine}")

    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(endpoints, "compose_version", lambda: (2, 30, 0))
    monkeypatch.setattr(endpoints, "_sdk", no_sdk)
    endpoints._answers.cache_clear()
    yield
    endpoints._answers.cache_clear()


def test_an_engine_answering_ok_passes(fake_engine: Serve) -> None:
    path = fake_engine(OK)
    ping(path)
    handshake(Engine(f"unix://{fake_engine(OK)}"))


def test_http_1_0_and_bare_newlines_are_read() -> None:
    assert status_of(b"HTTP/1.0 200 OK\r\n") == 200
    assert status_of(b"HTTP/1.1 200 OK\n") == 200


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", "GET /_ping answered HTTP 500"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "not an HTTP answer: 'SSH-2.0-OpenSSH_9.6'"),
        (b"", "not an HTTP answer: 'nothing'"),
    ],
)
def test_anything_but_200_is_not_an_engine(fake_engine: Serve, answer: bytes, said: str) -> None:
    path = fake_engine(answer)
    with pytest.raises(PingError, match=said):
        ping(path)
    with pytest.raises(DockerUnavailable, match=f"the Docker daemon at unix://.* is unreachable .*{said}"):
        handshake(Engine(f"unix://{fake_engine(answer)}"))


def test_an_answer_is_complete_by_its_length_on_a_connection_kept_open(tmp_path: Path) -> None:
    path = str(tmp_path / "open.sock")
    done = threading.Event()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)

        def answer_and_hold() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(OK[:40])
                conn.sendall(OK[40:])
                done.wait(5)

        thread = threading.Thread(target=answer_and_hold, daemon=True)
        thread.start()
        try:
            assert get(path, "/_ping", timeout=2) == (200, b"OK")
        finally:
            done.set()
            thread.join(5)


def test_a_silent_socket_times_out(fake_engine: Serve) -> None:
    with pytest.raises(TimeoutError):
        ping(fake_engine(None), timeout=0.2)


def test_a_missing_socket_says_so_with_the_remedy(tmp_path: Path) -> None:
    endpoint = f"unix://{tmp_path / 'nobody.sock'}"
    with pytest.raises(DockerUnavailable) as info:
        handshake(Engine(endpoint))
    assert str(info.value).startswith(
        f"the Docker daemon at {endpoint} is unreachable ({tmp_path / 'nobody.sock'}: No such file or directory)"
    )
    assert "sudo systemctl start docker" in str(info.value)


def test_a_missing_cli_is_named_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DockerUnavailable, match="the `docker` command is not installed"):
        handshake(Engine(f"unix://{tmp_path / 'nobody.sock'}"))


def test_one_ping_per_engine_and_process(fake_engine: Serve) -> None:
    engine = Engine(f"unix://{fake_engine(OK)}")
    handshake(engine)
    handshake(engine)  # the fake answers once: a second ping would find nobody accepting


@pytest.mark.parametrize(
    ("endpoint", "env", "path"),
    [
        ("unix:///var/run/docker.sock", {}, "/var/run/docker.sock"),
        ("unix:///var/run/docker.sock", {"DOCKER_HOST": "unix:///var/run/docker.sock", "DOCKER_TLS_VERIFY": "1"}, None),
        ("unix:///var/run/docker.sock", {"DOCKER_CERT_PATH": "/certs"}, "/var/run/docker.sock"),  # not for this host
        ("tcp://127.0.0.1:2375", {}, None),
        ("ssh://ci@buildbox.example", {}, None),
        ("npipe:////./pipe/docker_engine", {}, None),
    ],
)
def test_only_a_plain_unix_socket_skips_docker_py(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, env: dict[str, str], path: str | None
) -> None:
    for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert endpoints.plain_socket(Engine(endpoint)) == path


def test_other_endpoints_go_through_docker_py(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Engine] = []
    monkeypatch.setattr(endpoints, "_sdk", asked.append)
    handshake(Engine("tcp://127.0.0.1:2375"))
    assert asked == [Engine("tcp://127.0.0.1:2375")]


_START_PATH = """
import dockyard
from dockyard.engine.endpoints import handshake
from dockyard.sessions.api import acquire_berth
from dockyard.stack.stack import Stack
"""


def test_the_start_path_imports_no_docker_py_yaml_psutil_or_urllib_request() -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _START_PATH], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    modules = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert "dockyard.sessions.api" in modules
    heavy = {"docker", "requests", "urllib3", "yaml", "psutil", "rich", "python_on_whales", "http", "urllib.request"}
    assert {m for m in modules if m in heavy or m.split(".")[0] in heavy} == set()
