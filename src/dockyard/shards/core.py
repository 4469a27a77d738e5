"""Parallel shards: one pytest run split over N berths by recorded durations, one merged report.

`dockyard parallel -- ARGS` collects the tests once, splits them by the durations earlier runs
recorded (longest first onto the least-loaded shard), and runs every shard at the same time as
``dockyard run -- python -m pytest ARGS`` in a berth of its own. Only the stack starts queue
(one per two cores, see :func:`starts_at_once`), and shards that start later get less to do.
Afterwards the shards' JUnit files are merged into one, their per-test times update the
durations file, and a table shows which berth each shard held.

Each shard's pytest gets the user's arguments unchanged and loads this module as a plugin
(``-p dockyard.shards.core``) that keeps only the shard's tests: passing node ids instead of the
arguments would drop paths and options (``-k``, ``-m``, ...) or run everything twice, and a
long list of node ids can overflow the command line.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

# The stdlib's ElementTree, not a JUnit library: the merge and the reading are a few lines,
# and the input is pytest's own output, so there is nothing a library would add.
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from dockyard.engine.endpoints import preflight
from dockyard.engine.images import ensure_images
from dockyard.errors import DockyardError
from dockyard.sessions.run import REPORT_ENV, _die_with_parent, _on_sigterm, _Terminated
from dockyard.settings import Settings
from dockyard.shards.view import ShardView, last_note, shard_view
from dockyard.stack.compose import ComposeModel
from dockyard.stack.evidence import artifacts_since
from dockyard.ui.console import emit_json, reporter, say, table

if TYPE_CHECKING:
    import pytest

# In the durations file: seconds a stack took to start. Never a node id (those are paths).
STACK_UP = "<stack up>"
SHARD_FILE_ENV = "DOCKYARD_SHARD_FILE"  # the node ids a shard's pytest keeps, one a line
COLLECT_ENV = "DOCKYARD_SHARD_COLLECT"  # where a collecting pytest writes its node ids
STATE_DIR = ".dockyard"  # under the project root, beside the artifacts
DURATIONS = f"{STATE_DIR}/durations.json"
SHARDS_DIR = f"{STATE_DIR}/shards"
JUNIT = f"{STATE_DIR}/junit.xml"
MERGED_NAME = "dockyard parallel"  # the <testsuites> name of a merged report: its suites are labelled
_GIB = 1024**3
_MEMORY_PER_SHARD = 2 * _GIB  # a stack of a few services plus its pytest, with headroom
# Teardown of a stack takes seconds; beyond this a shard is stuck and is killed (the reaper
# removes what it leaves when its berth is next acquired).
_STOP_GRACE_S = 120.0
_LOG_TAIL = 40
_POLL_S = 0.25
# Run directories kept for their logs; older ones go, unless touched within the hour (a long
# run that ten newer runs overtook is still writing there).
_KEEP_RUNS = 10
_KEEP_YOUNGER_S = 3600.0


# -- how many, which one ------------------------------------------------------------------------


def _cores() -> int:
    # The CPUs this process may use (a container's or taskset's limit), not the machine's.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # not every platform names these
        return None


def default_shards(max_berths: int, *, cores: int | None = None, memory: int | None = None) -> int:
    """Shards to run at once on this host: cores + 1, capped by memory / 2 GiB and the pool.

    One more shard than cores because a shard spends much of its time waiting on its stack
    (start-up, HTTP round trips); every shard holds a whole stack in memory, and a berth.
    """
    cores = _cores() if cores is None else cores
    memory = _memory() if memory is None else memory
    count = cores + 1
    if memory is not None:
        count = min(count, memory // _MEMORY_PER_SHARD)
    return max(1, min(count, max_berths))


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``1 <= K <= N``, or a DockyardError saying what is wrong."""
    remedy = "give `--shard K/N` with 1 <= K <= N, e.g. `--shard 2/4` for the second of four shards"
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise DockyardError(f"--shard {text!r} is not of the form K/N", remedy=remedy)
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= k <= n:
        raise DockyardError(f"--shard {text!r}: K must be between 1 and N (= {n})", remedy=remedy)
    return k, n


