"""The daily loop: a warm stack reused by plain ``pytest``, and ``dockyard watch`` reacting to edits.

Warm reuse, whole process: the bench takes the wall clock, starts ``pytest`` on one quick e2e
test as a fresh process, and reads when that test's call began from a tiny plugin
(:mod:`bench.first_call`, loaded with ``-p``). A: with the demo stack kept by ``dockyard up``
(the plugin finds it through the pool); B: the same pytest with a stack of its own
(``--dockyard-no-reuse``, no kept stack up), so the ratio shows what reuse buys. The kept
stack must be the one the test saw, and still up with the same containers after every run.

Watch: ``dockyard watch --services backend -- CMD`` in a copy of the demo project (its own
project prefix and image names, so nothing of the repository or of the shared images
changes), CMD a shell line appending the time it started. A test-file edit must start CMD
again (the write to CMD's timestamp); a backend source edit must rebuild and recreate
backend, healthy, before CMD starts again (watch runs CMD only once the service is healthy:
the write to that timestamp bounds "healthy again" from above; the bench then checks that
backend answers /health from a new container and auth's container was left alone). SIGINT
stops the watch, which must leave nothing of its project.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import ROOT, BenchError, say
from bench.host import dockyard_cmd, dockyard_env, http_ok, project_resources
from bench.procs import Started, run, start
from bench.readout import UpInfo, live_projects
from bench.ready import DOWN_TIMEOUT, UP_TIMEOUT, down_berth, left_nothing
from bench.samples import Bench

QUICK_TEST = ("tests/e2e/test_smoke.py", "-k", "test_redis_answers_ping")
PYTEST_TIMEOUT = 300.0
STAMP_TIMEOUT = 30.0  # a test edit to CMD's next start, at most
REBUILD_TIMEOUT = 180.0  # a service edit to CMD's next start (a build, a recreate, health), at most
WATCH_PREFIX = "bench-watch"
WATCH_IMAGES = "dockyard-bench-watch"  # the copy's image names: the shared dockyard-demo/* stay as they are
WATCHED = "backend"
UNTOUCHED = "auth"
_COPIED = ("compose", "demo", "docker")
_STAMP_CMD = 'echo "$(date +%s.%N) $DOCKYARD_PROJECT $DOCKYARD_BACKEND_8000" >> "$0"'


# -- warm reuse ---------------------------------------------------------------------------------


def pytest_cmd(*extra: str) -> list[str]:
    """Plain pytest of one quick e2e test, with the timing plugin."""
    return [sys.executable, "-m", "pytest", *QUICK_TEST, "-q", "-p", "bench.first_call", *extra]


def first_call_parts(doc: dict[str, Any], began: float) -> dict[str, float]:
    """Seconds from ``began`` (the wall clock before the process started) to each moment the plugin wrote."""
    moments = ("imported", "plugins", "conftests", "sessionstart", "collected", "first_setup", "first_call")
    missing = [m for m in moments if not isinstance(doc.get(m), int | float)]
    if missing:
        raise BenchError(f"the first-call plugin wrote no {', '.join(missing)}: {str(doc)[:200]}")
    return {m: float(doc[m]) - began for m in moments}


def timed_pytest(bench: Bench, key: str, *extra: str) -> str | None:
    """One pytest process: its start to the first test's call under ``key``; the project the test saw."""
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-call-") as tmp:
        note = Path(tmp) / "first-call.json"
        env = dockyard_env(BENCH_FIRST_CALL=str(note), PYTHONPATH=str(ROOT))
        began = time.time()
        proc = run(pytest_cmd(*extra), timeout=PYTEST_TIMEOUT, env=env).check()
        try:
            doc = json.loads(note.read_text())
        except (OSError, ValueError) as exc:
            raise BenchError(f"pytest reached no test call ({exc}):\n{proc.tail()}") from None
    parts = first_call_parts(doc, began)
    bench.add(f"daily.first_call.{key}", parts["first_call"])
    bench.add_proc(f"daily.pytest.{key}", proc)
    bench.detail(f"daily.first_call.{key}.parts", {k: round(v, 3) for k, v in parts.items()})
    project = doc.get("project")
    return str(project) if project else None


