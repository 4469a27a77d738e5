"""The command line: which measurements, how many rounds; the run as a pipeline of steps.

    python -m bench                      # every measurement but first-run, 3 rounds
    python -m bench --quick --only ready # 1 round of one measurement
    python -m bench --only first-run     # the slow one: no images, `nox -s e2e`
    python -m bench --no-targets         # exploring: targets shown, not judged

Exit status: 0 when everything was measured, every self-check held and every target was met;
1 when a measurement or a self-check failed (a command failed or timed out, a stack did not
answer when declared ready, something was left behind, an image was built twice); 3 when a
target was missed (not with ``--no-targets``); 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from bench import RESULTS, report, say
from bench.chart import chart
from bench.daily import measure_daily
from bench.first_run import measure_first_run
from bench.fresh import measure_fresh
from bench.host import BASE_IMAGE, DEMO_FILES, compose_down_quietly, loadavg, versions
from bench.images import measure_images
from bench.matrix import measure_matrix
from bench.parallel import measure_parallel
from bench.ready import measure_ready, stop_keepers_since
from bench.rows import SPECS
from bench.samples import Bench
from bench.start_path import measure_start_path
from bench.targets import exit_status, row

Measurement = Callable[[Bench, int], None]
MEASUREMENTS: dict[str, Measurement] = {
    "images": measure_images,
    "start-path": measure_start_path,
    "ready": measure_ready,
    "fresh": measure_fresh,
    "parallel": measure_parallel,
    "daily": measure_daily,
    "matrix": measure_matrix,
    "first-run": measure_first_run,
}
DEFAULT = ("images", "start-path", "ready", "fresh", "parallel", "daily", "matrix")  # first-run only when asked


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="dockyard against bare compose and testcontainers, whole process against whole process.",
        epilog="Exit status: 0 all met; 1 a measurement or self-check failed; 3 a target missed.",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of A and B interleaved (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 round, fewer repetitions inside each")
    parser.add_argument("--shards", type=int, default=4, help="berths of the N-shard parallel run (default 4)")
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT),
        help=f"comma-separated subset of {', '.join(MEASUREMENTS)} (default: all but first-run)",
    )
    parser.add_argument(
        "--no-targets", action="store_true", help="show the targets but do not fail the run on a missed one"
    )
    args = parser.parse_args(argv)
    args.only = [m.strip() for m in args.only.split(",") if m.strip()]
    if unknown := sorted(set(args.only) - set(MEASUREMENTS)):
        parser.error(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(MEASUREMENTS)}")
    if args.quick:
        args.rounds = 1
    if args.rounds < 1 or args.shards < 2:
        parser.error("--rounds must be 1 or more and --shards 2 or more")
    return args


@contextlib.contextmanager
def cleaning(bench: Bench) -> Iterator[None]:
    """Remove whatever is left of the stacks the bench started, whatever happens."""
    since = time.time()
    try:
        yield
    finally:
        steps = [(p, functools.partial(compose_down_quietly, p, DEMO_FILES)) for p in sorted(bench.projects)]
        steps.append(("dockyard up keepers", functools.partial(stop_keepers_since, since)))
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - cleanup must try every step; the failure is recorded
                bench.errors.append({"measurement": "cleanup", "error": f"{what}: {type(exc).__name__}: {exc}"})


def measure(bench: Bench, only: Sequence[str]) -> None:
    """Every round runs each chosen measurement once, in the order given."""
    for round_ in range(bench.rounds):
        for name in only:
            say(f"round {round_ + 1}/{bench.rounds}: {name}")
            bench.note_load(name, round_)
            bench.guarded(name, functools.partial(MEASUREMENTS[name], bench, round_))


def meta(args: argparse.Namespace, bench: Bench, started: datetime, load_start: list[float]) -> dict[str, Any]:
    """What the run was: when, how many rounds, on what, under what load."""
    return {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "measurements": args.only,
        "rounds": args.rounds,
        "quick": args.quick,
        "shards": args.shards,
        "targets": not args.no_targets,
        "cpus": os.cpu_count(),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "loadavg_max_1m": max([load_start[0], *(x["loadavg"][0] for x in bench.load)]),
        "base_image": BASE_IMAGE,
        "versions": versions(),
    }


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, write the results, print the table; the exit status (see the module's docstring)."""
    args = parse_args(argv)
    # SIGTERM (a CI job cancelled, a nox timeout) tears down like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    bench = Bench(rounds=args.rounds, quick=args.quick, shards=args.shards)
    started, load_start = datetime.now(UTC), loadavg()
    say(f"{args.rounds} round(s) of {', '.join(args.only)}; load average {load_start}")
    try:
        with cleaning(bench):
            measure(bench, args.only)
    except KeyboardInterrupt:
        say("interrupted; cleaned up")
        return 130
    rows = [row(spec, bench.samples, bench.checks, bench.shards) for spec in SPECS if spec.phase in args.only]
    RESULTS.mkdir(parents=True, exist_ok=True)
    try:
        chart(rows, RESULTS / "results.png")
    except Exception as exc:  # noqa: BLE001 - a missing chart must not hide the table; it is an error
        bench.errors.append({"measurement": "chart", "error": f"{type(exc).__name__}: {exc}"})
    print(report.write(RESULTS, rows, meta(args, bench, started, load_start), bench))
    status = exit_status(rows, bench.checks, bench.errors, targets=not args.no_targets)
    if status == 1:
        say(f"a measurement or self-check failed; see {RESULTS / 'results.md'}")
    elif status == 3:
        missed = [r["metric"] for r in rows if r["met"] == "missed"]
        say(f"{len(missed)} target(s) missed: {'; '.join(missed)} (--no-targets to explore without failing)")
    return status