def choose_shards(settings: Settings, shards: int = 0, shard: str = "") -> tuple[int, int | None]:
    """The shard count and the one shard to run (None: all) from ``--shards`` and ``--shard``."""
    if shards < 0:
        raise DockyardError(f"--shards {shards}: must be 1 or more", remedy="give `--shards N` with N >= 1")
    if not shard:
        return shards or default_shards(settings.max_berths), None
    k, n = parse_shard(shard)
    if shards and shards != n:
        raise DockyardError(
            f"--shards {shards} and --shard {shard} disagree on the number of shards",
            remedy="give only `--shard K/N` (N is the number of shards)",
        )
    return n, k


# -- which tests --------------------------------------------------------------------------------


def _env_without_shard() -> dict[str, str]:
    # Run from inside a shard, the outer shard's selection must not leak into ours.
    return {k: v for k, v in os.environ.items() if k not in (SHARD_FILE_ENV, COLLECT_ENV)}


def collect(pytest_args: Sequence[str], cwd: Path | None = None) -> list[str]:
    """The node ids ``pytest ARGS`` would run, in order (a `--collect-only` run of this Python)."""
    with tempfile.TemporaryDirectory(prefix="dockyard-collect-") as tmp:
        listing = Path(tmp) / "nodeids"
        # The plugin writes the ids to a file: pytest's own listing changes with -v/-q in addopts.
        cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        cmd += ["-p", "dockyard.shards.core", *pytest_args]
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            cwd=cwd,
            env={**_env_without_shard(), COLLECT_ENV: str(listing)},
        )
        if out.returncode == 5:  # pytest's "no tests collected"
            return []
        if out.returncode != 0 or not listing.exists():
            tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
            raise DockyardError(
                f"collecting the tests failed (exit {out.returncode}): {' '.join(cmd)}\n{tail}",
                remedy="run the same pytest command with --collect-only to see the error",
            )
        return list(dict.fromkeys(listing.read_text().splitlines()))


def weights(nodeids: Iterable[str], durations: Mapping[str, float]) -> dict[str, float]:
    """The seconds :func:`split` expects of each test (each once, in order).

    A test's recorded duration, else the median of the known ones, else 1.0.
    """
    unique = list(dict.fromkeys(nodeids))
    known = [durations[t] for t in unique if t in durations]
    default = statistics.median(known) if known else 1.0
    return {t: durations.get(t, default) for t in unique}


def split(
    nodeids: Sequence[str], durations: Mapping[str, float], n: int, offsets: Sequence[float] = ()
) -> list[list[str]]:
    """Split ``nodeids`` into ``n`` shards that finish about together.

    Greedy, longest first, each test onto the least-loaded shard. A test without a recorded
    duration counts as the median of the known ones (1.0 when none is known, which makes it a
    split by count). ``offsets`` are seconds shard by shard starts later than the first; such
    a shard gets that much less to do. Deterministic: ties go by node id, then to the lowest
    shard; each shard keeps the collection order.
    """
    if n < 1:
        raise ValueError(f"n must be 1 or more, not {n}")
    weight = weights(nodeids, durations)
    unique = list(weight)
    loads = [float(offsets[i]) if i < len(offsets) else 0.0 for i in range(n)]
    shards: list[list[str]] = [[] for _ in range(n)]
    for test in sorted(unique, key=lambda t: (-weight[t], t)):
        target = min(range(n), key=lambda i: (loads[i], i))
        shards[target].append(test)
        loads[target] += weight[test]
    order = {t: i for i, t in enumerate(unique)}
    return [sorted(shard, key=order.__getitem__) for shard in shards]