def container_ids(project: str, service: str | None = None) -> set[str]:
    """IDs of the containers of ``project`` (of one ``service``), running or not."""
    cmd = ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}"]
    if service:
        cmd += ["--filter", f"label=com.docker.compose.service={service}"]
    return set(run(cmd, timeout=60).check().stdout.split())


@contextlib.contextmanager
def kept_stack() -> Iterator[UpInfo]:
    """`dockyard up --json` of the demo project, kept; `dockyard down` of that berth afterwards, always."""
    env = dockyard_env()
    up = run(dockyard_cmd("up", "--json"), timeout=UP_TIMEOUT, env=env)
    if up.code != 0:
        run(dockyard_cmd("down", "--all"), timeout=DOWN_TIMEOUT, env=env)  # whatever it may have kept
        up.check()
    try:
        info = UpInfo.parse(up.json())
    except BenchError:
        run(dockyard_cmd("down", "--all"), timeout=DOWN_TIMEOUT, env=env)
        raise
    try:
        yield info
    finally:
        down_berth(info, env).check()
        left_nothing(info)


def warm_runs(bench: Bench, reps: int) -> None:
    """A: pytest against the kept stack, ``reps`` times; the stack must stay up, the same, throughout."""
    with kept_stack() as info:
        before = container_ids(info.project)
        for _ in range(reps):
            seen = timed_pytest(bench, "warm")
            bench.check("daily.reuse_found", seen == info.project, f"the test saw {seen}, kept: {info.project}")
            status = run(dockyard_cmd("status", "--json"), timeout=60, env=dockyard_env()).check()
            same = container_ids(info.project) == before and info.project in live_projects(status.json())
            bench.check("daily.reuse_kept", same, f"berth {info.index} ({info.project}) up, same containers")


def own_runs(bench: Bench, reps: int) -> None:
    """B: the same pytest starting (and tearing down) a stack of its own."""
    for _ in range(reps):
        seen = timed_pytest(bench, "own", "--dockyard-no-reuse")
        if seen and (left := project_resources(seen)):
            raise BenchError(f"pytest's own stack left {left} of {seen}")


def measure_reuse(bench: Bench, round_: int) -> None:
    """A and B, which first alternating by round (B runs while no kept stack is up)."""
    warm, own = (2, 1) if bench.quick else (3, 2)
    steps: list[Callable[[], None]] = [
        functools.partial(warm_runs, bench, warm),
        functools.partial(own_runs, bench, own),
    ]
    for step in steps if round_ % 2 else steps[::-1]:
        step()


# -- watch --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stamp:
    """One start of the watched CMD: when, in which project, where backend answers."""

    at: float
    project: str
    backend: str


def stamps(text: str) -> list[Stamp]:
    """The CMD starts written so far (a line cut short by a write under way is left for the next read)."""
    found = []
    for line in text.splitlines(keepends=True):
        words = line.split()
        if not line.endswith("\n") or len(words) != 3:
            continue
        try:
            found.append(Stamp(float(words[0]), words[1], words[2]))
        except ValueError:
            continue
    return found


def project_copy(into: Path) -> Path:
    """A copy of the demo project with its own project prefix and image names; its root."""
    root = into / "demo-copy"
    root.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", ".ruff_cache", ".mypy_cache", ".pytest_cache")
    for name in _COPIED:
        shutil.copytree(ROOT / name, root / name, ignore=ignore)
    shutil.copy2(ROOT / ".dockerignore", root / ".dockerignore")
    pyproject = (ROOT / "pyproject.toml").read_text()
    if 'project_prefix = "demo"' not in pyproject:
        raise BenchError('pyproject.toml sets no `project_prefix = "demo"` for the copy to change')
    own = pyproject.replace('project_prefix = "demo"', f'project_prefix = "{WATCH_PREFIX}"')
    (root / "pyproject.toml").write_text(own)
    for compose_file in (root / "compose").glob("*.yml"):
        compose_file.write_text(compose_file.read_text().replace("dockyard-demo/", f"{WATCH_IMAGES}/"))
    (root / "tests").mkdir()
    (root / "tests" / "test_edit.py").write_text("def test_nothing() -> None:\n    pass\n")
    return root


def copy_images(root: Path) -> list[str]:
    """The images the copy's compose files name (all built by dockyard from the copy)."""
    names = []
    for compose_file in (root / "compose").glob("*.yml"):
        names += [w for w in compose_file.read_text().split() if w.startswith(f"{WATCH_IMAGES}/")]
    return sorted(set(names))


