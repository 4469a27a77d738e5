"""What one run collects: samples by key, self-checks, errors, the host's load along the way.

Sample keys name the row's side: ``up.own.dockyard``; a command's host CPU-seconds go beside
its wall time under the same key plus ``.cpu``.
"""

from __future__ import annotations

import statistics
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import BenchError, say
from bench.host import loadavg
from bench.procs import Proc


@dataclass(frozen=True)
class Stats:
    """Median, min and max of some samples."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats | None:
        """Statistics of ``values`` (None when there are none)."""
        if not values:
            return None
        return cls(statistics.median(values), min(values), max(values), len(values))


@dataclass(frozen=True)
class Check:
    """A self-check: the measurement is only worth reading when it holds."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class Bench:
    """The samples, checks and errors of one run, and what it must clean up."""

    rounds: int
    quick: bool
    shards: int
    samples: dict[str, list[float]] = field(default_factory=dict)
    details: dict[str, list[Any]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    load: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    projects: set[str] = field(default_factory=set)  # bare compose projects started: removed at the end

    def add(self, key: str, value: float) -> None:
        """Record one sample."""
        self.samples.setdefault(key, []).append(value)
        say(f"  {key}: {value:.3f}")

    def add_proc(self, key: str, proc: Proc, scale: float = 1.0) -> None:
        """Record a command's wall time under ``key`` and its host CPU-seconds under ``key.cpu``."""
        self.add(key, proc.seconds * scale)
        self.add(f"{key}.cpu", proc.cpu)

    def detail(self, key: str, value: Any) -> None:
        """Record something that explains a sample."""
        self.details.setdefault(key, []).append(value)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        """Record a self-check; a failed one fails the run."""
        self.checks.append(Check(name, ok, detail))
        if not ok:
            say(f"self-check failed: {name}" + (f": {detail}" if detail else ""))

    def note_load(self, phase: str, round_: int) -> None:
        """The host's load average when a phase starts (the machine may be shared)."""
        self.load.append({"phase": phase, "round": round_, "loadavg": loadavg()})

    def guarded(self, name: str, step: Callable[[], None]) -> None:
        """Run one measurement; a failure is recorded (and fails the run), the others go on."""
        try:
            step()
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary of one measurement: record it, go on
            detail = str(exc) if isinstance(exc, BenchError) else "".join(traceback.format_exception(exc)[-6:])
            self.errors.append({"measurement": name, "error": f"{type(exc).__name__}: {detail}"})
            say(f"{name} failed: {type(exc).__name__}: {detail.splitlines()[0] if detail else ''}")

    @property
    def failed_checks(self) -> list[Check]:
        """The self-checks that did not hold."""
        return [c for c in self.checks if not c.ok]