def load_durations(path: Path) -> dict[str, float]:
    """The recorded durations (node id -> seconds); empty when there is no file yet."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise DockyardError(
            f"cannot read the durations file {path}: {exc}", remedy=f"delete {path}; the next run writes it anew"
        ) from None
    if not isinstance(data, dict):
        raise DockyardError(f"{path} is not a JSON object", remedy=f"delete {path}; the next run writes it anew")
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}


def save_durations(path: Path, measured: Mapping[str, float]) -> dict[str, float]:
    """Merge ``measured`` into the durations file (old entries stay); the merged durations."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two runs of one checkout may finish at once: without the lock one's times would be lost.
    with FileLock(path.with_name(f".{path.name}.lock"), thread_local=False):
        merged = {**load_durations(path), **{k: round(v, 3) for k, v in measured.items()}}
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        # Sorted and indented, so the file diffs well when a project commits it for its CI.
        tmp.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
        tmp.replace(path)  # a reader never sees half a file
    return merged


# -- JUnit --------------------------------------------------------------------------------------


def junit_key(nodeid: str) -> tuple[str, str]:
    """The (classname, name) pytest's JUnit XML gives a node id (its ``mangle_test_address``)."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def testcases(root: ET.Element) -> list[ET.Element]:
    """Every ``<testcase>`` of a JUnit document (``<testsuites>`` or a lone ``<testsuite>``)."""
    return list(root.iter("testcase"))


def junit_durations(root: ET.Element, nodeids: Iterable[str]) -> dict[str, float]:
    """Node id -> seconds (setup + call + teardown) of the tests of ``nodeids`` in ``root``."""
    by_key = {junit_key(t): t for t in nodeids}
    found = {}
    for case in testcases(root):
        nodeid = by_key.get((case.get("classname", ""), case.get("name", "")))
        if nodeid is not None:
            found[nodeid] = float(case.get("time", "0") or 0)
    return found


@dataclass(frozen=True)
class Counts:
    """Outcomes of the tests in one JUnit document."""

    tests: int = 0
    passed: int = 0
    failed: int = 0  # failures and errors
    skipped: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.tests + other.tests,
            self.passed + other.passed,
            self.failed + other.failed,
            self.skipped + other.skipped,
        )


def junit_counts(root: ET.Element) -> Counts:
    """Count the testcases of ``root`` by outcome (an error in setup or teardown is a failure)."""
    passed = failed = skipped = 0
    for case in testcases(root):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return Counts(passed + failed + skipped, passed, failed, skipped)


def merge_junit(documents: Iterable[tuple[str, ET.Element]]) -> ET.Element:
    """One ``<testsuites>`` holding every suite of ``(label, document)``, suites named by label.

    An empty label keeps the suites' names (they were labelled by an earlier merge).
    """
    merged = ET.Element("testsuites", name=MERGED_NAME)
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    elapsed = 0.0
    for label, root in documents:
        suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
        for suite in suites:
            if label:
                suite.set("name", f"{suite.get('name', 'pytest')} ({label})")
            for key in totals:
                totals[key] += int(suite.get(key, "0") or 0)
            elapsed = max(elapsed, float(suite.get("time", "0") or 0))  # the shards ran at once
            merged.append(suite)
    for key, value in totals.items():
        merged.set(key, str(value))
    merged.set("time", f"{elapsed:.3f}")
    return merged


def write_xml(root: ET.Element, path: Path) -> None:
    """Write ``root`` as an XML file (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def merge_junit_files(paths: Iterable[Path]) -> tuple[ET.Element, list[Path]]:
    """One JUnit document of the XML files ``paths`` name (a directory: every ``*.xml`` under it).

    For a CI matrix of ``--shard K/N`` jobs: each job's ``.dockyard/junit.xml`` already names
    its suites after its shard and keeps them; other files' suites are labelled by their path.
    Returns the merged document and the files read.
    """
    remedy = "give JUnit XML files, or directories holding them, after `--`"
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.rglob("*.xml"))
        elif path.is_file():
            files.append(path)
        else:
            raise DockyardError(f"{path}: no such file or directory", remedy=remedy)
    if not files:
        raise DockyardError("no JUnit XML files to merge", remedy=remedy)
    documents = []
    for file in files:
        try:
            root = ET.parse(file).getroot()  # noqa: S314 - pytest's reports of the user's own runs
        except ET.ParseError as exc:
            raise DockyardError(f"{file} is not XML: {exc}", remedy=remedy) from None
        if root.tag not in ("testsuites", "testsuite"):
            raise DockyardError(f"{file} is not a JUnit report (its root is <{root.tag}>)", remedy=remedy)
        documents.append(("" if root.get("name") == MERGED_NAME else file.as_posix(), root))
    return merge_junit(documents), files


