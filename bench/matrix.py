"""A CI matrix of four machines, simulated on one: four fresh clones, each running one shard.

Job K of the README's CI template runs ``nox -s e2e-parallel -- --shard K/4`` in a fresh
checkout. Here each job is a fresh ``git clone`` of this checkout's HEAD, in which nox makes its
environment anew, as on a CI machine; the jobs run one after another, so each has the host to
itself as each machine would. They share nothing but the engine's images and pip's cache.
Every job splits by the same durations: those the repository commits in
``.dockyard/durations.json``, or, where it commits none, this checkout's own file as the
measurement began, copied into every clone as if committed (with neither: a split by count).

A shard's test time is the sum of its testcases' times (setup, call and teardown) in the JUnit
report its job leaves, ``.dockyard/junit.xml`` (what the template uploads); the row is the
slowest shard's over the mean. The four reports, laid out as the template's report job
downloads them, are merged by ``dockyard junit-merge`` (a whole process), and the merged report
must hold every test of the suite exactly once: the suite is what the bench's own plugin
(:mod:`bench.collected`) lists of ``pytest --collect-only tests/e2e`` in the first clone.
"""

from __future__ import annotations

import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench import RESULTS, ROOT, BenchError, say
from bench.first_run import nox_env
from bench.host import dockyard_cmd, dockyard_env, project_resources
from bench.procs import Proc, run
from bench.readout import RunReport
from bench.samples import Bench
from dockyard.shards.junit import junit_key

N = 4
E2E = "tests/e2e"
DURATIONS = Path(".dockyard/durations.json")
JUNIT = Path(".dockyard/junit.xml")  # where `dockyard parallel` writes a job's report
JOB_TIMEOUT = 900.0  # one job: nox's environment, the images checked, a stack, a quarter of the tests
GIT_TIMEOUT = 120.0


def shard_seconds(report: ET.Element) -> float:
    """The test time of a JUnit report: the sum of its testcases' times."""
    return sum(float(case.get("time") or 0) for case in report.iter("testcase"))


def balance(seconds: Sequence[float]) -> float:
    """The slowest over the mean of the shards' test times."""
    mean = statistics.mean(seconds)
    if mean <= 0:
        raise BenchError(f"the shards' test times {list(seconds)} have no mean to compare with")
    return max(seconds) / mean


def best_balance(case_seconds: Sequence[float], n: int) -> float:
    """The least slowest/mean any split of tests taking ``case_seconds`` over ``n`` shards can reach.

    A shard is never shorter than the longest test it holds, nor can the slowest be shorter
    than the mean: a bound from below, whatever the split.
    """
    mean = sum(case_seconds) / n
    if mean <= 0:
        raise BenchError("the merged report's tests took no time to split")
    return max(*case_seconds, mean) / mean


def exactly_once(nodeids: Sequence[str], report: ET.Element) -> list[str]:
    """What keeps ``report`` from holding each test of ``nodeids`` exactly once (nothing when it does).

    Tests are matched by the classname and name pytest's JUnit XML gives a node id.
    """
    if not nodeids:
        return ["no test was collected to look for"]
    seen = Counter((case.get("classname", ""), case.get("name", "")) for case in report.iter("testcase"))
    expected = {junit_key(t): t for t in nodeids}
    problems = [f"missing: {t}" for key, t in expected.items() if not seen[key]]
    problems += [f"{seen[key]} times: {t}" for key, t in expected.items() if seen[key] > 1]
    problems += [f"never collected: {c}::{n}" for (c, n), _times in seen.items() if (c, n) not in expected]
    return problems


def clone(into: Path, commit: str) -> None:
    """A fresh clone of this checkout at ``commit``."""
    run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(into)], timeout=GIT_TIMEOUT).check()
    run(["git", "-C", str(into), "checkout", "--quiet", "--detach", commit], timeout=GIT_TIMEOUT).check()


def collected(checkout: Path) -> list[str]:
    """The node ids of the suite in ``checkout``, as the bench's plugin lists them."""
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-collect-") as tmp:
        listing = Path(tmp) / "nodeids"
        cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        cmd += ["-p", "bench.collected", E2E]
        env = dockyard_env(BENCH_COLLECTED=str(listing), PYTHONPATH=str(ROOT))
        run(cmd, timeout=300, env=env, cwd=checkout).check()
        try:
            return list(dict.fromkeys(listing.read_text().splitlines()))
        except FileNotFoundError:
            raise BenchError(f"`{shlex.join(cmd)}` in {checkout} listed no tests") from None


def job_env() -> dict[str, str]:
    """A CI job's environment: a user's shell, as for a first run, without a shard count of its own."""
    env = nox_env()
    env.pop("DOCKYARD_SHARDS", None)  # e2e-parallel would pass it as --shards beside --shard K/N
    return env


