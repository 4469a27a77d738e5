"""A first run as a new user meets it: `nox -s e2e` with none of dockyard's own images on the engine.

Only dockyard's own images are removed first (``dockyard/*``: the bootstrapped base and the
like; ``dockyard-demo/*``: the demo's), never anything else of the engine's; then ``nox -s
e2e`` runs from this checkout with a fresh nox environment directory, so its virtualenv is made
anew, as from a fresh clone. Slow (minutes): run it with ``--only first-run``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable

from bench import RESULTS, BenchError, say
from bench.images import image_tags
from bench.procs import run
from bench.samples import Bench

OWN_REPOSITORIES = ("dockyard/", "dockyard-demo/")
TIMEOUT = 1800.0


def own_images(lines: Iterable[str]) -> list[str]:
    """The ``repository:tag`` of dockyard's own images, from ``docker images --format '{{json .}}'`` lines."""
    found = []
    for line in lines:
        if not line.strip():
            continue
        image = json.loads(line)
        repo, tag = image.get("Repository", ""), image.get("Tag", "")
        if repo.startswith(OWN_REPOSITORIES) and tag and tag != "<none>":
            found.append(f"{repo}:{tag}")
    return sorted(found)


def remove_own_images() -> list[str]:
    """Remove dockyard's own images (only those); the references removed."""
    listed = run(["docker", "images", "--format", "{{json .}}"], timeout=60).check()
    doomed = own_images(listed.stdout.splitlines())
    if doomed:
        proc = run(["docker", "image", "rm", *doomed], timeout=300)
        if proc.code != 0:
            raise BenchError(
                f"could not remove dockyard's images for a first run:\n{proc.tail()}\n"
                "stop the stacks that use them (`dockyard status`, `dockyard down --all`) and run again"
            )
    return doomed


def nox_env() -> dict[str, str]:
    """The environment a user's shell would give nox: without the bench's own virtualenv or nox session."""
    return {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV" and not k.startswith("NOX_")}


def measure_first_run(bench: Bench, round_: int) -> None:
    """Remove dockyard's images, then time `nox -s e2e` in a fresh nox environment directory."""
    removed = remove_own_images()
    say(f"removed {len(removed)} image(s) of dockyard's own: {', '.join(removed) or 'none'}")
    bench.detail("firstrun.removed", removed)
    envdir = tempfile.mkdtemp(prefix="dockyard-bench-nox-")
    since = time.time()
    try:
        with image_tags() as tags:
            cmd = [sys.executable, "-m", "nox", "--envdir", envdir, "-s", "e2e"]
            proc = run(cmd, timeout=TIMEOUT, env=nox_env())
    finally:
        shutil.rmtree(envdir, ignore_errors=True)
    log = RESULTS / "logs" / f"first-run-round{round_ + 1}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(proc.stdout + proc.stderr)
    if proc.code != 0:
        raise BenchError(f"`nox -s e2e` from no images exited {proc.code} (log: {log}):\n{proc.tail()}")
    bench.add_proc("firstrun.e2e", proc)
    # When each image was ready, from the engine's tag events: where the minutes went.
    bench.detail("firstrun.image_built_after_s", {name: round(at - since, 1) for name, at in tags})
