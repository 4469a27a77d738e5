"""What the host's operating system tells and does for dockyard, on Linux and on macOS alike.

Three things differ between the kernels dockyard runs on (Linux in CI; macOS under Docker
Desktop or Colima on a laptop): who listens on which TCP port, how to sleep until another
process exits, and whether a child can be told when its parent dies. Each is asked here,
through psutil where it answers, with the best each platform offers and a fallback that keeps
what it can where it offers less. Nothing else in the package asks the kernel these things.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_TCP_LISTEN = "0A"  # the `st` column of /proc/net/tcp

# Binding these is the fallback test for "in use": the wildcard conflicts with any listener on
# Linux; BSD kernels (macOS) let a SO_REUSEADDR wildcard bind beside a listener on one address,
# so the loopback address, where the engine publishes, is asked as well.
_PROBE_ADDRESSES = ("0.0.0.0", "127.0.0.1")  # noqa: S104 - probing, never listening


def listening_ports() -> set[int] | None:
    """Every TCP port some program listens on (any address, v4 or v6); None where the OS will not say.

    Linux: the kernel's socket tables in /proc/net. Elsewhere psutil, which on macOS needs
    root (``AccessDenied``); without it the caller probes by binding (:func:`port_taken`).
    """
    found = _proc_net_listeners()
    if found is not None:
        return found
    import psutil  # noqa: PLC0415 - ~7 ms of import, not needed where /proc/net answers

    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, NotImplementedError, OSError):
        return None
    return {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN and c.laddr}


def _proc_net_listeners(root: Path = Path("/proc/net")) -> set[int] | None:
    """Listening ports from ``/proc/net/tcp{,6}``; None without them (not Linux, or no procfs).

    Read here rather than through psutil on Linux: ``psutil.net_connections`` reads the same
    two tables, then every process's file descriptors to name each socket's owner, which we
    do not need. Measured on a 2-core CI host with 215 processes: 23-56 ms a call against
    2 ms, under the berth's lock, and 16 processes racing for 4 berths starved.
    """
    found: set[int] = set()
    try:
        for table in ("tcp", "tcp6"):
            with (root / table).open() as fh:
                next(fh)  # header
                for line in fh:
                    fields = line.split()
                    if fields[3] == _TCP_LISTEN:
                        found.add(int(fields[1].rsplit(":", 1)[1], 16))
    except (OSError, IndexError, ValueError, StopIteration):
        return None
    return found


def own_addresses() -> set[str]:
    """Every IP address of this machine's network interfaces (loopback included)."""
    import psutil  # noqa: PLC0415 - ~7 ms of import, asked only of an engine on another host

    return {a.address for addrs in psutil.net_if_addrs().values() for a in addrs if a.family in _INET}


_INET = (socket.AF_INET, socket.AF_INET6)


def port_taken(port: int) -> bool:
    """Whether binding ``port`` the way the engine does (SO_REUSEADDR) fails: some program listens on it.

    SO_REUSEADDR, as every Go program (dockerd) sets it: a connection lingering in TIME_WAIT
    after a stack went down is no program holding the port.
    """
    for address in _PROBE_ADDRESSES:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                return True
    return False


def wait_for_exit(pid: int) -> None:
    """Return once process ``pid`` has exited (at once if there is none).

    psutil sleeps on the kernel where it can: a pidfd on Linux >= 5.3, a kqueue ``NOTE_EXIT``
    on macOS and the BSDs; elsewhere it polls for the process.
    """
    if hasattr(os, "pidfd_open"):
        # A pidfd turns readable once the process has exited, zombie or not; psutil counts a
        # zombie as running, and in a container whose init reaps no one a killed holder stays one.
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        except OSError:
            fd = -1  # no pidfd (Linux < 5.3): psutil polls instead
        if fd >= 0:
            try:
                select.select([fd], [], [])
            finally:
                os.close(fd)
            return
    import psutil  # noqa: PLC0415 - ~7 ms of import, needed only without a pidfd

    try:
        psutil.Process(pid).wait()
    except psutil.NoSuchProcess:
        return


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``sig`` when its parent dies, or None where no OS call does.

    Linux's ``PR_SET_PDEATHSIG``. macOS has no such call: there, a child outlives a
    SIGKILLed parent, and what stays guaranteed is that the parent's watchdog reaps the
    stack, so the orphan fails against a stack that is gone instead of holding it.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # noqa: PLC0415 - only on Linux, and only by a process that starts a command

    # Looked up here, in the parent: preexec_fn runs between fork and exec, where loading a
    # library is not safe; calling an already-resolved function is.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig))

    return preexec
