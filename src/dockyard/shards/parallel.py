"""`dockyard parallel`: one pytest run split over N berths by recorded durations, one merged report.

The pipeline: choose the shard count from what this host can afford (:mod:`.policy`); unless
one shard runs everything, collect the tests once (:mod:`.collect`) and split them by the
durations earlier runs recorded (:mod:`.plan`), and build the images once; run every shard at
once as ``dockyard run -- python -m pytest ARGS`` in a berth of its own, only the stack starts
queuing (:mod:`.supervise`), their output masked on its way to their logs (:mod:`.logs`);
then merge the shards' JUnit files (:mod:`.junit`), record their per-test times and what the
run cost the host (:mod:`.cost`) for the next split, and show the summary (:mod:`.summary`).
With the count given (``--shards N``, ``--shard K/N``) the collection and split run while the
first stacks start, and each shard gets its tests once its stack is up (:mod:`dockyard.sessions.turn`).
"""

from __future__ import annotations

import signal
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dockyard.engine.endpoints import preflight
from dockyard.engine.images import ensure_images
from dockyard.errors import DockyardError
from dockyard.sessions.signals import Terminated
from dockyard.settings import Settings
from dockyard.shards.collect import collect
from dockyard.shards.cost import ALONE, CostMeter, Costs, as_alone, fixed_alone
from dockyard.shards.junit import junit_durations, merge_junit, write_xml
from dockyard.shards.plan import (
    DURATIONS,
    JUNIT,
    STACK_UP,
    load_durations,
    save_durations,
    split,
    start_offsets,
    weights,
)
from dockyard.shards.policy import Host, before_the_tests, default_shards, starts_at_once
from dockyard.shards.runs import run_directory
from dockyard.shards.shard import ShardRun, isolation_line
from dockyard.shards.summary import Summary
from dockyard.shards.supervise import launch, tail
from dockyard.shards.view import shard_view
from dockyard.stack.compose import ComposeModel
from dockyard.stack.evidence import artifacts_since
from dockyard.stack.masking import StackRedactor
from dockyard.ui.console import emit_json, reporter, say


def _redactor(settings: Settings, meanwhile: ThreadPoolExecutor) -> StackRedactor:
    """The masker of the stack's secrets, for everything written from the shards' output.

    Built once, before any shard starts: the shards' stacks come from the same compose model
    and settings, so what their tests may print of them is known here. The secrets come from
    Compose (~60-80 ms) while the shards start; a log line that comes first waits for them.
    """
    redact = StackRedactor(ComposeModel.load(settings))
    meanwhile.submit(lambda: redact.redactor)
    return redact


def _build_images(settings: Settings) -> None:
    """Build the stack's images once, so the shards do not all queue on the same build."""
    with reporter() as progress:
        ensure_images(preflight(), ComposeModel.load(settings).build_specs(), settings, progress=progress)


