"""dockyard's benchmark: every target of the issue as A (dockyard) against B (a baseline), in one run.

Each comparison runs A and B interleaved over ``--rounds`` rounds on the same compose files, on
the same host, in the same run, so host load hits both alike; the order of A and B alternates
from round to round. Results: ``bench/results/results.json`` (every sample, the host's load
average, versions), ``results.md`` (the table, also printed at the end) and ``results.png``.

    python bench/bench.py                  # 3 rounds, about 10 minutes on 2 cores
    python bench/bench.py --quick          # 1 round, fewer inner repetitions
    python bench/bench.py --only ready,fresh

Exit status: 0 when every measurement was taken, whether or not its target was met (the table
says "no"); 1 when a measurement failed (a command failed or timed out, a stack left
resources behind); 130 when interrupted. Whatever the bench started is removed in ``finally``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEMO_FILES = ("compose/infra.yml", "compose/app.yml")
INFRA_FILES = ("compose/infra.yml",)
# The same files with every health check at a 1 s interval (bench/interval-1s.yml): how much of
# the "ready" ratio is the interval compose waits out, and how much is left when it is short.
FAST_CHECK_FILES = (*DEMO_FILES, "bench/interval-1s.yml")
# Bare compose cannot pull debian:bookworm-slim on a registry-less host; dockyard points the
# build argument at the base image it bootstrapped. Images are built already (`dockyard images`),
# so the value only has to make the compose files valid.
BASE_IMAGE = os.environ.get("BENCH_BASE_IMAGE", "dockyard/debian:bookworm-minbase")
TERM_GRACE = 120.0  # seconds a timed-out command gets to tear down after SIGTERM
UP_TIMEOUT = 300.0
DOWN_TIMEOUT = 120.0
PARALLEL_TIMEOUT = 1200.0
MEASUREMENTS = ("images", "overhead", "ready", "fresh", "parallel")


class BenchError(Exception):
    """A measurement could not be taken: a command failed or timed out, something was left behind."""


# -- running commands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """A finished command: exit code, wall seconds, combined output."""

    cmd: list[str]
    code: int
    seconds: float
    output: str

    def tail(self, lines: int = 15) -> str:
        """The last lines of the output."""
        return "\n".join(self.output.strip().splitlines()[-lines:])

    def check(self) -> Proc:
        """Raise BenchError with the output's tail unless the command succeeded."""
        if self.code != 0:
            raise BenchError(f"`{shlex.join(self.cmd)}` exited {self.code}:\n{self.tail()}")
        return self


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (dockyard and compose tear down on it), then SIGKILL at a deadline."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=TERM_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> Started:
    """Start ``cmd`` with its output going to a temporary file."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by Started.finish
    began = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env or os.environ), stdout=out, stderr=subprocess.STDOUT)
    return Started(list(cmd), proc, out, began)


@dataclass
class Started:
    """A running command whose wall time is taken from just before it started."""

    cmd: list[str]
    proc: subprocess.Popen[bytes]
    out: Any
    began: float

    def finish(self, timeout: float) -> Proc:
        """Wait to a deadline; stop it and raise BenchError when it does not end in time."""
        try:
            code = self.proc.wait(timeout=timeout)
            seconds = time.perf_counter() - self.began
        except subprocess.TimeoutExpired:
            _stop(self.proc)
            self.out.close()
            raise BenchError(f"`{shlex.join(self.cmd)}` did not end within {timeout:g}s; stopped") from None
        except BaseException:  # Ctrl-C: stop the child (it tears down), then re-raise
            _stop(self.proc)
            self.out.close()
            raise
        self.out.seek(0)
        text = self.out.read().decode("utf-8", "replace")
        self.out.close()
        return Proc(self.cmd, code, seconds, text)


def run(cmd: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> Proc:
    """Run ``cmd`` to a deadline; its exit code, wall seconds and output."""
    return start(cmd, env=env, cwd=cwd).finish(timeout)


def compose_env() -> dict[str, str]:
    """Environment of the bare `docker compose` baselines."""
    return {**os.environ, "BASE_IMAGE": BASE_IMAGE}


def dockyard_env() -> dict[str, str]:
    """Environment of `dockyard` commands: wide, uncoloured output that the bench parses."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("BASE_IMAGE", None)  # dockyard resolves the base image itself
    return env


def compose_cmd(project: str, files: Sequence[str | Path], *args: str) -> list[str]:
    """``docker compose -p PROJECT -f FILE ... ARGS``."""
    cmd = ["docker", "compose", "-p", project]
    for path in files:
        cmd += ["-f", str(path)]
    return [*cmd, *args]


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def busy_cpu_seconds() -> float:
    """CPU-seconds the whole host has been busy since boot: all but idle, iowait and steal.

    Host-wide on purpose: a stack's cost is mostly outside this process (dockerd, containerd,
    runc, the kernel's network setup, the services themselves). psutil reads /proc/stat on
    Linux and the kernel's counters on macOS, where irq and softirq are not reported.
    """
    times = psutil.cpu_times()
    # Steal is time the hypervisor gave to others: not work done here.
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))


