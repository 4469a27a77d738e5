"""The peer row: testcontainers-python's ``DockerCompose`` on the same files, up and down.

It runs in a child process (``python -m bench.peer``), so its time is bounded by a deadline
and a hung start cannot take the bench with it; the child prints one JSON line.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping

from bench import ROOT, BenchError
from bench.cpu import host_busy
from bench.host import (
    DEMO_FILES,
    compose_config,
    compose_down_quietly,
    compose_env,
    http_ok,
    project_resources,
    published_ports,
    wait_ports_free,
)
from bench.procs import run
from bench.samples import Bench

TIMEOUT = 420.0


def testcontainers_up_down(bench: Bench, ports: Mapping[str, Mapping[int, int]]) -> None:
    """Peer: `DockerCompose.start()` (healthy by the files' own checks) and `.stop()` in a child."""
    project = f"bench-tc-{os.getpid()}"
    bench.projects.add(project)
    wait_ports_free([p for m in ports.values() for p in m.values()])
    env = {**compose_env(), "COMPOSE_PROJECT_NAME": project}
    proc = run([sys.executable, "-m", "bench.peer"], timeout=TIMEOUT, env=env)
    if proc.code != 0:
        compose_down_quietly(project, DEMO_FILES)
    result = json.loads(proc.check().stdout.strip().splitlines()[-1])
    if left := project_resources(project):
        raise BenchError(f"DockerCompose.stop left {left} of {project}")
    for step in ("up", "down"):
        bench.add(f"{step}.own.testcontainers", result[step])
        bench.add(f"{step}.own.testcontainers.cpu", result[f"{step}_cpu"])
    bench.check("ready_ok.testcontainers.own", result["ready_ok"], "backend, auth /health")


def child() -> int:
    """In the child: start the demo stack with DockerCompose, check it answers, stop it; print the times."""
    from testcontainers.compose import DockerCompose  # noqa: PLC0415 - only the child needs it

    ports = published_ports(compose_config(DEMO_FILES))
    compose = DockerCompose(
        context=str(ROOT),
        compose_file_name=list(DEMO_FILES),
        wait=True,  # `docker compose up --wait`: healthy by the files' own health checks
        pull=False,
        build=False,
    )
    began, busy = time.perf_counter(), host_busy()
    try:
        try:
            compose.start()
        except subprocess.CalledProcessError as exc:  # its output is the evidence; the traceback is not
            tail = "\n".join((exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()[-15:])
            print(f"`{shlex.join(exc.cmd)}` exited {exc.returncode}:\n{tail}", file=sys.stderr)
            return 1
        up, up_cpu = time.perf_counter() - began, host_busy() - busy
        ready_ok = all(http_ok(f"http://127.0.0.1:{ports[svc][8000]}/health") for svc in ("backend", "auth"))
    finally:
        began, busy = time.perf_counter(), host_busy()
        compose.stop()  # `docker compose down --volumes`
        down, down_cpu = time.perf_counter() - began, host_busy() - busy
    print(json.dumps({"up": up, "up_cpu": up_cpu, "down": down, "down_cpu": down_cpu, "ready_ok": ready_ok}))
    return 0


if __name__ == "__main__":
    sys.exit(child())
