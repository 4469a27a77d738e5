"""The end of a parallel run as one model, shown as a table or printed as JSON (`--json`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dockyard.shards.junit import Counts
from dockyard.shards.shard import ShardRun, isolation_problems
from dockyard.ui import ci
from dockyard.ui.console import table

_COLUMNS: tuple[str, ...] = ("shard", "berth", "project", "port block", "tests", "passed", "failed", "skipped")
# est: what the durations predicted for the tests; up: the stack's start; run: pytest in it.
_COLUMNS += ("est s", "up s", "run s", "wall s", "result")


def _seconds(value: object) -> float | None:
    return round(value, 3) if isinstance(value, int | float) else None


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


@dataclass(frozen=True)
class ShardLine:
    """One shard: its berth from its `dockyard run` report, its outcomes from its JUnit XML."""

    shard: str
    berth: int | None
    project: str | None
    port_block: list[int] | None
    tests: int
    passed: int | None  # None: no JUnit XML (its pytest never ran, or died)
    failed: int | None
    skipped: int | None
    estimated_seconds: float
    up_seconds: float | None
    run_seconds: float | None
    began_seconds: float | None  # after the run's first shard began; None: an empty shard
    wall_seconds: float | None  # from its own start; None: an empty shard, never started
    exit_code: int | None
    result: str  # empty, passed or failed
    log: str | None

    @classmethod
    def of(cls, run: ShardRun, weight: Mapping[str, float]) -> ShardLine:
        """The line of a finished shard, ``weight`` the seconds expected of each test."""
        report = run.report or {}
        timings = report.get("timings", {})
        counts = run.counts
        return cls(
            shard=run.label,
            berth=report.get("index"),
            project=report.get("project"),
            port_block=report.get("port_block"),
            tests=len(run.nodeids),
            passed=counts.passed if counts else None,
            failed=counts.failed if counts else None,
            skipped=counts.skipped if counts else None,
            estimated_seconds=round(sum(weight[t] for t in run.nodeids), 3),
            up_seconds=_seconds(timings.get("up")),
            run_seconds=_seconds(timings.get("run")),
            began_seconds=None if run.empty else round(run.began, 3),
            wall_seconds=None if run.empty else round(run.wall, 3),
            exit_code=run.exit_code,
            result="empty" if run.empty else "passed" if run.ok else "failed",
            log=None if run.empty else str(run.path("log")),
        )

    def row(self) -> list[object]:
        """The line as table cells."""
        block = f"{self.port_block[0]}-{self.port_block[1]}" if self.port_block else "-"
        counts = [self.passed, self.failed, self.skipped] if self.passed is not None else ["-"] * 3
        result = f"failed ({self.exit_code})" if self.result == "failed" else self.result
        return [
            *(self.shard, "-" if self.berth is None else self.berth, self.project or "-", block),
            *(self.tests, *counts, f"{self.estimated_seconds:.1f}"),
            *(_cell(self.up_seconds), _cell(self.run_seconds), _cell(self.wall_seconds), result),
        ]


@dataclass(frozen=True)
class Summary:
    """A whole parallel run: a line per shard, the totals, the files it wrote, its exit code."""

    shards: list[ShardLine]
    wall_seconds: float
    berths: int
    counts: Counts
    estimated_seconds: float
    files: Mapping[str, object] = field(default_factory=dict)
    exit_code: int = 0
    isolation_problems: list[str] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        runs: Sequence[ShardRun],
        weight: Mapping[str, float],
        elapsed: float,
        files: Mapping[str, object] | None = None,
    ) -> Summary:
        """The summary of finished ``runs`` (``elapsed``: the whole run's wall time)."""
        active = [r for r in runs if not r.empty]
        return cls(
            shards=[ShardLine.of(run, weight) for run in runs],
            wall_seconds=round(elapsed, 3),
            berths=len({r.report["index"] for r in runs if r.report}),
            counts=sum((r.counts for r in runs if r.counts), Counts()),
            estimated_seconds=sum(weight[t] for r in runs for t in r.nodeids),
            files=dict(files or {}),
            exit_code=next((r.exit_code or 1 for r in active if not r.ok), 0),
            isolation_problems=isolation_problems(active),
        )

    @property
    def result(self) -> str:
        """``passed`` when every shard passed (or was empty), else ``failed``."""
        return "passed" if all(s.result != "failed" for s in self.shards) else "failed"

    @property
    def tests(self) -> int:
        """Tests over all shards."""
        return sum(s.tests for s in self.shards)

    def as_json(self) -> dict[str, Any]:
        """What `parallel --json` prints."""
        return {
            "result": self.result,
            "wall_seconds": self.wall_seconds,
            "totals": {
                "shards": len(self.shards),
                "berths": self.berths,
                "tests": self.tests,
                "passed": self.counts.passed,
                "failed": self.counts.failed,
                "skipped": self.counts.skipped,
            },
            "shards": [asdict(line) for line in self.shards],
            **self.files,
            "exit_code": self.exit_code,
            "isolation_problems": self.isolation_problems,
        }

    def rows(self) -> list[list[object]]:
        """The table's cells: a line per shard, then the total (its ``wall s``: the whole run)."""
        total: list[object] = ["total", self.berths, "", "", self.tests]
        total += [self.counts.passed, self.counts.failed, self.counts.skipped, f"{self.estimated_seconds:.1f}"]
        total += ["", "", f"{self.wall_seconds:.1f}", self.result]
        return [*(line.row() for line in self.shards), total]

    def show(self) -> None:
        """The table, on stdout."""
        table("dockyard parallel", _COLUMNS, self.rows())
        ci.step_summary(ci.markdown_table("dockyard parallel", _COLUMNS, self.rows()))