def cores() -> int:
    """The host's CPUs: what busy_cpu_seconds adds up (not this process's affinity)."""
    return os.cpu_count() or 1


# -- the host and the stack ------------------------------------------------------------------


def published_ports(files: Sequence[str]) -> dict[str, dict[int, int]]:
    """Service -> container port -> host port that the compose files publish (as compose sees them)."""
    proc = run(compose_cmd("bench-config", files, "config", "--format", "json"), timeout=60, env=compose_env())
    config = json.loads(proc.check().output[proc.output.index("{") :])
    ports: dict[str, dict[int, int]] = {}
    for name, svc in config.get("services", {}).items():
        for port in svc.get("ports", []):
            if port.get("published"):
                ports.setdefault(name, {})[int(port["target"])] = int(port["published"])
    return ports


def port_free(port: int) -> bool:
    """Whether nothing listens on ``port`` of the host (any address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - compose publishes on every address
        except OSError:
            return False
    return True


def wait_ports_free(ports: Sequence[int], timeout: float = 120.0) -> None:
    """The baselines publish the files' fixed ports: wait to a deadline until nobody else holds them."""
    deadline = time.monotonic() + timeout
    while busy := [p for p in ports if not port_free(p)]:
        if time.monotonic() > deadline:
            raise BenchError(
                f"host ports {busy} stay busy, so bare compose cannot publish the demo's fixed ports; "
                "stop whatever listens there (`ss -ltnp`) and run the bench again"
            )
        time.sleep(1.0)


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200 right now (one try, 2 s)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - a loopback URL we built
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def leftovers(lease_id: str) -> list[str]:
    """Containers, networks and volumes still labelled with this lease (should be none)."""
    found = []
    for kind in ("ps -a", "network ls", "volume ls"):
        out = run(["docker", *kind.split(), "-q", "--filter", f"label=dockyard.lease={lease_id}"], timeout=60).check()
        found += [f"{kind.split()[0]} {line}" for line in out.output.split() if line]
    return found


def project_resources(project: str) -> list[str]:
    """Anything of compose project ``project`` still on the engine."""
    found = []
    for kind in ("ps -a", "network ls", "volume ls"):
        out = run(
            ["docker", *kind.split(), "-q", "--filter", f"label=com.docker.compose.project={project}"], timeout=60
        ).check()
        found += [f"{kind.split()[0]} {line}" for line in out.output.split() if line]
    return found


# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Median, min and max of some samples."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats | None:
        """Statistics of ``values`` (None when there are none)."""
        if not values:
            return None
        return cls(statistics.median(values), min(values), max(values), len(values))


@dataclass(frozen=True)
class Spec:
    """One row of the table: what A and B are, how they compare, and the target."""

    metric: str
    unit: str  # of the samples: "s", "ms" or "x"
    a: str  # sample key
    a_label: str
    b: str | None
    b_label: str
    compare: str | None  # "A/B", "B/A" or "A-B" on the medians
    target: str
    met: Callable[[Stats, Stats | None, float | None], bool] | None  # None: a peer, no target

    @property
    def phase(self) -> str:
        """The measurement (``--only`` name) that takes this row's samples."""
        return {"down": "ready", "ready1s": "ready"}.get(self.a.split(".")[0], self.a.split(".")[0])


