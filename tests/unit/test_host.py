"""What the OS tells dockyard, on Linux and with macOS faked: listening ports, process exits, parent death.

Real sockets and real processes, no Docker. "macOS" is faked the way it differs: no
/proc/net, psutil refusing other users' sockets without root, no prctl.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from dockyard import host
from dockyard.pool.ports import ports_in_use


@pytest.fixture
def listener() -> Iterator[int]:
    """A port something listens on, on 127.0.0.1 only (as docker-proxy publishes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed without listening: nothing lingers on it


@pytest.fixture
def macos(monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform as macOS shows it to an unprivileged user."""

    def refuse(kind: str = "inet") -> list[Any]:
        raise psutil.AccessDenied()

    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(host, "_proc_net_listeners", lambda: None)
    monkeypatch.setattr(psutil, "net_connections", refuse)


def test_linux_reads_the_listeners_from_proc(listener: int) -> None:
    found = host.listening_ports()
    assert found is not None
    assert listener in found
    assert ports_in_use([listener, _free_port()]) == [listener]


def test_proc_net_tables_are_parsed_for_listening_sockets_only(tmp_path: Path) -> None:
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (tmp_path / "tcp").write_text(
        header
        + "   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 1 1\n"  # 5432 LISTEN
        + "   1: 0100007F:1F90 0100007F:C350 06 00000000:00000000 00:00000000 00000000  0 0 0 3\n"  # 8080 TIME_WAIT
    )
    (tmp_path / "tcp6").write_text(
        header + "   0: 00000000000000000000000000000000:18EB 00000000000000000000000000000000:0000 0A 0 0 0 0 0 1 1\n"
    )
    assert host._proc_net_listeners(tmp_path) == {5432, 6379}
    assert host._proc_net_listeners(tmp_path / "absent") is None


def test_without_proc_psutil_lists_the_listeners(monkeypatch: pytest.MonkeyPatch, listener: int) -> None:
    monkeypatch.setattr(host, "_proc_net_listeners", lambda: None)  # as on macOS running as root, or a BSD
    found = host.listening_ports()
    assert found is not None
    assert listener in found


@pytest.mark.usefixtures("macos")
def test_macos_without_root_probes_by_binding(listener: int) -> None:
    assert host.listening_ports() is None
    free = _free_port()
    assert host.port_taken(listener)
    assert not host.port_taken(free)
    assert ports_in_use([free, listener]) == [listener]


def test_a_port_left_in_time_wait_is_not_taken() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as docker-proxy (Go) does
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server's side closes first: its address lingers in TIME_WAIT
        client.close()
    assert not host.port_taken(port)


def _sleeper(seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


def test_wait_for_exit_returns_when_the_process_ends() -> None:
    proc = _sleeper(0.3)
    t0 = time.monotonic()
    host.wait_for_exit(proc.pid)  # psutil reaps our own child: Popen then finds it gone
    assert time.monotonic() - t0 >= 0.2
    proc.wait()
    host.wait_for_exit(proc.pid)  # gone already: at once
    host.wait_for_exit(2**22 + 1)  # beyond pid_max's default: no such process


def test_wait_for_exit_of_a_process_not_ours(tmp_path: Path) -> None:
    """The watchdog's case: the holder is its parent, not its child."""
    pid_file = tmp_path / "pid"
    shell = subprocess.Popen(["sh", "-c", f"sleep 0.5 & echo $! > {pid_file}; wait"])
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the shell never started its sleep"
        time.sleep(0.02)  # polling a file the shell writes, to a deadline
    grandchild = int(pid_file.read_text())
    t0 = time.monotonic()
    host.wait_for_exit(grandchild)
    assert time.monotonic() - t0 >= 0.2
    assert _gone_or_zombie(grandchild)
    shell.wait()


def _gone_or_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_macos_has_no_parent_death_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert host.die_with_parent() is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_linux_child_gets_sigterm_when_its_parent_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import subprocess, sys, time
                from dockyard.host import die_with_parent
                child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                         preexec_fn=die_with_parent())
                open({str(pid_file)!r}, "w").write(str(child.pid))
                time.sleep(60)
                """
            ),
        ]
    )
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert parent.poll() is None, "the parent died before starting its child"
        assert time.monotonic() < deadline, "the parent never started its child"
        time.sleep(0.05)  # polling a file the parent writes, to a deadline
    child = psutil.Process(int(pid_file.read_text()))
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    # The orphan is reparented to a reaper, which may leave it a zombie for a moment.
    _, alive = psutil.wait_procs([child], timeout=20)
    if alive:
        assert child.status() == psutil.STATUS_ZOMBIE