def run_shards(
    settings: Settings,
    pytest_args: Sequence[str],
    n: int = 0,
    only: int | None = None,
    junit: Path | None = None,
    *,
    at_once: int | None = None,
    json_summary: bool = False,
) -> int:
    """Run ``pytest ARGS`` as ``n`` shards at once, each in its own berth; 0 when all passed.

    ``n`` 0 chooses the count (:func:`dockyard.shards.policy.default_shards`) and says why.
    ``only`` runs just that shard (1-based) of the same split: one CI job per shard. The
    merged JUnit XML goes to ``junit`` (default ``.dockyard/junit.xml`` under the project
    root); the shards' logs, reports and XML stay in this run's directory under
    ``.dockyard/shards``. At most ``at_once`` shards start their stacks at the same time
    (default: :func:`starts_at_once`). With ``json_summary`` the end-of-run summary goes to
    stdout as JSON (:class:`Summary`) instead of the table.
    """
    if only is not None and not 1 <= only <= n:
        raise DockyardError(f"shard {only} of {n} does not exist", remedy=f"give --shard K/{n} with 1 <= K <= {n}")
    cwd = Path.cwd()
    durations = load_durations(settings.root / DURATIONS)
    plan = _plan(settings, pytest_args, durations, n, only=only, at_once=at_once, cwd=cwd)
    active = [r for r in plan.runs if not r.empty]
    t0 = time.monotonic()
    meter: CostMeter | None = None
    if active:
        # Collected and split, and the secrets asked for, while the images are checked and the first stacks start.
        later = ThreadPoolExecutor(max_workers=2, thread_name_prefix="meanwhile")
        split = later.submit(plan.split) if plan.split is not None else None
        try:
            redact = _redactor(settings, later)
            if len(active) > 1:  # one shard's `dockyard run` builds what it needs itself
                _build_images(settings)
            if plan.at_once < len(active):
                say(f"stacks start {plan.at_once} at a time (the heaviest part of a shard); the tests run all at once")
            # Around launch, not in it: on Ctrl-C the view stops only once the shards have.
            with shard_view() as view:
                meter = CostMeter(view)
                launch(active, pytest_args, cwd, plan.at_once, meter, redact=redact, split=split)
        except Terminated:
            say("terminated: the shards were stopped and took their stacks down")
            return 128 + signal.SIGTERM
        finally:
            later.shutdown(wait=True, cancel_futures=True)
    elapsed = time.monotonic() - t0
    since = time.time() - elapsed
    for run in active:
        run.gather()
        if run.whole and not run.nodeids and run.exit_code == 5:  # pytest's "no tests collected"
            raise DockyardError(f"pytest collected no tests from {' '.join(pytest_args) or cwd}")
    weight = plan.weight if plan.weight is not None else weights([t for r in plan.runs for t in r.nodeids], durations)
    junit = junit or settings.root / JUNIT
    return _finish(
        settings,
        plan.runs,
        weight,
        elapsed,
        junit,
        since=since,
        meter=meter,
        previous=durations,
        json_summary=json_summary,
    )


@dataclass
class _Plan:
    runs: list[ShardRun]
    at_once: int
    weight: dict[str, float] | None = None  # None: a whole shard's, known once it ran
    split: Callable[[], list[list[str]]] | None = None  # the pending runs' tests, in order: collect and split


def _plan(
    settings: Settings,
    pytest_args: Sequence[str],
    durations: Mapping[str, float],
    n: int,
    *,
    only: int | None,
    at_once: int | None,
    cwd: Path,
) -> _Plan:
    """The shards to run: one whole shard, or the collected tests split over ``n`` (0: chosen).

    With ``n`` given, the shards need not wait for the collection: they start pending, and
    the plan's ``split`` (run meanwhile) hands them their tests.
    """
    host, costs = Host.this(settings.max_berths), Costs.recorded(durations)
    recorded = {k: v for k, v in durations.items() if not k.startswith("<")}  # node ids, not costs
    alone = durations.get(ALONE, 1.0) == 1.0 or costs is None  # files from before the mark: as measured
    early = None if n else before_the_tests(host, costs, recorded, durations.get(STACK_UP, 0.0), alone=alone)
    if early is not None:
        say(early.why)
        n = 1
    if n == 1:
        # One shard runs what its pytest selects: no split, so no collection beforehand.
        say("no split: the one shard runs every test pytest selects")
        return _Plan([ShardRun(1, 1, [], _directory(settings), whole=True)], at_once=1)
    at_once = at_once or starts_at_once()
    if n:
        directory = _directory(settings)
        plan = _Plan([ShardRun(k, n, [], directory, pending=True) for k in _numbers(n, only)], at_once)
        plan.split = lambda: _split(plan, _collected(pytest_args, cwd), durations, n, only=only)
        return plan
    nodeids = _collected(pytest_args, cwd)
    seconds = sum(weights(nodeids, durations).values())
    choice = default_shards(host, len(nodeids), seconds, costs, durations.get(STACK_UP, 0.0))
    say(choice.why)
    directory = _directory(settings)
    plan = _Plan([ShardRun(k, choice.shards, [], directory) for k in _numbers(choice.shards, only)], at_once)
    for run, ids in zip(plan.runs, _split(plan, nodeids, durations, choice.shards, only=only), strict=True):
        run.nodeids = ids
    return plan


def _collected(pytest_args: Sequence[str], cwd: Path) -> list[str]:
    """The node ids ``pytest ARGS`` selects (:func:`collect`); none is an error."""
    nodeids = collect(pytest_args, cwd=cwd)
    if not nodeids:
        raise DockyardError(f"pytest collected no tests from {' '.join(pytest_args) or cwd}")
    return nodeids


def _numbers(n: int, only: int | None) -> list[int]:
    """The shards of ``n`` this process runs: all, or ``only`` that one (a CI matrix job)."""
    return list(range(1, n + 1)) if only is None else [only]