SPECS = (
    Spec(
        "ready: demo stack up (s)",
        "s",
        "ready.dockyard",
        "dockyard acquire + up",
        "ready.compose",
        "compose up -d --wait",
        "A/B",
        "A/B <= 0.6",
        lambda _a, _b, r: r is not None and r <= 0.6,
    ),
    Spec(
        "ready: vs testcontainers (s)",
        "s",
        "ready.dockyard",
        "dockyard acquire + up",
        "ready.testcontainers",
        "DockerCompose.start",
        "A/B",
        "(peer)",
        None,
    ),
    Spec(
        "ready, 1 s health interval (s)",
        "s",
        "ready1s.dockyard",
        "dockyard acquire + up",
        "ready1s.compose",
        "compose up -d --wait",
        "A/B",
        "(context)",
        None,
    ),
    Spec(
        "overhead of dockyard itself (ms)",
        "ms",
        "overhead.dockyard",
        "python: import, settings, lease, override",
        "overhead.python",
        "python -c pass",
        "A-B",
        "A-B <= 150 ms",
        lambda _a, _b, r: r is not None and r <= 150,
    ),
    Spec(
        "fresh state per test (ms)",
        "ms",
        "fresh.reset",
        "db from template + Redis flush",
        None,
        "",
        None,
        "A <= 50 ms",
        lambda a, _b, _r: a.median <= 50,
    ),
    Spec(
        "fresh state vs recreate (ms)",
        "ms",
        "fresh.reset",
        "db from template + Redis flush",
        "fresh.recreate",
        "up --force-recreate --no-deps --wait postgres",
        "B/A",
        "B/A >= 20",
        lambda _a, _b, r: r is not None and r >= 20,
    ),
    Spec(
        "parallel e2e wall (s)",
        "s",
        "parallel.n",
        "{shards} berths",
        "parallel.1",
        "1 berth",
        "B/A",
        "B/A >= 1.6",
        lambda _a, _b, r: r is not None and r >= 1.6,
    ),
    Spec(
        "parallel: host CPU-seconds used",
        "s",
        "parallel.cpu.n",
        "{shards} berths",
        "parallel.cpu.1",
        "1 berth",
        "A/B",
        "(context)",
        None,
    ),
    Spec(
        "parallel: best B/A the host's CPUs allow",
        "x",
        "parallel.cpu_bound",
        "1-berth wall / ({shards}-berth CPU-s / cores)",
        None,
        "",
        None,
        "(context: >= 1.6 needed)",
        None,
    ),
    Spec(
        "parallel: slowest shard / mean",
        "x",
        "parallel.balance",
        "{shards} berths",
        None,
        "",
        None,
        "A <= 1.2",
        lambda a, _b, _r: a.median <= 1.2,
    ),
    Spec(
        "teardown: down (s)",
        "s",
        "down.dockyard",
        "Stack.down",
        "down.compose",
        "compose down -v",
        "A/B",
        "A <= 1.5 s",
        lambda a, _b, _r: a.median <= 1.5,
    ),
    Spec(
        "teardown: vs testcontainers (s)",
        "s",
        "down.dockyard",
        "Stack.down",
        "down.testcontainers",
        "DockerCompose.stop",
        "A/B",
        "(peer)",
        None,
    ),
    Spec(
        "build once: warm `dockyard images` (s)",
        "s",
        "images.warm",
        "dockyard images",
        None,
        "",
        None,
        "all cached",
        None,  # judged on the counts, below
    ),
    Spec(
        "build once: 3 concurrent sessions, new image (s)",
        "s",
        "images.concurrent",
        "3 x dockyard images",
        None,
        "",
        None,
        "built exactly once",
        None,  # judged on the counts, below
    ),
)


@dataclass
class Bench:
    """What one run collects."""

    rounds: int
    quick: bool
    shards: int
    samples: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, list[int]] = field(default_factory=dict)
    details: dict[str, list[Any]] = field(default_factory=dict)
    load: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    projects: set[str] = field(default_factory=set)  # bare compose projects started: removed at the end
    demo_ports: dict[str, dict[int, int]] = field(default_factory=dict)

    def add(self, key: str, value: float) -> None:
        """Record one sample."""
        self.samples.setdefault(key, []).append(value)
        say(f"  {key}: {value:.3f}")

    def count(self, key: str, value: int) -> None:
        """Record one count (e.g. images built)."""
        self.counts.setdefault(key, []).append(value)

    def detail(self, key: str, value: Any) -> None:
        """Record something that explains a sample."""
        self.details.setdefault(key, []).append(value)

    def note_load(self, phase: str, round_: int) -> None:
        """The host's load average when a phase starts (the machine is shared)."""
        self.load.append({"phase": phase, "round": round_, "loadavg": loadavg()})