# -- the plugin each shard's pytest loads (and the one collecting for the split) -----------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only this shard's tests (listed in the file ``DOCKYARD_SHARD_FILE`` names)."""
    path = os.environ.get(SHARD_FILE_ENV)
    if not path:
        return
    keep = set(Path(path).read_text().splitlines())
    selected = [item for item in items if item.nodeid in keep]
    missing = keep - {item.nodeid for item in selected}
    if missing:
        import pytest  # noqa: PLC0415 - only a shard's pytest gets here

        raise pytest.UsageError(
            f"{len(missing)} test(s) of this shard were not collected (e.g. {sorted(missing)[0]}): "
            "collection differs between runs; make parametrize ids deterministic"
        )
    deselected = [item for item in items if item.nodeid not in keep]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = selected


def pytest_collection_finish(session: pytest.Session) -> None:
    """Write the collected node ids to the file ``DOCKYARD_SHARD_COLLECT`` names, if any."""
    path = os.environ.get(COLLECT_ENV)
    if path:
        Path(path).write_text("".join(f"{item.nodeid}\n" for item in session.items))


# -- running --------------------------------------------------------------------------------------


@dataclass
class ShardRun:
    """One shard: its tests, its files, and what came of it."""

    number: int
    count: int
    nodeids: list[str]
    directory: Path
    exit_code: int | None = None
    wall: float = 0.0
    counts: Counts | None = None
    report: dict[str, Any] | None = None
    junit: ET.Element | None = field(default=None, repr=False)

    def path(self, suffix: str) -> Path:
        """``shard-K.<suffix>`` in the shards directory."""
        return self.directory / f"shard-{self.number}.{suffix}"

    @property
    def label(self) -> str:
        """``K/N``."""
        return f"{self.number}/{self.count}"

    @property
    def ok(self) -> bool:
        """Whether the shard ran and everything in it passed (an empty shard is fine)."""
        return not self.nodeids or (self.exit_code == 0 and self.counts is not None and not self.counts.failed)

    def command(self, pytest_args: Sequence[str]) -> list[str]:
        """``dockyard run -- pytest ARGS`` for this shard, with this Python whatever PATH says."""
        return [
            *(sys.executable, "-m", "dockyard", "run", "--"),
            *(sys.executable, "-m", "pytest", *pytest_args),
            *("-p", "dockyard.shards.core", f"--junitxml={self.path('xml')}"),
            # Concurrent shards would race on one .pytest_cache (lastfailed, nodeids).
            *("-p", "no:cacheprovider"),
        ]