def wait_stamp(path: Path, count: int, watch: Started, timeout: float) -> Stamp:
    """The ``count``-th start of CMD (1-based), polled to a deadline; BenchError if the watch ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = stamps(path.read_text()) if path.exists() else []
        if len(found) >= count:
            return found[count - 1]
        if watch.proc.poll() is not None:
            raise BenchError(f"dockyard watch exited {watch.proc.returncode} before CMD ran {count} time(s)")
        time.sleep(0.02)  # polling CMD's file to a deadline; the figure is CMD's own timestamp
    raise BenchError(f"CMD did not start a {count}. time within {timeout:g}s")


def append(path: Path, text: str) -> float:
    """Append ``text`` to ``path``; the wall clock just before the write."""
    began = time.time()
    with path.open("a") as fh:
        fh.write(text)
    return began


def stop_watch(watch: Started) -> None:
    """SIGINT (Ctrl-C: the watch tears down), to a deadline; BenchError unless it ended cleanly."""
    if watch.proc.poll() is None:
        watch.proc.send_signal(signal.SIGINT)
    proc = watch.finish(timeout=DOWN_TIMEOUT)
    if proc.code != 0:
        raise BenchError(f"dockyard watch exited {proc.code} on SIGINT:\n{proc.tail()}")


def measure_watch(bench: Bench, round_: int) -> None:
    """Test edits, then backend edits, under one `dockyard watch` of a copy of the demo project."""
    test_edits, service_edits = (2, 1) if bench.quick else (3, 2)
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-watch-") as tmp:
        root = project_copy(Path(tmp))
        stamp_file = Path(tmp) / "stamps.txt"
        env = dockyard_env()
        try:
            run(dockyard_cmd("images"), timeout=UP_TIMEOUT, env=env, cwd=root).check()
            cmd = dockyard_cmd("watch", "--services", WATCHED, "--", "sh", "-c", _STAMP_CMD, str(stamp_file))
            watch = start(cmd, env=env, cwd=root)
            project = ""
            try:
                first = wait_stamp(stamp_file, 1, watch, UP_TIMEOUT)
                project = first.project
                bench.projects.add(project)
                runs = 1
                for edit in range(test_edits):
                    began = append(root / "tests" / "test_edit.py", f"# edit {round_}.{edit}\n")
                    runs += 1
                    bench.add("daily.watch.test", wait_stamp(stamp_file, runs, watch, STAMP_TIMEOUT).at - began)
                for edit in range(service_edits):
                    old, untouched = container_ids(project, WATCHED), container_ids(project, UNTOUCHED)
                    source = root / "demo" / WATCHED / "app.py"
                    began = append(source, f"# an edit the bench made ({round_}.{edit})\n")
                    runs += 1
                    stamp = wait_stamp(stamp_file, runs, watch, REBUILD_TIMEOUT)
                    bench.add("daily.watch.service", stamp.at - began)
                    new = container_ids(project, WATCHED)
                    answers = http_ok(f"http://{stamp.backend}/health")
                    recreated = bool(new) and not new & old and container_ids(project, UNTOUCHED) == untouched
                    bench.check(
                        "daily.watch_recreated",
                        answers and recreated,
                        f"{WATCHED} /health {'200' if answers else 'not 200'}, new container {recreated}, "
                        f"{UNTOUCHED} untouched",
                    )
            finally:
                stop_watch(watch)
            if project:
                left = project_resources(project)
                bench.check("daily.watch_clean", not left, f"{project}: {left or 'nothing left'}")
                status = run(dockyard_cmd("status", "--json"), timeout=60, env=env, cwd=root).check()
                if project in live_projects(status.json()):
                    raise BenchError(f"{project} is still live after the watch stopped")
        finally:
            for image in copy_images(root):
                subprocess.run(["docker", "image", "rm", image], capture_output=True, check=False, timeout=60)


def measure_daily(bench: Bench, round_: int) -> None:
    """Warm reuse, then watch."""
    bench.guarded("daily: warm reuse", lambda: measure_reuse(bench, round_))
    bench.guarded("daily: watch", lambda: measure_watch(bench, round_))
    say(f"daily: round {round_ + 1} done")