def say(message: str) -> None:
    """One progress line (stderr; the table goes to stdout)."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


# -- A and B: ready and down -----------------------------------------------------------------


def dockyard_up_down(bench: Bench, files: Sequence[str] = DEMO_FILES, key: str = "ready") -> None:
    """A: take a berth, start the demo stack healthy in it, check it answers, tear it down."""
    from dockyard import Stack, acquire_berth, load_settings  # noqa: PLC0415 - timed after import

    settings = load_settings(ROOT, env={**os.environ, "DOCKYARD_COMPOSE_FILES": ",".join(files)})
    began = time.perf_counter()
    with acquire_berth(settings, with_ports=False) as berth:
        acquired = time.perf_counter()
        stack = Stack(settings, berth)
        modelled = time.perf_counter()
        try:
            stack.up(build=False)  # images are built once, like `--no-build` of the baseline
            ready = time.perf_counter()
            bench.add(f"{key}.dockyard", ready - began)
            parts = {"acquire": acquired - began, "compose config": modelled - acquired, "up": ready - modelled}
            bench.detail(f"{key}.dockyard.parts_s", {k: round(v, 3) for k, v in parts.items()})
            bench.detail(
                f"{key}_ok.dockyard",
                http_ok(stack.url("backend", 8000) + "/health") and http_ok(stack.url("auth", 8000) + "/health"),
            )
        finally:
            down_began = time.perf_counter()
            stack.down()
            down = time.perf_counter() - down_began
        left = leftovers(berth.record.lease_id)  # while the berth is still ours
    if left:
        raise BenchError(f"dockyard down left {left} of lease {berth.record.lease_id}")
    if key == "ready":
        bench.add("down.dockyard", down)


def compose_up_down(bench: Bench, files: Sequence[str] = DEMO_FILES, key: str = "ready") -> None:
    """B: bare `docker compose up -d --wait` and `down -v` of the same files."""
    project = f"bench-bare-{os.getpid()}"
    bench.projects.add(project)
    wait_ports_free([p for m in bench.demo_ports.values() for p in m.values()])
    up = run(
        compose_cmd(project, files, "up", "-d", "--wait", "--no-build", "--pull", "never"),
        timeout=UP_TIMEOUT,
        env=compose_env(),
    )
    try:
        up.check()
        bench.add(f"{key}.compose", up.seconds)
        bench.detail(f"{key}_ok.compose", demo_answers(bench.demo_ports))
    finally:
        down = run(compose_cmd(project, files, "down", "-v"), timeout=DOWN_TIMEOUT, env=compose_env())
    down.check()
    if left := project_resources(project):
        raise BenchError(f"compose down -v left {left} of {project}")
    if key == "ready":
        bench.add("down.compose", down.seconds)


def demo_answers(ports: Mapping[str, Mapping[int, int]]) -> bool:
    """Whether the demo's backend and auth answer /health on the files' own ports."""
    return all(http_ok(f"http://127.0.0.1:{ports[svc][8000]}/health") for svc in ("backend", "auth"))


def testcontainers_up_down(bench: Bench) -> None:
    """Peer: testcontainers-python's DockerCompose on the same files (in a child, to bound its time)."""
    project = f"bench-tc-{os.getpid()}"
    bench.projects.add(project)
    wait_ports_free([p for m in bench.demo_ports.values() for p in m.values()])
    env = {**compose_env(), "COMPOSE_PROJECT_NAME": project}
    proc = run(
        [sys.executable, str(Path(__file__).resolve()), "--testcontainers-child"],
        timeout=UP_TIMEOUT + DOWN_TIMEOUT,
        env=env,
    )
    if proc.code != 0:
        compose_down_quietly(project, DEMO_FILES)
    proc.check()
    result = json.loads(proc.output.strip().splitlines()[-1])
    if left := project_resources(project):
        raise BenchError(f"DockerCompose.stop left {left} of {project}")
    bench.add("ready.testcontainers", result["up"])
    bench.detail("ready_ok.testcontainers", result["ready_ok"])
    bench.add("down.testcontainers", result["down"])


def testcontainers_child() -> int:
    """In the child: start the demo stack with DockerCompose, check it, stop it; print the times."""
    from testcontainers.compose import DockerCompose  # noqa: PLC0415 - only the child needs it

    ports = published_ports(DEMO_FILES)
    compose = DockerCompose(
        context=str(ROOT),
        compose_file_name=list(DEMO_FILES),
        wait=True,  # `docker compose up --wait`: healthy by the files' own health checks
        pull=False,
        build=False,
    )
    began = time.perf_counter()
    try:
        compose.start()
        up = time.perf_counter() - began
        ready_ok = demo_answers(ports)
    finally:
        began = time.perf_counter()
        compose.stop()  # `docker compose down --volumes`
        down = time.perf_counter() - began
    print(json.dumps({"up": up, "down": down, "ready_ok": ready_ok}))
    return 0


def compose_down_quietly(project: str, files: Sequence[str]) -> None:
    """Cleanup: remove whatever of ``project`` is left (idempotent)."""
    if project_resources(project):
        run(
            compose_cmd(project, files, "down", "-v", "--remove-orphans", "-t", "1"),
            timeout=DOWN_TIMEOUT,
            env=compose_env(),
        ).check()


def measure_ready(bench: Bench, round_: int) -> None:
    """dockyard, bare compose and testcontainers, in an order that rotates each round."""
    steps: list[tuple[str, Callable[[Bench], None]]] = [
        ("dockyard", dockyard_up_down),
        ("compose", compose_up_down),
        ("testcontainers", testcontainers_up_down),
        ("dockyard, 1 s checks", lambda b: dockyard_up_down(b, FAST_CHECK_FILES, "ready1s")),
        ("compose, 1 s checks", lambda b: compose_up_down(b, FAST_CHECK_FILES, "ready1s")),
    ]
    shift = round_ % len(steps)
    for name, step in steps[shift:] + steps[:shift]:
        say(f"round {round_ + 1}: ready/down with {name}")
        guarded(bench, f"ready.{name}", lambda step=step: step(bench))  # type: ignore[misc]


# -- A and B: dockyard's own overhead -----------------------------------------------------------

_OVERHEAD = """\
import json, time
t0 = time.perf_counter()
import dockyard
t1 = time.perf_counter()
settings = dockyard.load_settings()
t2 = time.perf_counter()
with dockyard.acquire_berth(settings, with_ports=False) as berth:
    t3 = time.perf_counter()
    dockyard.Stack(settings, berth).write_override().unlink()
    t4 = time.perf_counter()
t5 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "settings": t2 - t1, "lease": t3 - t2, "override": t4 - t3, "release": t5 - t4}))
"""


