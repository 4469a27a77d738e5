"""A second Docker daemon on this machine, for the multi-engine tests.

Its own socket, data root, exec root, pidfile and bridge; its own address pool for compose
networks (routes must not overlap the main engine's); started from Debian's ``dockerd``.
It runs with ``--iptables=false``: netfilter tables are shared by every daemon on a host, and
a second daemon setting up its chains would rewrite the ones the main engine (and everybody's
live stacks on it) relies on. Published ports need no iptables: ``docker-proxy`` binds them.
Nothing can be pulled here, so the base image is copied in from the main engine.
"""

from __future__ import annotations

import contextlib
import json
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

from .helpers import IMAGE, TOKEN, wait_for

_START_TIMEOUT = 60.0  # seconds for the daemon to answer (it starts its own containerd)


@dataclass
class _Daemon:
    """The dockerd process of a second engine, which a test may stop and start again."""

    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start dockerd (on the same data root as before, if it ran before)."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def stop(self) -> None:
        """Stop dockerd as a shutdown does (SIGTERM: it stops its containers first), and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass(frozen=True)
class SecondEngine:
    """A running second daemon: its endpoint and the docker CLI pointed at it."""

    root: Path
    endpoint: str
    bridge: str
    daemon: _Daemon

    @contextlib.contextmanager
    def lost(self) -> Iterator[None]:
        """The daemon stopped for the block (its containers stopped, not removed), then back, answering.

        Its network store does not survive: dockerd starting over a store that holds a default
        network deletes the host's ``docker0`` (that name, whatever ``--bridge`` says), which is
        the main engine's. So the store goes, and the bridges of the networks it knew with it;
        containers and volumes stay, as an engine that went away leaves them.
        """
        networks = self.docker("network", "ls", "-q", "--no-trunc", "--filter", "driver=bridge").split()
        self.daemon.stop()
        try:
            yield
        finally:
            (self.root / "data" / "network" / "files" / "local-kv.db").unlink(missing_ok=True)
            for network in networks:  # the default network's bridge is ours (--bridge): it has no br- link
                subprocess.run(["ip", "link", "del", f"br-{network[:12]}"], capture_output=True, check=False)
            self.daemon.start()
            wait_for("the second dockerd to answer again", self.answers, timeout=_START_TIMEOUT)

    def answers(self) -> bool:
        """Whether the daemon answers (an AssertionError with its log tail if it exited)."""
        if self.daemon.proc is not None and self.daemon.proc.poll() is not None:
            tail = self.daemon.log.read_text(errors="replace").splitlines()[-15:]
            raise AssertionError(f"the second dockerd exited ({self.daemon.proc.returncode}):\n" + "\n".join(tail))
        done = subprocess.run(["docker", "-H", self.endpoint, "version"], capture_output=True, check=False)
        return done.returncode == 0

    def docker(self, *args: str, check: bool = True) -> str:
        """Run the docker CLI against this engine; its stdout."""
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
        out = subprocess.run(
            ["docker", "-H", self.endpoint, *args], capture_output=True, text=True, check=False, timeout=120, env=env
        )
        if check and out.returncode != 0:
            raise AssertionError(f"docker -H {self.endpoint} {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def managed(self, label: str = "dockyard.managed=true") -> list[str]:
        """IDs/names of everything on this engine carrying ``label``."""
        found = []
        for command in (["ps", "-a"], ["network", "ls"], ["volume", "ls"]):
            found += self.docker(*command, "-q", "--filter", f"label={label}").split()
        return found


def unavailable_reason() -> str | None:
    """Why a second daemon cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "a second dockerd needs root (bridge, mounts, containerd)"
    for tool in ("dockerd", "ip", "containerd", "runc"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: apt-get install docker.io iproute2)"
    return None


