"""Build once: a second session finds every image cached; sessions racing for a new image build it once.

Whether an image was built is read from the engine, not from dockyard's words: every build
ends in an image ``tag`` event (``docker events``), so the count of tag events of an image
while the sessions ran is how many times it was built. Both are self-checks: a failure fails
the run.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from bench.host import DEMO_FILES, compose_config, dockyard_cmd, dockyard_env
from bench.procs import run, start
from bench.samples import Bench

TIMEOUT = 600.0
ONCE_IMAGE = "dockyard-bench/once:bench"

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


def tag_counts(events: Iterable[str]) -> Counter[str]:
    """Image name -> how many ``tag`` events name it, from ``docker events --format '{{json .}}'`` lines."""
    counts: Counter[str] = Counter()
    for line in events:
        if not line.strip():
            continue
        event = json.loads(line)
        if event.get("Type") == "image" and event.get("Action") == "tag":
            counts[event.get("Actor", {}).get("Attributes", {}).get("name", "")] += 1
    return counts


def tagged_between(since: float, until: float) -> Counter[str]:
    """Images tagged (built) on the engine from ``since`` to ``until`` (Unix seconds)."""
    proc = run(
        [
            "docker",
            "events",
            "--since",
            str(math.floor(since)),
            "--until",
            str(math.ceil(until) + 1),
            "--filter",
            "type=image",
            "--filter",
            "event=tag",
            "--format",
            "{{json .}}",
        ],
        timeout=60,
    ).check()
    return tag_counts(proc.stdout.splitlines())


def built_images(files: tuple[str, ...] = DEMO_FILES) -> set[str]:
    """The images the compose files build (what `dockyard images` looks after)."""
    services = compose_config(list(files)).get("services", {})
    return {svc["image"] for svc in services.values() if svc.get("build") and svc.get("image")}


def measure_images(bench: Bench, round_: int) -> None:
    """A warm `dockyard images` (nothing may be built), then three sessions racing for one new image."""
    wanted = built_images()
    since = time.time()
    proc = run(dockyard_cmd("images"), timeout=TIMEOUT, env=dockyard_env()).check()
    rebuilt = {name: n for name, n in tagged_between(since, time.time()).items() if name in wanted}
    bench.add("images.warm", proc.seconds)
    bench.check("images.all_cached", not rebuilt, f"rebuilt: {rebuilt}" if rebuilt else f"{len(wanted)} image(s)")
    bench.guarded("images: concurrent", lambda: concurrent_build(bench, round_))


def concurrent_build(bench: Bench, round_: int) -> None:
    """Three `dockyard images` at once on a project whose one image is new: it must be built exactly once."""
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-once-") as tmp:
        project = Path(tmp)
        (project / "pyproject.toml").write_text(
            '[tool.dockyard]\ncompose_files = ["compose.yaml"]\nproject_prefix = "bench-once"\n'
        )
        (project / "compose.yaml").write_text(_ONCE_COMPOSE.format(image=ONCE_IMAGE))
        nonce = f"{os.getpid()}-{round_}-{time.time_ns()}"
        (project / "Dockerfile").write_text(_ONCE_DOCKERFILE.format(nonce=nonce))
        since = time.time()
        try:
            began = time.perf_counter()
            started = [start(dockyard_cmd("images"), env=dockyard_env(), cwd=project) for _ in range(3)]
            procs = [s.finish(TIMEOUT) for s in started]
            wall = time.perf_counter() - began
            for proc in procs:
                proc.check()
        finally:
            run(["docker", "image", "rm", "-f", ONCE_IMAGE], timeout=60)
        builds = tagged_between(since, time.time())[ONCE_IMAGE]
    bench.add("images.concurrent", wall)
    bench.check("images.built_once", builds == 1, f"{ONCE_IMAGE} built {builds} time(s) by 3 sessions")