def measure_overhead(bench: Bench, round_: int) -> None:
    """Wall time of a Python doing what dockyard adds before `compose up`, against `python -c pass`."""
    reps = 2 if bench.quick else 4
    for rep in range(reps):
        pair = [("overhead.python", "pass"), ("overhead.dockyard", _OVERHEAD)]
        for key, code in pair if (round_ + rep) % 2 else pair[::-1]:
            proc = run([sys.executable, "-c", code], timeout=60, env=dockyard_env()).check()
            bench.add(key, proc.seconds * 1000)
            if key == "overhead.dockyard":
                parts = json.loads(proc.output.strip().splitlines()[-1])
                bench.detail("overhead.parts_ms", {k: round(v * 1000, 1) for k, v in parts.items()})


# -- A and B: fresh state per test ---------------------------------------------------------------


def _fresh_state_class() -> Any:
    # The object the `dockyard_fresh` fixture hands each test; the package does not export it
    # (yet), and a pytest run per sample would time pytest, not the reset.
    import dockyard  # noqa: PLC0415

    exported = getattr(dockyard, "FreshState", None)
    if exported is not None:
        return exported
    from dockyard.stack.fresh import FreshState  # noqa: PLC0415

    return FreshState


def _seed(fresh: Any) -> None:
    """Give the database something to copy: a few tables, a few thousand rows, like migrations would."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(fresh.dsn, autocommit=True) as conn:
        for table in ("accounts", "notes", "events"):
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id serial PRIMARY KEY, body text, at timestamptz)")
            rows = "SELECT md5(i::text), now() FROM generate_series(1, 1000) i"
            conn.execute(f"INSERT INTO {table} (body, at) {rows}")
            conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_body ON {table} (body)")


def _dirty(fresh: Any) -> None:
    """What a test leaves behind (untimed): rows and keys the next reset has to undo."""
    import psycopg  # noqa: PLC0415
    import redis  # noqa: PLC0415

    with psycopg.connect(fresh.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO notes (body, at) SELECT 'left by a test', now() FROM generate_series(1, 50)")
    client = redis.Redis.from_url(fresh.redis_url, socket_timeout=5)
    try:
        client.mset({f"session:{i}": "x" * 64 for i in range(50)})
    finally:
        client.close()


def measure_fresh(bench: Bench, round_: int) -> None:
    """In a berth of the infra stack: resets from the template (A) and recreating postgres (B), interleaved."""
    from dockyard import Stack, acquire_berth, load_settings  # noqa: PLC0415

    fresh_state = _fresh_state_class()
    settings = load_settings(ROOT, env={**os.environ, "DOCKYARD_COMPOSE_FILES": ",".join(INFRA_FILES)})
    resets = 5 if bench.quick else 10
    steps = ["reset", "recreate", "reset", "recreate"]
    if round_ % 2:
        steps = steps[1:] + steps[:1]  # recreate first in odd rounds
    with acquire_berth(settings, with_ports=False) as berth:
        stack = Stack(settings, berth)
        fresh: Any = None
        try:
            stack.up(build=False)
            for step in steps:
                if step == "reset":
                    if fresh is None:
                        fresh = fresh_state(stack)
                        _seed(fresh)
                        fresh.snapshot()
                    for _ in range(resets):
                        _dirty(fresh)
                        bench.add("fresh.reset", fresh.reset() * 1000)
                else:
                    if fresh is not None:
                        fresh.close()  # its connection dies with the container
                        fresh = None
                    files = [*settings.compose_files, stack.override_path]
                    proc = run(
                        compose_cmd(
                            stack.project,
                            files,
                            "up",
                            "-d",
                            "--force-recreate",
                            "--no-deps",
                            "--wait",
                            "--no-build",
                            "--pull",
                            "never",
                            "postgres",
                        ),
                        timeout=UP_TIMEOUT,
                        env=compose_env(),
                    ).check()
                    bench.add("fresh.recreate", proc.seconds * 1000)
        finally:
            if fresh is not None:
                fresh.close()
            stack.down()
        if left := leftovers(berth.record.lease_id):
            raise BenchError(f"infra stack down left {left}")


# -- A and B: parallel shards ------------------------------------------------------------------

_WHY = re.compile(r"shard \d+/\d+ ended \(exit -?\d+\).*|stack \S+ did not become healthy: .*|.*Error: .*")
_ENDED = re.compile(r"shard (\d+)/(\d+) ended \(exit (-?\d+)\) after ([\d.]+)s")
_LAUNCHED = re.compile(r"shard \d+/\d+: \d+ test\(s\), log ")


def has_parallel() -> bool:
    """Whether this dockyard has the `parallel` task."""
    proc = run([sys.executable, "-m", "dockyard", "--list"], timeout=60, env=dockyard_env()).check()
    return re.search(r"^\s*parallel\b", proc.output, re.MULTILINE) is not None


def parallel_run(shards: int, use_task: bool, log: Path) -> tuple[float, list[float]]:
    """Wall seconds of the demo journeys over ``shards`` berths, and each shard's wall seconds."""
    if use_task:
        cmd = [sys.executable, "-m", "dockyard", "parallel", "--shards", str(shards), "--", "tests/e2e"]
        proc = run(cmd, timeout=PARALLEL_TIMEOUT, env=dockyard_env())
        log.write_text(proc.output)
        if proc.code != 0:
            # The shards' own verdicts say why far better than the summary table at the end.
            why = sorted({m.group(0) for m in _WHY.finditer(proc.output)})
            raise BenchError(
                f"`{shlex.join(cmd)}` exited {proc.code} (log: {log}):\n" + "\n".join(why or [proc.tail()])
            )
        walls = [float(m.group(4)) for m in _ENDED.finditer(proc.output)]
        # A shard the split left empty (its stack would start too late to help) never starts.
        launched = len(_LAUNCHED.findall(proc.output))
        if not walls or len(walls) != launched:
            raise BenchError(f"found {len(walls)} 'shard K/N ended' lines for {launched} shards started in {log}")
        return proc.seconds, walls
    # Without the task: the test files dealt round-robin to N concurrent `dockyard run -- pytest`.
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "e2e").glob("test_*.py"))
    groups = [files[i::shards] for i in range(shards) if files[i::shards]]
    began = time.perf_counter()
    started = [
        start(
            [
                sys.executable,
                "-m",
                "dockyard",
                "run",
                "--",
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                *group,
            ],
            env=dockyard_env(),
        )
        for group in groups
    ]
    procs = [s.finish(PARALLEL_TIMEOUT) for s in started]
    wall = time.perf_counter() - began
    log.write_text("\n\n".join(f"$ {shlex.join(p.cmd)}\n{p.output}" for p in procs))
    for proc in procs:
        proc.check()
    return wall, [p.seconds for p in procs]