def _free_subnets() -> tuple[str, str]:
    """A /24 for the bridge and a /16 pool for networks, both unused by any route here."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    for second in range(200, 250, 2):
        if f"10.{second}." not in routes and f"10.{second + 1}." not in routes:
            return f"10.{second}.0.1/24", f"10.{second + 1}.0.0/16"
    raise AssertionError("no free 10.x.0.0/16 pair for the second engine's networks")


def _main_engine_config() -> dict[str, object]:
    """The main daemon's storage settings (the same kernel limits apply to ours), nothing else."""
    try:
        config = json.loads(Path("/etc/docker/daemon.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in config.items() if k in ("storage-driver", "mtu")}


@contextlib.contextmanager
def second_engine() -> Iterator[SecondEngine]:
    """Start a second dockerd, wait for it to answer, load ``IMAGE``; stop and remove it all after."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    root = Path(tempfile.mkdtemp(prefix=f"dockyard-engine2-{TOKEN}-{worker}-", dir="/tmp"))
    bridge = f"dy{TOKEN}{worker[-2:]}"[:15]
    sock = root / "docker.sock"
    (root / "daemon.json").write_text(json.dumps(_main_engine_config()))
    daemon: _Daemon | None = None
    # Two workers picking subnets at once would pick the same one: choose and claim under a lock.
    with FileLock(Path(tempfile.gettempdir()) / "dockyard-engine2-subnets.lock"):
        bip, pool = _free_subnets()
        try:
            subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True, capture_output=True)
            subprocess.run(["ip", "addr", "add", bip, "dev", bridge], check=True, capture_output=True)
            subprocess.run(["ip", "link", "set", bridge, "up"], check=True, capture_output=True)
            daemon = _Daemon(
                [
                    "dockerd",
                    # Not /etc/docker/daemon.json: the data-root there is the main engine's.
                    f"--config-file={root / 'daemon.json'}",
                    f"--host=unix://{sock}",
                    f"--data-root={root / 'data'}",
                    f"--exec-root={root / 'exec'}",
                    f"--pidfile={root / 'docker.pid'}",
                    f"--bridge={bridge}",
                    f"--default-address-pool=base={pool},size=24",
                    "--iptables=false",
                    "--ip-masq=false",
                ],
                root / "dockerd.log",
            )
            daemon.start()
            engine = SecondEngine(root, f"unix://{sock}", bridge, daemon)
            wait_for("the second dockerd to answer", engine.answers, timeout=_START_TIMEOUT)
        except BaseException:
            _stop(daemon, root, bridge)
            raise
    try:
        with subprocess.Popen(["docker", "save", IMAGE], stdout=subprocess.PIPE) as saver:
            subprocess.run(
                ["docker", "-H", engine.endpoint, "load", "-q"], stdin=saver.stdout, check=True, capture_output=True
            )
        yield engine
    finally:
        _stop(daemon, root, bridge)


def _stop(daemon: _Daemon | None, root: Path, bridge: str) -> None:
    """Stop the daemon (and its containers), remove its bridge and data root."""
    proc = daemon.proc if daemon is not None else None
    if proc is not None and proc.poll() is None:
        env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
        sock = f"unix://{root / 'docker.sock'}"
        ids = subprocess.run(["docker", "-H", sock, "ps", "-aq"], capture_output=True, text=True, env=env, check=False)
        if ids.stdout.split():
            subprocess.run(["docker", "-H", sock, "rm", "-f", *ids.stdout.split()], capture_output=True, check=False)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
    # A mount left under the data root (an unclean stop) must go before the tree can.
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if str(root) in line.split()[1]]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    deadline = time.monotonic() + 10
    while root.exists():
        try:
            shutil.rmtree(root)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # a lazily unmounted fuse-overlayfs lets go of its files within moments


@contextlib.contextmanager
def engine_in_netns() -> Iterator[SecondEngine]:
    """A second dockerd in a network namespace of its own, reached over TCP: a ``docker:dind`` service.

    As GitLab's Docker executor runs it: the engine is another host on the job's network
    (here: the far end of a veth pair), its API on ``tcp://<its address>:2375``, and its
    loopback out of this process's reach. ``nsenter --net`` rather than ``ip netns exec``,
    which remounts /sys and leaves dockerd without its cgroups. Networks come from an address
    pool of its own; published ports are bound by docker-proxy, as for :func:`second_engine`.
    """
    if shutil.which("nsenter") is None:
        raise AssertionError("`nsenter` is not installed (Debian: apt-get install util-linux)")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    root = Path(tempfile.mkdtemp(prefix=f"dockyard-dind-{TOKEN}-{worker}-", dir="/tmp"))
    netns, veth = f"dy{TOKEN}{worker[-2:]}ns", f"dy{TOKEN}{worker[-2:]}h"[:15]
    (root / "daemon.json").write_text(json.dumps(_main_engine_config()))
    daemon: _Daemon | None = None
    with FileLock(Path(tempfile.gettempdir()) / "dockyard-engine2-subnets.lock"):
        link, pool = _free_subnets()
        ours, theirs = link.replace(".0.1/24", ".0.1/30"), link.replace(".0.1/24", ".0.2/30")
        address = theirs.split("/")[0]
        endpoint = f"tcp://{address}:2375"
        try:
            for command in (
                ["ip", "netns", "add", netns],
                ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns],
                ["ip", "addr", "add", ours, "dev", veth],
                ["ip", "link", "set", veth, "up"],
                ["ip", "-n", netns, "addr", "add", theirs, "dev", "eth0"],
                ["ip", "-n", netns, "link", "set", "eth0", "up"],
                ["ip", "-n", netns, "link", "set", "lo", "up"],
            ):
                subprocess.run(command, check=True, capture_output=True)
            daemon = _Daemon(
                [
                    *("nsenter", f"--net=/run/netns/{netns}", "dockerd"),
                    f"--config-file={root / 'daemon.json'}",
                    f"--host=unix://{root / 'docker.sock'}",
                    f"--host={endpoint}",
                    f"--data-root={root / 'data'}",
                    f"--exec-root={root / 'exec'}",
                    f"--pidfile={root / 'docker.pid'}",
                    "--bridge=none",
                    f"--default-address-pool=base={pool},size=24",
                    "--iptables=false",
                    "--ip-masq=false",
                ],
                root / "dockerd.log",
            )
            daemon.start()
            engine = SecondEngine(root, endpoint, veth, daemon)

            def answers() -> bool:
                proc = daemon.proc if daemon is not None else None
                if proc is not None and proc.poll() is not None:
                    tail = (root / "dockerd.log").read_text(errors="replace").splitlines()[-15:]
                    raise AssertionError(f"the dind stand-in exited ({proc.returncode}):\n" + "\n".join(tail))
                version = ["docker", "-H", engine.endpoint, "version"]
                return subprocess.run(version, capture_output=True, check=False).returncode == 0

            wait_for("the dind stand-in to answer", answers, timeout=_START_TIMEOUT)
        except BaseException:
            _stop_netns(daemon, root, veth, netns)
            raise
    try:
        with subprocess.Popen(["docker", "save", IMAGE], stdout=subprocess.PIPE) as saver:
            subprocess.run(
                ["docker", "-H", engine.endpoint, "load", "-q"], stdin=saver.stdout, check=True, capture_output=True
            )
        yield engine
    finally:
        _stop_netns(daemon, root, veth, netns)


def _stop_netns(daemon: _Daemon | None, root: Path, veth: str, netns: str) -> None:
    """Stop the daemon as :func:`_stop` does, then remove its veth pair and namespace."""
    _stop(daemon, root, veth)  # `ip link del` of one end removes the pair
    subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