def _split(
    plan: _Plan,
    nodeids: Sequence[str],
    durations: Mapping[str, float],
    n: int,
    *,
    only: int | None,
) -> list[list[str]]:
    """The node ids of each of ``plan``'s runs, ``nodeids`` split over ``n``; the weights go to ``plan``."""
    plan.weight = weights(nodeids, durations)
    # Queued stack starts delay the later shards, so they get less to do. Not for one shard of
    # a CI matrix: every job starts at once on its own machine, and all must split alike.
    up = durations.get(STACK_UP, 0.0) if only is None and plan.at_once < n else 0.0
    known = sum(t in durations for t in nodeids)
    say(
        f"{len(nodeids)} tests over {n} shard(s), "
        + (f"split by the durations of {known} of them" if known else "split by count (no durations recorded yet)")
        + (f", shard by shard {up:.0f}s less for the queued stack starts" if up else "")
    )
    shards = split(nodeids, durations, n, start_offsets(n, plan.at_once, up))
    return [shards[k - 1] for k in _numbers(n, only)]


def _directory(settings: Settings) -> Path:
    """This run's directory for its shards' files, said."""
    directory = run_directory(settings.root)
    say(f"shard files (logs, JUnit XML, reports): {directory}")
    return directory


def _measured(active: Sequence[ShardRun], meter: CostMeter | None, previous: Mapping[str, float]) -> dict[str, float]:
    """What the run measured, for the durations file: per-test seconds and the host's costs.

    The seconds are kept on the scale of one shard alone (:func:`as_alone`), and so are the
    price of a second of tests and a shard's fixed time (:func:`fixed_alone`).
    """
    seconds: dict[str, float] = {}
    fixed = []  # per shard: the seconds of its wall time that were not its tests'
    for run in active:
        if run.junit is not None:
            ran = junit_durations(run.junit, run.nodeids)
            seconds.update(ran)
            fixed.append(max(0.0, run.wall - sum(ran.values())))
    if not seconds:
        return {}
    measured, alone = as_alone(seconds, previous, len(active))
    measured[ALONE] = 1.0 if alone else 0.0
    test_seconds = sum(v for k, v in measured.items() if k != ALONE)
    ups = [r.report["timings"]["up"] for r in active if r.report and "up" in r.report.get("timings", {})]
    if ups:
        measured[STACK_UP] = statistics.median(ups)
    # Only a run whose every shard came up and ran its tests prices a berth.
    if meter is not None and len(fixed) == len(active) and all(r.ok for r in active):
        costs = meter.costs(berths=len(active), test_seconds=test_seconds, fixed_seconds=statistics.median(fixed))
        if costs is not None:
            measured.update(fixed_alone(costs, previous, len(active)).as_durations())
    return measured


def _finish(
    settings: Settings,
    runs: Sequence[ShardRun],
    weight: Mapping[str, float],
    elapsed: float,
    junit: Path,
    *,
    since: float,
    meter: CostMeter | None = None,
    previous: Mapping[str, float] | None = None,
    json_summary: bool = False,
) -> int:
    """Read the shards' results, record durations, merge the XML, show the summary; the exit code.

    ``previous`` are the durations recorded before this run (what its seconds are scaled to).
    """
    active = [r for r in runs if not r.empty]
    for run in active:
        if not run.ok:
            say(f"shard {run.label} failed (exit {run.exit_code}); last lines of {run.path('log')}:")
            sys.stderr.write(tail(run.path("log")) + "\n")
    measured = _measured(active, meter, previous or {})
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
    summary = Summary.of(runs, weight, elapsed, files)
    if json_summary:
        emit_json(summary.as_json())
    else:
        summary.show()
    say(f"merged JUnit XML: {junit}")
    say(f"durations: {settings.root / DURATIONS}; shard logs, XML and reports: {files['shard_files']}")
    if artifacts:
        say(f"artifacts ({len(artifacts)} new): {settings.artifacts_dir}")
        for path in artifacts[:10]:
            sys.stderr.write(f"  {path}\n")
    if summary.isolation_problems:
        raise DockyardError("shards were not isolated:\n" + "\n".join(summary.isolation_problems))
    say(isolation_line([r.report for r in active if r.report is not None]))
    return summary.exit_code