def measure_parallel(bench: Bench, round_: int) -> None:
    """The demo journeys with N berths (A) and with one (B); B first in the first round records durations."""
    use_task = has_parallel()
    bench.detail("parallel.via", "dockyard parallel" if use_task else "concurrent dockyard run")
    order = [1, bench.shards] if round_ % 2 == 0 else [bench.shards, 1]
    measured: dict[str, tuple[float, float]] = {}  # "1" / "n" -> (wall s, host CPU-s)
    for shards in order:
        say(f"round {round_ + 1}: tests/e2e over {shards} berth(s)")
        log = RESULTS / "logs" / f"parallel-{shards}-round{round_ + 1}.log"

        def one(shards: int = shards, log: Path = log) -> None:
            cpu = busy_cpu_seconds()
            wall, walls = parallel_run(shards, use_task, log)
            used = busy_cpu_seconds() - cpu
            which = "1" if shards == 1 else "n"
            bench.add(f"parallel.{which}", wall)
            bench.add(f"parallel.cpu.{which}", used)
            measured[which] = (wall, used)
            if shards > 1:
                bench.add("parallel.balance", max(walls) / statistics.mean(walls))
                bench.detail("parallel.shard_walls", walls)

        guarded(bench, f"parallel.{shards}", one)
    if len(measured) == 2:
        # However well the shards overlap, N berths cannot finish before the CPU-seconds they
        # use are spent on this host's cores: the 1-berth wall over that is the best B/A here.
        bench.add("parallel.cpu_bound", measured["1"][0] / (measured["n"][1] / cores()))


# -- build once ----------------------------------------------------------------------------------

_IMAGE_ROW = re.compile(r"^\W*(\S+:\S+)\W+(cached|built)\W*$", re.MULTILINE)


def image_statuses(output: str) -> dict[str, str]:
    """Image -> "cached" / "built" from the table `dockyard images` prints."""
    return {m.group(1): m.group(2) for m in _IMAGE_ROW.finditer(output)}


def measure_images(bench: Bench, round_: int) -> None:
    """Warm `dockyard images` of the demo (all cached), and 3 sessions racing to build one new image."""
    proc = run([sys.executable, "-m", "dockyard", "images"], timeout=600, env=dockyard_env()).check()
    statuses = image_statuses(proc.output)
    if not statuses:
        raise BenchError(f"no image rows in the output of `dockyard images`:\n{proc.tail()}")
    bench.add("images.warm", proc.seconds)
    bench.count("images.warm.not_cached", sum(s != "cached" for s in statuses.values()))
    bench.detail("images.warm", statuses)
    guarded(bench, "images.concurrent", lambda: concurrent_build(bench, round_))


_ONCE_COMPOSE = """\
services:
  once:
    image: {image}
    build:
      context: .
      args:
        BASE_IMAGE: ${{BASE_IMAGE:-debian:bookworm-slim}}
    command: ["sleep", "infinity"]
"""
_ONCE_DOCKERFILE = """\
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${{BASE_IMAGE}}
RUN echo {nonce} > /bench-nonce
"""


