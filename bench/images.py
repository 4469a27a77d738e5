"""Build once: a second session finds every image cached; sessions racing for a new image build it once.

Whether an image was built is read from the engine, not from dockyard's words: every build
ends in an image ``tag`` event (``docker events``), so the count of tag events of an image
while the sessions ran is how many times it was built. Both are self-checks: a failure fails
the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
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


def tag_events(events: Iterable[str]) -> list[tuple[str, float]]:
    """(image name, Unix time) of each ``tag`` event in ``docker events --format '{{json .}}'`` lines."""
    tags = []
    for line in events:
        if not line.strip():
            continue
        event = json.loads(line)
        if event.get("Type") == "image" and event.get("Action") == "tag":
            name = event.get("Actor", {}).get("Attributes", {}).get("name", "")
            tags.append((name, int(event.get("timeNano", 0)) / 1e9))
    return tags


def tag_counts(events: Iterable[str]) -> Counter[str]:
    """Image name -> how many ``tag`` events name it: how many times it was built."""
    return Counter(name for name, _at in tag_events(events))


_TAG_EVENTS = ("--filter", "type=image", "--filter", "event=tag", "--format", "{{json .}}")


@contextlib.contextmanager
def image_tags() -> Iterator[list[tuple[str, float]]]:
    """The (image, Unix time) of every image tagged (built) on the engine inside the ``with`` block.

    The engine keeps only its last few hundred events, which a busy host (or a minutes-long
    first run) overflows, so the events are followed live; the last ones are also read back
    at the end, in case the stream had not delivered them yet.
    """
    since = time.time()
    watcher = start(["docker", "events", "--since", f"{since:.3f}", *_TAG_EVENTS])
    tags: list[tuple[str, float]] = []
    try:
        yield tags
    finally:
        until = time.time()
        watcher.proc.terminate()
        streamed = watcher.finish(timeout=30).stdout.splitlines()
        replay = ["docker", "events", "--since", f"{since:.3f}", "--until", f"{until + 1:.3f}", *_TAG_EVENTS]
        read_back = run(replay, timeout=60).stdout.splitlines()
        tags += sorted({t for t in tag_events([*streamed, *read_back]) if since - 1 <= t[1] <= until + 1})


def built_images(files: tuple[str, ...] = DEMO_FILES) -> set[str]:
    """The images the compose files build (what `dockyard images` looks after)."""
    services = compose_config(list(files)).get("services", {})
    return {svc["image"] for svc in services.values() if svc.get("build") and svc.get("image")}


def measure_images(bench: Bench, round_: int) -> None:
    """A warm `dockyard images` (nothing may be built), then three sessions racing for one new image."""
    wanted = built_images()
    with image_tags() as tags:
        proc = run(dockyard_cmd("images"), timeout=TIMEOUT, env=dockyard_env()).check()
    rebuilt = {name: n for name, n in Counter(name for name, _at in tags).items() if name in wanted}
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
        try:
            with image_tags() as tags:
                began = time.perf_counter()
                started = [start(dockyard_cmd("images"), env=dockyard_env(), cwd=project) for _ in range(3)]
                procs = [s.finish(TIMEOUT) for s in started]
                wall = time.perf_counter() - began
            for proc in procs:
                proc.check()
        finally:
            run(["docker", "image", "rm", "-f", ONCE_IMAGE], timeout=60)
        builds = sum(name == ONCE_IMAGE for name, _at in tags)
    bench.add("images.concurrent", wall)
    bench.check("images.built_once", builds == 1, f"{ONCE_IMAGE} built {builds} time(s) by 3 sessions")