def held_together(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two `dockyard run` reports held their berths at overlapping times."""
    (a0, a1), (b0, b1) = a["held"], b["held"]
    # No end: the run never wrote its final report (it was killed); count it as holding still.
    a1, b1 = math.inf if a1 is None else a1, math.inf if b1 is None else b1
    return bool(a0 < b1 and b0 < a1)


def isolation_problems(runs: Sequence[ShardRun]) -> list[str]:
    """Shards that held the same berth, project or port block at the same time (should be none).

    One shard may reuse a berth another finished with (when the pool is busy); at the same time,
    never.
    """
    problems = []
    reported = [r for r in runs if r.report is not None]
    for i, a in enumerate(reported):
        for b in reported[i + 1 :]:
            ra, rb = a.report or {}, b.report or {}
            if not held_together(ra, rb):
                continue
            for key in ("index", "project", "port_block"):
                if ra[key] == rb[key]:
                    problems.append(f"shards {a.label} and {b.label} held the same {key} {ra[key]} at once")
    return problems


def _tail(path: Path, lines: int = _LOG_TAIL) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _stop(procs: Mapping[int, subprocess.Popen[bytes]], *, terminate: bool) -> None:
    """Let running shards end (after one SIGTERM each with ``terminate``), kill them at a deadline.

    Only one signal: a second SIGTERM would cut `dockyard run`'s own teardown short. After
    Ctrl-C nothing is sent, the terminal already interrupted the whole process group.
    """
    running = [p for p in procs.values() if p.poll() is None]
    if terminate:
        for proc in running:
            proc.terminate()
    deadline = time.monotonic() + _STOP_GRACE_S
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_offsets(n: int, at_once: int, up: float) -> list[float]:
    """Seconds each of ``n`` shards begins its tests after the first, stacks ``up`` s to start."""
    return [(k // at_once) * up for k in range(n)]


def starts_at_once(cores: int | None = None) -> int:
    """How many shards may start their stacks at the same time: one per two cores.

    Starting a stack (databases initialising, interpreters importing) is the heaviest part of
    a shard. Measured on a 2-core host: the demo stack alone is up in 10-12 s, three at once
    took 33-63 s each and one run in three tripped a 2 s health-check timeout. Tests still run
    in all shards at once; only the starts queue.
    """
    return max(1, (_cores() if cores is None else cores) // 2)


def _start(run: ShardRun, pytest_args: Sequence[str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start one shard, its output to its log."""
    run.path("ids").write_text("".join(f"{t}\n" for t in run.nodeids))
    env = {**_env_without_shard(), REPORT_ENV: str(run.path("json")), SHARD_FILE_ENV: str(run.path("ids"))}
    with run.path("log").open("wb") as log:
        # A shard whose parent was SIGKILLed would run on with nobody to gather it: SIGTERM makes it
        # tear its stack down. Forked from the main thread (the pool's threads only wait).
        return subprocess.Popen(
            run.command(pytest_args),
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the other threads only wait on shards; prctl is async-signal-safe
        )


def _look(runs: Iterable[ShardRun], up: set[int], view: ShardView) -> None:
    """Tell ``view`` which shards' stacks came up (their first report), and what the others wait for."""
    for run in runs:
        if run.number in up:
            continue
        try:
            report = json.loads(run.path("json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            view.note(run.label, last_note(run.path("log")))
            continue
        up.add(run.number)
        view.stack_up(run.label, report["index"], report["project"], report["timings"].get("up", 0.0))


def _launch(runs: Sequence[ShardRun], pytest_args: Sequence[str], cwd: Path, at_once: int, view: ShardView) -> None:
    """Run every shard, at most ``at_once`` starting their stacks at a time; wait for all.

    Sets each run's exit code and wall time (from its own start). A shard has started its
    stack when `dockyard run` writes its first report, or when it ended.
    """
    procs: dict[int, subprocess.Popen[bytes]] = {}
    started: dict[int, float] = {}
    queued, starting = list(runs), list[ShardRun]()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    pool = ThreadPoolExecutor(max_workers=max(1, len(runs)), thread_name_prefix="shard")
    # Threads only wait, so each shard's end is taken when it ends, not when we look.
    running: dict[Future[int], ShardRun] = {}
    up: set[int] = set()  # shards whose stack is up (their report is there)
    try:
        for run in queued:
            view.queued(run.label, len(run.nodeids))
        while queued or running:
            starting = [r for r in starting if procs[r.number].poll() is None and not r.path("json").exists()]
            while queued and len(starting) < at_once:
                run = queued.pop(0)
                started[run.number] = time.monotonic()
                procs[run.number] = _start(run, pytest_args, cwd)
                view.started(run.label, len(run.nodeids), run.path("log"))
                running[pool.submit(procs[run.number].wait)] = run
                starting.append(run)
            # A few times a second: whose stack is up (to start the next), what the others wait for.
            done, _ = wait(running, timeout=_POLL_S, return_when=FIRST_COMPLETED)
            _look(running.values(), up, view)
            for future in done:
                run = running.pop(future)
                run.exit_code, run.wall = future.result(), time.monotonic() - started[run.number]
                view.ended(run.label, run.exit_code, run.wall)
    except KeyboardInterrupt:
        _stop(procs, terminate=False)
        raise
    except BaseException:  # SIGTERM, or a shard that could not start: stop the others, re-raise
        _stop(procs, terminate=True)
        raise
    finally:
        pool.shutdown(wait=False)
        signal.signal(signal.SIGTERM, previous)


def _gather(run: ShardRun) -> None:
    """Read a finished shard's JUnit XML and `dockyard run` report (either may be missing)."""
    try:
        run.junit = ET.parse(run.path("xml")).getroot()  # noqa: S314 - our own pytest's output
        run.counts = junit_counts(run.junit)
    except (FileNotFoundError, ET.ParseError):
        run.junit, run.counts = None, None
    try:
        run.report = json.loads(run.path("json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        run.report = None


def run_directory(root: Path) -> Path:
    """A new directory for one run's shard files, the oldest beyond the last ten removed.

    Per run, because two runs from one checkout (a developer and a benchmark, say) at once
    would otherwise read each other's reports and XML.
    """
    base = root / SHARDS_DIR
    base.mkdir(parents=True, exist_ok=True)
    runs = sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.name)
    for old in runs[:-_KEEP_RUNS]:
        if time.time() - max((f.stat().st_mtime for f in old.iterdir()), default=0.0) > _KEEP_YOUNGER_S:
            # Another run may be pruning the same directory right now; what is gone is gone.
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=base))


def _build_images(settings: Settings) -> None:
    """Build the stack's images once, so the shards do not all queue on the same build."""
    with reporter() as progress:
        ensure_images(preflight(), ComposeModel.load(settings).build_specs(), settings, progress=progress)


def _isolation_line(reports: Sequence[Mapping[str, Any]]) -> str:
    """What the isolation check saw, for the summary (problems raise before this)."""
    berths = {r["index"] for r in reports}
    line = (
        f"isolation check: {len(reports)} shard(s) held {len(berths)} distinct berth(s), project(s) and port block(s)"
    )
    if len(berths) < len(reports):
        line += "; a berth was reused after its shard ended, never shared at once"
    return line


_COLUMNS: tuple[str, ...] = ("shard", "berth", "project", "port block", "tests", "passed", "failed", "skipped")
# est: what the durations predicted for the tests; up: the stack's start; run: pytest in it.
_COLUMNS += ("est s", "up s", "run s", "wall s", "result")


def _row(run: ShardRun, weight: Mapping[str, float]) -> list[object]:
    """One shard's line of the summary: its berth from its report, its outcomes from its XML."""
    report = run.report or {}
    block, timings = report.get("port_block"), report.get("timings", {})
    counts = [run.counts.passed, run.counts.failed, run.counts.skipped] if run.counts else ["-"] * 3
    result = "empty" if not run.nodeids else "passed" if run.ok else f"failed ({run.exit_code})"
    return [
        *(run.label, report.get("index", "-"), report.get("project", "-"), f"{block[0]}-{block[1]}" if block else "-"),
        *(len(run.nodeids), *counts, f"{sum(weight[t] for t in run.nodeids):.1f}"),
        *(f"{timings[k]:.1f}" if k in timings else "-" for k in ("up", "run")),
        *(f"{run.wall:.1f}" if run.nodeids else "-", result),
    ]


def _summary(runs: Sequence[ShardRun], weight: Mapping[str, float], elapsed: float) -> None:
    """The table: a line per shard, then the total (``wall s`` of the total is the whole run)."""
    total = sum((r.counts for r in runs if r.counts), Counts())
    every = [t for r in runs for t in r.nodeids]
    berths = len({r.report["index"] for r in runs if r.report})
    result = "passed" if all(r.ok for r in runs) else "failed"
    rows = [_row(run, weight) for run in runs]
    rows.append(["total", berths, "", "", len(every), total.passed, total.failed, total.skipped])
    rows[-1] += [f"{sum(weight[t] for t in every):.1f}", "", "", f"{elapsed:.1f}", result]
    table("dockyard parallel", _COLUMNS, rows)


def _seconds(value: object) -> float | None:
    return round(value, 3) if isinstance(value, int | float) else None


def summary_data(
    runs: Sequence[ShardRun], weight: Mapping[str, float], elapsed: float, files: Mapping[str, object]
) -> dict[str, Any]:
    """The end-of-run summary as data (what `parallel --json` prints): shards, totals, files."""
    shards = []
    for run in runs:
        report = run.report or {}
        timings = report.get("timings", {})
        counts = run.counts or Counts()
        shards.append(
            {
                "shard": run.label,
                "berth": report.get("index"),
                "project": report.get("project"),
                "port_block": report.get("port_block"),
                "tests": len(run.nodeids),
                "passed": counts.passed if run.counts else None,
                "failed": counts.failed if run.counts else None,
                "skipped": counts.skipped if run.counts else None,
                "estimated_seconds": round(sum(weight[t] for t in run.nodeids), 3),
                "up_seconds": _seconds(timings.get("up")),
                "run_seconds": _seconds(timings.get("run")),
                "wall_seconds": round(run.wall, 3) if run.nodeids else None,
                "exit_code": run.exit_code,
                "result": "empty" if not run.nodeids else "passed" if run.ok else "failed",
                "log": str(run.path("log")) if run.nodeids else None,
            }
        )
    total = sum((r.counts for r in runs if r.counts), Counts())
    return {
        "result": "passed" if all(r.ok for r in runs) else "failed",
        "wall_seconds": round(elapsed, 3),
        "totals": {
            "shards": len(runs),
            "berths": len({r.report["index"] for r in runs if r.report}),
            "tests": sum(len(r.nodeids) for r in runs),
            "passed": total.passed,
            "failed": total.failed,
            "skipped": total.skipped,
        },
        "shards": shards,
        **files,
    }


def run_shards(
    settings: Settings,
    pytest_args: Sequence[str],
    n: int,
    only: int | None = None,
    junit: Path | None = None,
    *,
    at_once: int | None = None,
    json_summary: bool = False,
) -> int:
    """Run ``pytest ARGS`` as ``n`` shards at once, each in its own berth; 0 when all passed.

    ``only`` runs just that shard (1-based) of the same split: one CI job per shard. The
    merged JUnit XML goes to ``junit`` (default ``.dockyard/junit.xml`` under the project
    root); the shards' logs, reports and XML stay in this run's directory under
    ``.dockyard/shards``. At most ``at_once`` shards start their stacks at the same time
    (default: :func:`starts_at_once`). With ``json_summary`` the end-of-run summary goes to
    stdout as JSON (:func:`summary_data`) instead of the table.
    """
    if only is not None and not 1 <= only <= n:
        raise DockyardError(f"shard {only} of {n} does not exist", remedy=f"give --shard K/{n} with 1 <= K <= {n}")
    cwd = Path.cwd()
    nodeids = collect(pytest_args, cwd=cwd)
    if not nodeids:
        raise DockyardError(f"pytest collected no tests from {' '.join(pytest_args) or cwd}")
    durations = load_durations(settings.root / DURATIONS)
    at_once = at_once or starts_at_once()
    # Queued stack starts delay the later shards, so they get less to do. Not for one shard of
    # a CI matrix: every job starts at once on its own machine, and all must split alike.
    up = durations.get(STACK_UP, 0.0) if only is None and at_once < n else 0.0
    known = sum(t in durations for t in nodeids)
    say(
        f"{len(nodeids)} tests over {n} shard(s), "
        + (f"split by the durations of {known} of them" if known else "split by count (no durations recorded yet)")
        + (f", shard by shard {up:.0f}s less for the queued stack starts" if up else "")
    )
    directory = run_directory(settings.root)
    say(f"shard files (logs, JUnit XML, reports): {directory}")
    plan = split(nodeids, durations, n, start_offsets(n, at_once, up))
    runs = [ShardRun(k, n, ids, directory) for k, ids in enumerate(plan, start=1) if only is None or k == only]
    active = [r for r in runs if r.nodeids]
    t0 = time.monotonic()
    if active:
        _build_images(settings)
        if at_once < len(active):
            say(f"stacks start {at_once} at a time (the heaviest part of a shard); the tests run all at once")
        try:
            # Around _launch, not in it: on Ctrl-C the view stops only once the shards have.
            with shard_view() as view:
                _launch(active, pytest_args, cwd, at_once, view)
        except _Terminated:
            say("terminated: the shards were stopped and took their stacks down")
            return 128 + signal.SIGTERM
    elapsed = time.monotonic() - t0
    since = time.time() - elapsed
    junit = junit or settings.root / JUNIT
    return _finish(settings, runs, weights(nodeids, durations), elapsed, junit, since=since, json_summary=json_summary)


def _finish(
    settings: Settings,
    runs: Sequence[ShardRun],
    weight: Mapping[str, float],
    elapsed: float,
    junit: Path,
    *,
    since: float,
    json_summary: bool = False,
) -> int:
    """Read the shards' results, record durations, merge the XML, show the table; the exit code."""
    active = [r for r in runs if r.nodeids]
    for run in active:
        _gather(run)
        if not run.ok:
            say(f"shard {run.label} failed (exit {run.exit_code}); last lines of {run.path('log')}:")
            sys.stderr.write(_tail(run.path("log")) + "\n")
    measured: dict[str, float] = {}
    for run in active:
        if run.junit is not None:
            measured.update(junit_durations(run.junit, run.nodeids))
    ups = [r.report["timings"]["up"] for r in active if r.report and "up" in r.report.get("timings", {})]
    if ups:
        measured[STACK_UP] = statistics.median(ups)
    if measured:
        save_durations(settings.root / DURATIONS, measured)
    write_xml(merge_junit((f"shard {r.label}", r.junit) for r in active if r.junit is not None), junit)
    artifacts = artifacts_since(settings.artifacts_dir, since)
    files = {
        "junit": str(junit),
        "durations": str(settings.root / DURATIONS),
        "shard_files": str(runs[0].directory) if runs else None,
        "artifacts": [str(p) for p in artifacts],
    }
    problems = isolation_problems(active)
    code = next((r.exit_code or 1 for r in active if not r.ok), 0)
    if json_summary:
        emit_json({**summary_data(runs, weight, elapsed, files), "exit_code": code, "isolation_problems": problems})
    else:
        _summary(runs, weight, elapsed)
    say(f"merged JUnit XML: {junit}")
    say(f"durations: {settings.root / DURATIONS}; shard logs, XML and reports: {files['shard_files']}")
    if artifacts:
        say(f"artifacts ({len(artifacts)} new): {settings.artifacts_dir}")
        for path in artifacts[:10]:
            sys.stderr.write(f"  {path}\n")
    if problems:
        raise DockyardError("shards were not isolated:\n" + "\n".join(problems))
    say(_isolation_line([r.report for r in active if r.report is not None]))
    return code