def concurrent_build(bench: Bench, round_: int) -> None:
    """Three `dockyard images` at once on a project whose image is new: one builds, two wait and reuse it."""
    image = "dockyard-bench/once:bench"
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-once-") as tmp:
        project = Path(tmp)
        (project / "pyproject.toml").write_text(
            '[tool.dockyard]\ncompose_files = ["compose.yaml"]\nproject_prefix = "bench-once"\n'
        )
        (project / "compose.yaml").write_text(_ONCE_COMPOSE.format(image=image))
        (project / "Dockerfile").write_text(_ONCE_DOCKERFILE.format(nonce=f"{os.getpid()}-{round_}-{time.time_ns()}"))
        try:
            began = time.perf_counter()
            started = [
                start([sys.executable, "-m", "dockyard", "images"], env=dockyard_env(), cwd=project) for _ in range(3)
            ]
            procs = [s.finish(600) for s in started]
            wall = time.perf_counter() - began
            for proc in procs:
                proc.check()
        finally:
            run(["docker", "image", "rm", "-f", image], timeout=60)
    built = sum(image_statuses(p.output).get(image) == "built" for p in procs)
    bench.add("images.concurrent", wall)
    bench.count("images.concurrent.built", built)


# -- the run -------------------------------------------------------------------------------------


def guarded(bench: Bench, name: str, step: Callable[[], None]) -> None:
    """Run one measurement; a failure is recorded (and makes the exit status 1), the others go on."""
    try:
        step()
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - the boundary of one measurement: record it, go on
        detail = str(exc) if isinstance(exc, BenchError) else "".join(traceback.format_exception(exc)[-6:])
        bench.errors.append({"measurement": name, "error": f"{type(exc).__name__}: {detail}"})
        say(f"{name} failed: {type(exc).__name__}: {detail.splitlines()[0] if detail else ''}")


PHASES: dict[str, Callable[[Bench, int], None]] = {
    "images": measure_images,
    "overhead": measure_overhead,
    "ready": measure_ready,
    "fresh": measure_fresh,
    "parallel": measure_parallel,
}


def versions() -> dict[str, str]:
    """Versions of what is measured and what it runs on."""
    found = {"python": platform.python_version()}
    for dist in ("dockyard", "testcontainers", "python-on-whales", "docker"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    for key, cmd in (
        ("docker_engine", ["docker", "version", "--format", "{{.Server.Version}}"]),
        ("docker_compose", ["docker", "compose", "version", "--short"]),
        ("git", ["git", "describe", "--always", "--dirty"]),
    ):
        with contextlib.suppress(BenchError, OSError):
            found[key] = run(cmd, timeout=30).check().output.strip()
    return found


def row(spec: Spec, bench: Bench) -> dict[str, Any]:
    """One table row: statistics of A and B, the comparison of the medians, the verdict."""
    a = Stats.of(bench.samples.get(spec.a, []))
    b = Stats.of(bench.samples.get(spec.b, [])) if spec.b else None
    ratio: float | None = None
    if a and b:
        if spec.compare == "A/B":
            ratio = a.median / b.median
        elif spec.compare == "B/A":
            ratio = b.median / a.median
        elif spec.compare == "A-B":
            ratio = a.median - b.median
    met: bool | None = None
    if spec.a == "images.warm":
        met = sum(bench.counts.get("images.warm.not_cached", [1])) == 0
    elif spec.a == "images.concurrent":
        met = all(c == 1 for c in bench.counts.get("images.concurrent.built", [0]))
    elif a is not None and spec.met is not None and (b is not None or not spec.b):
        met = spec.met(a, b, ratio)
    missing = a is None or (spec.b is not None and b is None and spec.met is not None)
    verdict = "error" if missing else "-" if met is None else "yes" if met else "no"
    return {
        "metric": spec.metric,
        "unit": spec.unit,
        "a": spec.a_label.format(shards=bench.shards),
        "a_stats": asdict(a) if a else None,
        "b": spec.b_label,
        "b_stats": asdict(b) if b else None,
        "compare": spec.compare,
        "ratio": ratio,
        "target": spec.target,
        "met": verdict,
    }


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.1f}"
    return f"{value:.2f}"


