"""Podman's Docker-compatible service, on a store of its own, for the Podman tests.

Rootful ``podman system service`` from Debian's ``podman`` on a socket, a storage root and a
run root under a temporary directory: nothing of the host's own Podman store is touched, and
removing the directory removes every image, container and network it had. Its containers.conf caps the
ulimits Podman gives containers at the limits the service itself runs under: rootful Podman
asks for nofile/nproc of 1048576, which a host (or a container running the tests) with lower
hard limits refuses at container start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from .helpers import TOKEN, wait_for

_START_TIMEOUT = 30.0  # seconds for the service to answer on its socket


@dataclass(frozen=True)
class PodmanEngine:
    """A running Podman service: its endpoint, and ``podman`` on the same store."""

    root: Path
    endpoint: str
    proc: subprocess.Popen[bytes]

    @property
    def flags(self) -> list[str]:
        """The global flags that point ``podman`` at this store."""
        return ["--root", str(self.root / "storage"), "--runroot", str(self.root / "run")]

    def env(self) -> dict[str, str]:
        """The environment of ``podman`` and of the service: its containers.conf."""
        return {**os.environ, "CONTAINERS_CONF": str(self.root / "containers.conf")}

    def podman(self, *args: str) -> str:
        """Run ``podman`` on this store; its stdout (AssertionError with stderr when it fails)."""
        out = subprocess.run(
            ["podman", *self.flags, *args], capture_output=True, text=True, check=False, timeout=120, env=self.env()
        )
        if out.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
        return out.stdout

    def answers(self) -> bool:
        """Whether the service answers (an AssertionError with its log tail if it exited)."""
        if self.proc.poll() is not None:
            tail = (self.root / "service.log").read_text(errors="replace").splitlines()[-15:]
            raise AssertionError(f"podman system service exited ({self.proc.returncode}):\n" + "\n".join(tail))
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
        done = subprocess.run(["docker", "-H", self.endpoint, "version"], capture_output=True, check=False, env=env)
        return done.returncode == 0

    def managed(self, label: str = "dockyard.managed=true") -> list[str]:
        """Names of everything on this engine carrying ``label``."""
        found = []
        for command in (["ps", "-a"], ["network", "ls"], ["volume", "ls"]):
            found += self.podman(*command, "--filter", f"label={label}", "--format", "{{.Name}}").split()
        return [name for name in found if name != "<no"]


def unavailable_reason() -> str | None:
    """Why Podman cannot be tested here (None: it can)."""
    if os.geteuid() != 0:
        return "the Podman tests run Podman rootful (its own store and network backend)"
    if shutil.which("podman") is None:
        return "`podman` is not installed (Debian: apt-get install podman catatonit)"
    return None


def _containers_conf(root: Path, limits: dict[str, int]) -> str:
    """Ulimits the service can grant, and network definitions kept in the store (not /etc/containers)."""
    ulimits = ", ".join(f'"{name}={hard}:{hard}"' for name, hard in sorted(limits.items()))
    return f'[containers]\ndefault_ulimits = [{ulimits}]\n[network]\nnetwork_config_dir = "{root / "networks"}"\n'


def _hard_limits(pid: int) -> dict[str, int]:
    """The hard nofile/nproc limits of process ``pid``, as Podman set them for itself at start."""
    names = {"Max open files": "nofile", "Max processes": "nproc"}
    found = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        for label, name in names.items():
            if line.startswith(label) and (hard := line[len(label) :].split()[1]).isdigit():
                found[name] = int(hard)
    return found


@contextlib.contextmanager
def podman_engine() -> Iterator[PodmanEngine]:
    """Start ``podman system service`` on a store of its own; stop it and remove the store after.

    Started twice: Podman lowers its own limits at start (nproc to 32768 here), so the limits
    it can grant are known only once it runs; the second start is given them.

    One service on the host at a time, whatever worker asks: two stores each give their first
    network the same subnet and share the host's firewall chains, and the containers of both
    then fail to resolve each other's service names.
    """
    with FileLock(Path(tempfile.gettempdir()) / "dockyard-podman-service.lock"):
        yield from _service()


def _service() -> Iterator[PodmanEngine]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    root = Path(tempfile.mkdtemp(prefix=f"dockyard-podman-{TOKEN}-{worker}-", dir="/tmp"))
    engine = None
    try:
        (root / "containers.conf").write_text(_containers_conf(root, {}))
        engine = _start(root)
        limits = _hard_limits(engine.proc.pid)
        _stop(engine, remove=False)
        (root / "containers.conf").write_text(_containers_conf(root, limits))
        engine = _start(root)
        yield engine
    finally:
        if engine is not None:
            _stop(engine)
        shutil.rmtree(root, ignore_errors=True)


def _flags(root: Path) -> list[str]:
    return ["podman", "--root", str(root / "storage"), "--runroot", str(root / "run")]


def _start(root: Path) -> PodmanEngine:
    sock = root / "podman.sock"
    with (root / "service.log").open("ab") as log:
        proc = subprocess.Popen(
            [*_flags(root), "system", "service", "--time=0", f"unix://{sock}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "CONTAINERS_CONF": str(root / "containers.conf")},
        )
    engine = PodmanEngine(root, f"unix://{sock}", proc)
    try:
        wait_for("podman system service to answer", engine.answers, timeout=_START_TIMEOUT)
    except BaseException:
        _stop(engine, remove=False)
        raise
    return engine


def _stop(engine: PodmanEngine, *, remove: bool = True) -> None:
    """Remove every container of the store, stop the service; unmount and remove the store."""
    with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
        engine.podman("rm", "--all", "--force", "--time", "0")
    if engine.proc.poll() is None:
        engine.proc.send_signal(signal.SIGTERM)
        try:
            engine.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            engine.proc.kill()
            engine.proc.wait()
    if not remove:
        return
    mounts = [
        line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if str(engine.root) in line.split()[1]
    ]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    deadline = time.monotonic() + 10
    while engine.root.exists():
        try:
            shutil.rmtree(engine.root)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # a lazily unmounted overlay lets go of its files within moments
