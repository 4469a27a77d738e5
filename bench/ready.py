"""Ready and down, whole process against whole process: dockyard's commands against bare compose.

Each side is what a user types, as a fresh process: ``dockyard up --json`` / ``dockyard down``
/ ``dockyard run -- true`` against ``docker compose up -d --wait`` / ``down -v``, on the demo's
compose files with their own health-check intervals ("own") and with every check at 1 s
("1s", an override the bench writes: the best a compose user can hand-tune). The order of the
steps rotates from round to round. Every stack must answer ``/health`` once declared ready
(self-check ``ready_ok``) and leave nothing behind; testcontainers is the peer row
(:mod:`bench.peer`), and the stack's own start inside one process the floor (:mod:`bench.floor`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bench import ROOT, BenchError, say
from bench.floor import measure_floor
from bench.host import (
    DEMO_FILES,
    compose_cmd,
    compose_config,
    compose_env,
    dockyard_cmd,
    dockyard_env,
    fast_check_files,
    http_ok,
    project_resources,
    published_ports,
    wait_ports_free,
)
from bench.peer import testcontainers_up_down
from bench.procs import Proc, run
from bench.readout import RunReport, UpInfo, holder_pid, keepers_since, live_projects
from bench.samples import Bench

UP_TIMEOUT = 300.0
DOWN_TIMEOUT = 120.0
ANSWERING = ("backend", "auth")  # the demo services serving /health on container port 8000


def configs() -> dict[str, tuple[str, ...]]:
    """The two configurations: the files as they are, and every check at 1 s."""
    return {"own": DEMO_FILES, "1s": fast_check_files(DEMO_FILES)}


def dockyard_up_down(bench: Bench, cfg: str, files: Sequence[str]) -> None:
    """A: `dockyard up --json`, the stack must answer, `dockyard down`; nothing may be left."""
    env = dockyard_env(files)
    up = run(dockyard_cmd("up", "--json"), timeout=UP_TIMEOUT, env=env).check()
    try:
        info = UpInfo.parse(up.json())
    except BenchError:
        # The stack is up, but which berth is unknown: every stack `up` kept from here goes.
        run(dockyard_cmd("down", "--all"), timeout=DOWN_TIMEOUT, env=env)
        raise
    try:
        answered = all(http_ok(info.url(svc, 8000, "/health")) for svc in ANSWERING)
        bench.check(f"ready_ok.dockyard.{cfg}", answered, f"{', '.join(ANSWERING)} /health in {info.project}")
    finally:
        down = down_berth(info, env)
    down.check()
    left_nothing(info)
    status = run(dockyard_cmd("status", "--json"), timeout=60, env=env).check()
    if info.project in live_projects(status.json()):
        raise BenchError(f"berth {info.index} ({info.project}) is still live after `dockyard down`")
    bench.add_proc(f"up.{cfg}.dockyard", up)
    bench.add_proc(f"down.{cfg}.dockyard", down)
    bench.add(f"updown.{cfg}.dockyard.cpu", up.cpu + down.cpu)
    bench.add(f"updown.{cfg}.dockyard", up.seconds + down.seconds)


def down_berth(info: UpInfo, env: Mapping[str, str]) -> Proc:
    """`dockyard down --berth N` of the stack ``info`` names; its keeper stopped by hand if that failed."""
    down = run(dockyard_cmd("down", "--berth", str(info.index)), timeout=DOWN_TIMEOUT, env=env)
    if down.code != 0:
        stop_keeper(info.project, env)
    return down


def left_nothing(info: UpInfo) -> None:
    """BenchError when anything of the stack ``info`` names is still on the engine."""
    if left := project_resources(info.project):
        raise BenchError(f"dockyard down left {left} of {info.project}")


def stop_keeper(project: str, env: Mapping[str, str], pid: int | None = None) -> None:
    """Cleanup after a failed `dockyard down`: SIGTERM the keeper holding ``project`` (it tears down) and wait."""
    if pid is None:
        status = run(dockyard_cmd("status", "--json"), timeout=60, env=env)
        pid = holder_pid(status.json(), project) if status.code == 0 else None
    if pid is None:
        return
    say(f"stopping the keeper of {project} (pid {pid}) itself")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + DOWN_TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)  # polling the keeper's exit to a deadline
    raise BenchError(f"the keeper of {project} (pid {pid}) did not end within {DOWN_TIMEOUT:g}s of SIGTERM")


def stop_keepers_since(since: float) -> None:
    """Cleanup at the end of a run: stop the keepers `dockyard up` left from this checkout since ``since``.

    What an interrupted `dockyard up` leaves: its keeper runs in a session of its own.
    """
    status = run(dockyard_cmd("status", "--json"), timeout=60, env=dockyard_env())
    if status.code == 0:
        for project, pid in keepers_since(status.json(), str(ROOT), since).items():
            stop_keeper(project, dockyard_env(), pid)


def dockyard_session(bench: Bench, cfg: str, files: Sequence[str]) -> None:
    """A: `dockyard run -- true`, a whole session: berth, stack up, the command, teardown."""
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-run-") as tmp:
        report_path = Path(tmp) / "report.json"
        env = dockyard_env(files, DOCKYARD_RUN_REPORT=str(report_path))
        proc = run(dockyard_cmd("run", "--", "true"), timeout=UP_TIMEOUT + DOWN_TIMEOUT, env=env).check()
        report = RunReport.parse(_json_file(report_path))
    if left := project_resources(report.project):
        raise BenchError(f"dockyard run left {left} of {report.project}")
    bench.add_proc(f"session.{cfg}.dockyard", proc)
    bench.detail(f"session.{cfg}.dockyard.timings", report.timings)


def _json_file(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(f"no readable run report at {path}: {exc}") from None


def compose_up_down(bench: Bench, cfg: str, files: Sequence[str], ports: Mapping[str, Mapping[int, int]]) -> None:
    """B: bare `docker compose up -d --wait`, the stack must answer, `down -v`; nothing may be left."""
    project = f"bench-bare-{os.getpid()}"
    bench.projects.add(project)
    wait_ports_free([p for m in ports.values() for p in m.values()])
    up = run(compose_cmd(project, files, "up", "-d", "--wait"), timeout=UP_TIMEOUT, env=compose_env())
    try:
        up.check()
        answered = all(http_ok(f"http://127.0.0.1:{ports[svc][8000]}/health") for svc in ANSWERING)
        bench.check(f"ready_ok.compose.{cfg}", answered, f"{', '.join(ANSWERING)} /health in {project}")
    finally:
        down = run(compose_cmd(project, files, "down", "-v"), timeout=DOWN_TIMEOUT, env=compose_env())
    down.check()
    if left := project_resources(project):
        raise BenchError(f"compose down -v left {left} of {project}")
    bench.add_proc(f"up.{cfg}.compose", up)
    bench.add_proc(f"down.{cfg}.compose", down)
    bench.add(f"updown.{cfg}.compose.cpu", up.cpu + down.cpu)
    bench.add(f"updown.{cfg}.compose", up.seconds + down.seconds)
    # The whole session of bare compose is the two commands back to back.
    bench.add(f"session.{cfg}.compose", up.seconds + down.seconds)
    bench.add(f"session.{cfg}.compose.cpu", up.cpu + down.cpu)


def measure_ready(bench: Bench, round_: int) -> None:
    """dockyard, bare compose and testcontainers on both configurations, in an order rotating each round."""
    files = configs()
    ports = published_ports(compose_config(DEMO_FILES))
    steps: list[tuple[str, Callable[[], None]]] = []
    for cfg, cfg_files in files.items():
        steps += [
            (f"dockyard up/down, {cfg}", functools.partial(dockyard_up_down, bench, cfg, cfg_files)),
            (f"compose up/down, {cfg}", functools.partial(compose_up_down, bench, cfg, cfg_files, ports)),
            (f"dockyard run, {cfg}", functools.partial(dockyard_session, bench, cfg, cfg_files)),
            (f"the floor, {cfg}", functools.partial(measure_floor, bench, cfg, dockyard_env(cfg_files))),
        ]
    steps.append(("testcontainers, own", functools.partial(testcontainers_up_down, bench, ports)))
    shift = round_ % len(steps)
    for name, step in steps[shift:] + steps[:shift]:
        say(f"round {round_ + 1}: {name}")
        bench.guarded(f"ready: {name}", step)