def markdown(rows: Sequence[dict[str, Any]], meta: Mapping[str, Any], errors: Sequence[Mapping[str, str]]) -> str:
    """The results as Markdown: a short header, the table, notes, errors."""
    head = ["metric", "A", "A med", "A min", "A max", "B", "B med", "B min", "B max", "ratio", "target", "met"]
    lines = [
        "# dockyard benchmark",
        "",
        f"{meta['finished']} · {meta['rounds']} round(s) · {meta['cpus']} CPUs · "
        f"load average {meta['loadavg_start']} at start, {meta['loadavg_end']} at end "
        f"(max 1-min {meta['loadavg_max_1m']}) · git {meta['versions'].get('git', '?')}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        a, b, unit = r["a_stats"] or {}, r["b_stats"] or {}, r["unit"]
        ratio = (
            "-"
            if r["ratio"] is None
            else (
                f"{r['ratio']:.1f} ms ({r['compare']})"
                if r["compare"] == "A-B"
                else f"{r['ratio']:.2f} ({r['compare']})"
            )
        )
        cells = [
            r["metric"],
            r["a"],
            *(_num(a.get(k), unit) for k in ("median", "min", "max")),
            r["b"] or "-",
            *(_num(b.get(k), unit) for k in ("median", "min", "max")),
            ratio,
            r["target"],
            r["met"],
        ]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    lines += ["", "Medians over all samples; `-`: no target (a peer for comparison) or no baseline.", ""]
    if errors:
        lines += ["## Errors", ""]
        for e in errors:
            first, *rest = e["error"].splitlines() or [""]
            lines.append(f"- **{e['measurement']}**: {first}")
            if rest:
                lines += ["", "  ```", *(f"  {line}" for line in rest[-15:]), "  ```"]
    return "\n".join(lines) + "\n"


def chart(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """One small bar chart per metric: medians of A and B, whiskers from min to max."""
    import matplotlib as mpl  # noqa: PLC0415 - only the report needs it

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    shown = [r for r in rows if r["a_stats"] or r["b_stats"]]
    cols = 3
    nrows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(cols * 4.6, nrows * 3.2), squeeze=False)
    for ax, r in zip(axes.flat, shown, strict=False):
        bars = [
            (f"{side}: {r[side.lower()]}", r[f"{side.lower()}_stats"], color)
            for side, color in (("A", "#2b8cbe"), ("B", "#bdbdbd"))
            if r[f"{side.lower()}_stats"]
        ]
        for i, (_label, s, color) in enumerate(bars):
            ax.bar(i, s["median"], color=color, width=0.6)
            ax.errorbar(
                i, s["median"], yerr=[[s["median"] - s["min"]], [s["max"] - s["median"]]], color="black", capsize=4
            )
            ax.annotate(
                _num(s["median"], r["unit"]),
                (i, s["median"]),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(6, 2),
                textcoords="offset points",
            )
        ax.set_xlim(-0.75, 1.75)  # room for two bars, so a lone one is as wide as a pair's
        ax.set_xticks(range(len(bars)), [_wrap(label, 22) for label, _s, _c in bars], fontsize=7)
        ax.set_title(f"{r['metric']}\ntarget {r['target']}: {r['met']}", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of A and B interleaved (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 round, fewer repetitions inside each")
    parser.add_argument("--shards", type=int, default=4, help="berths of the parallel run (default 4)")
    parser.add_argument(
        "--only", default=",".join(MEASUREMENTS), help=f"comma-separated subset of {','.join(MEASUREMENTS)}"
    )
    parser.add_argument("--testcontainers-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.only = [m.strip() for m in args.only.split(",") if m.strip()]
    if unknown := sorted(set(args.only) - set(MEASUREMENTS)):
        parser.error(f"--only: unknown {unknown}; choose from {', '.join(MEASUREMENTS)}")
    if args.quick:
        args.rounds = 1
    if args.rounds < 1 or args.shards < 2:
        parser.error("--rounds must be 1 or more and --shards 2 or more")
    return args


@contextlib.contextmanager
def cleaning(bench: Bench) -> Iterator[None]:
    """Remove whatever is left of the bare compose projects the bench started, whatever happens."""
    try:
        yield
    finally:
        for project in sorted(bench.projects):
            try:
                compose_down_quietly(project, DEMO_FILES)
            except Exception as exc:  # noqa: BLE001 - cleanup must try every project; the failure is recorded
                bench.errors.append({"measurement": "cleanup", "error": f"{project}: {type(exc).__name__}: {exc}"})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurements, write the results, print the table; 0 unless a measurement failed."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.testcontainers_child:
        return testcontainers_child()
    bench = Bench(rounds=args.rounds, quick=args.quick, shards=args.shards)
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    load_start = loadavg()
    say(f"{args.rounds} round(s) of {', '.join(args.only)}; load average {load_start}")
    try:
        with cleaning(bench):
            bench.demo_ports = published_ports(DEMO_FILES)
            for round_ in range(args.rounds):
                for phase in args.only:
                    say(f"round {round_ + 1}/{args.rounds}: {phase}")
                    bench.note_load(phase, round_)
                    guarded(bench, phase, lambda phase=phase, round_=round_: PHASES[phase](bench, round_))  # type: ignore[misc]
    except KeyboardInterrupt:
        say("interrupted; cleaned up")
        return 130
    rows = [row(spec, bench) for spec in SPECS if spec.phase in args.only]
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": args.rounds,
        "quick": args.quick,
        "shards": args.shards,
        "cpus": os.cpu_count(),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "loadavg_max_1m": max([load_start[0], *(x["loadavg"][0] for x in bench.load)]),
        "base_image": BASE_IMAGE,
        "versions": versions(),
    }
    results = {
        "meta": meta,
        "rows": rows,
        "samples": bench.samples,
        "counts": bench.counts,
        "details": bench.details,
        "load": bench.load,
        "errors": bench.errors,
    }
    (RESULTS / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(rows, meta, bench.errors)
    (RESULTS / "results.md").write_text(text)
    try:
        chart(rows, RESULTS / "results.png")
    except Exception as exc:  # noqa: BLE001 - a missing chart must not hide the table; it is an error
        bench.errors.append({"measurement": "chart", "error": f"{type(exc).__name__}: {exc}"})
    print(text)
    if bench.errors:
        say(f"{len(bench.errors)} measurement(s) failed; see {RESULTS / 'results.md'}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
