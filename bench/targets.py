"""The table's rows, their targets, and the verdicts: pure functions of the samples.

A row compares A (dockyard) with B (a baseline) on the medians of their samples (``A/B``,
``B/A`` or ``A-B``), or reads A alone. A *target* row turns the run red when missed; a
*context* or *peer* row only informs; a *check* row shows a self-check (built once, all cached).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from bench.samples import Check, Stats

Compare = Literal["A/B", "B/A", "A-B"]


@dataclass(frozen=True)
class Target:
    """``value <= bound`` or ``value >= bound``, where value is the comparison (or A's median)."""

    op: Literal["<=", ">="]
    bound: float
    of: Literal["compare", "a"] = "compare"

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the target."""
        return value <= self.bound if self.op == "<=" else value >= self.bound

    def text(self, compare: Compare | None, unit: str) -> str:
        """The target as the table shows it: ``A/B <= 0.6``, ``A-B <= 150 ms``, ``A <= 10 ms``."""
        lhs = compare if self.of == "compare" and compare else "A"
        suffix = f" {unit}" if unit in ("ms", "s") and (self.of == "a" or compare == "A-B") else ""
        return f"{lhs} {self.op} {self.bound:g}{suffix}"


@dataclass(frozen=True)
class Spec:
    """One row: the measurement that takes it, what A and B are, how they compare, the target."""

    phase: str  # the `--only` name of the measurement
    metric: str
    unit: str  # of the samples: "s", "ms", "x" or "CPU-s"
    a: str  # sample key
    a_label: str
    b: str | None = None
    b_label: str = ""
    compare: Compare | None = None
    target: Target | None = None
    note: str = ""  # "(peer)", "(context)"; a target row leaves it empty
    check: str | None = None  # a self-check's name: the row shows whether it held


def compare(how: Compare | None, a: Stats | None, b: Stats | None) -> float | None:
    """The comparison of the medians (None without both sides)."""
    if how is None or a is None or b is None:
        return None
    if how == "A/B":
        return a.median / b.median if b.median else None
    if how == "B/A":
        return b.median / a.median if a.median else None
    return a.median - b.median


def verdict(spec: Spec, a: Stats | None, b: Stats | None, value: float | None, checks: Sequence[Check]) -> str:
    """``met``/``missed`` (a target), ``ok``/``failed`` (a check), ``-`` (context), ``error`` (unmeasured)."""
    if spec.check is not None:
        mine = [c for c in checks if c.name == spec.check]
        return "error" if not mine else "ok" if all(c.ok for c in mine) else "failed"
    if spec.target is None:
        return "-" if a is not None else "error"
    measured = a.median if spec.target.of == "a" and a is not None else value
    if measured is None:
        return "error"
    return "met" if spec.target.met(measured) else "missed"


def row(spec: Spec, samples: Mapping[str, Sequence[float]], checks: Sequence[Check], shards: int) -> dict[str, Any]:
    """One table row: statistics of A and B (wall and host CPU), the comparison, the verdict."""
    a = Stats.of(samples.get(spec.a, []))
    b = Stats.of(samples.get(spec.b, [])) if spec.b else None
    value = compare(spec.compare, a, b)
    cpu = {
        side: Stats.of(samples.get(f"{key}.cpu", [])) if key else None for side, key in (("a", spec.a), ("b", spec.b))
    }
    return {
        "phase": spec.phase,
        "metric": spec.metric,
        "unit": spec.unit,
        "a": spec.a_label.format(shards=shards),
        "a_stats": asdict(a) if a else None,
        "a_cpu": asdict(cpu["a"]) if cpu["a"] else None,
        "b": spec.b_label.format(shards=shards),
        "b_stats": asdict(b) if b else None,
        "b_cpu": asdict(cpu["b"]) if cpu["b"] else None,
        "compare": spec.compare,
        "ratio": value,
        "target": spec.target.text(spec.compare, spec.unit) if spec.target else spec.note or "-",
        "kind": "target" if spec.target else "check" if spec.check else "context",
        "met": verdict(spec, a, b, value, checks),
    }


def exit_status(
    rows: Sequence[Mapping[str, Any]], checks: Sequence[Check], errors: Sequence[object], *, targets: bool
) -> int:
    """0: all measured, every self-check held, every target met (or not judged); 1: a measurement
    or self-check failed; 3: a target was missed."""
    if errors or any(not c.ok for c in checks) or any(r["met"] in ("error", "failed") for r in rows):
        return 1
    if targets and any(r["met"] == "missed" for r in rows):
        return 3
    return 0