def job(checkout: Path, k: int, log: Path) -> Proc:
    """CI job ``k``: the template's ``nox -s e2e-parallel -- --shard K/N`` in its own clone."""
    cmd = [sys.executable, "-m", "nox", "-s", "e2e-parallel", "--", "--shard", f"{k}/{N}"]
    proc = run(cmd, timeout=JOB_TIMEOUT, env=job_env(), cwd=checkout)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ (cd {checkout}) {shlex.join(cmd)}\n# exit {proc.code}\n{proc.stderr}\n# stdout\n{proc.stdout}")
    if proc.code != 0:
        raise BenchError(f"CI job {k}/{N}, `{shlex.join(cmd)}`, exited {proc.code} (log: {log}):\n{proc.tail()}")
    return proc


def check_clean(bench: Bench, checkout: Path, k: int) -> None:
    """The job's berth left nothing of its stack (its project from the shard's run report)."""
    reports = sorted(checkout.glob(f".dockyard/shards/*/shard-{k}.json"))
    if not reports:
        return  # the shard never held a berth: nothing of it to look for
    project = RunReport.parse(json.loads(reports[-1].read_text())).project
    left = project_resources(project)
    if left:
        bench.projects.add(project)  # removed at the end of the run
    bench.check("matrix.clean", not left, f"CI job {k}/{N} left {', '.join(left)} of {project}" if left else "")


def read_report(path: Path, what: str) -> ET.Element:
    """A JUnit report, or a BenchError saying whose is missing."""
    try:
        return ET.parse(path).getroot()  # noqa: S314 - written by our own pytest and dockyard
    except (FileNotFoundError, ET.ParseError) as exc:
        raise BenchError(f"{what}: no readable JUnit report at {path} ({exc})") from None


def durations_into(checkout: Path, snapshot: bytes | None) -> str:
    """Give a fresh clone the durations every job splits by; where they came from."""
    if (checkout / DURATIONS).is_file():
        return "committed"
    if snapshot is None:
        return "none: by count"
    (checkout / DURATIONS).parent.mkdir(parents=True, exist_ok=True)
    (checkout / DURATIONS).write_bytes(snapshot)
    return "this checkout's, copied"


def one_job(bench: Bench, checkout: Path, k: int, round_: int, downloads: Path) -> float:
    """CI job ``k`` in its clone, its report put where the report job finds it; its test time."""
    say(f"round {round_ + 1}: CI job {k}/{N} in a fresh clone: nox -s e2e-parallel -- --shard {k}/{N}")
    try:
        proc = job(checkout, k, RESULTS / "logs" / f"matrix-job-{k}-round{round_ + 1}.log")
    finally:
        check_clean(bench, checkout, k)
    bench.add_proc("matrix.job", proc)
    report = downloads / f"junit-shard-{k}" / "junit.xml"
    report.parent.mkdir(parents=True)
    try:
        shutil.copyfile(checkout / JUNIT, report)
    except FileNotFoundError:
        raise BenchError(f"CI job {k}/{N} passed but left no {JUNIT}") from None
    seconds = shard_seconds(read_report(report, f"CI job {k}/{N}"))
    bench.add("matrix.shard_tests", seconds)
    return seconds


def merge_and_check(bench: Bench, nodeids: Sequence[str], seconds: Sequence[float], tmp: Path, round_: int) -> None:
    """The report job: `dockyard junit-merge` of the downloaded reports; every test once; the balance."""
    merged = tmp / "junit.xml"
    cmd = dockyard_cmd("junit-merge", "--output", str(merged), "--", str(tmp / "junit"))
    bench.add_proc("matrix.merge", run(cmd, timeout=120, env=dockyard_env()).check())
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(merged, logs / f"matrix-junit-round{round_ + 1}.xml")
    root = read_report(merged, "`dockyard junit-merge`")
    problems = exactly_once(nodeids, root)
    bench.check("matrix.exactly_once", not problems, "; ".join(problems[:10]))
    bench.add("matrix.balance", balance(seconds))
    bench.add("matrix.balance_bound", best_balance([float(c.get("time") or 0) for c in root.iter("testcase")], N))
    bench.detail("matrix.shard_test_seconds", [round(s, 3) for s in seconds])
    bench.detail("matrix.tests", len(nodeids))


def measure_matrix(bench: Bench, round_: int) -> None:
    """Four CI jobs one after another, each in a fresh clone; their reports merged and checked."""
    began = time.perf_counter()
    commit = run(["git", "rev-parse", "HEAD"], timeout=GIT_TIMEOUT).check().stdout.strip()
    own = ROOT / DURATIONS
    snapshot = own.read_bytes() if own.is_file() else None  # one split for all four, whatever runs meanwhile
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-matrix-"))
    nodeids: list[str] = []
    seconds: list[float] = []
    try:
        for k in range(1, N + 1):
            checkout = tmp / f"shard-{k}"
            clone(checkout, commit)
            source = durations_into(checkout, snapshot)
            if k == 1:
                bench.detail("matrix.durations", source)
                say(f"round {round_ + 1}: CI matrix of {N} at {commit[:12]}, durations {source}")
                nodeids = collected(checkout)
            seconds.append(one_job(bench, checkout, k, round_, tmp / "junit"))
            shutil.rmtree(checkout)  # a machine's disk: its nox environment goes with it
        merge_and_check(bench, nodeids, seconds, tmp, round_)
        bench.detail("matrix.wall_seconds", round(time.perf_counter() - began, 1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
