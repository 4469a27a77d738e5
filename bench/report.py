"""The results as files: ``results.json`` (every sample, the checks, the load, versions) and
``results.md`` (the table, also printed)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.samples import Bench


def number(value: float | None, unit: str) -> str:
    """A median as the table shows it."""
    if value is None:
        return "-"
    return f"{value:.1f}" if unit == "ms" else f"{value:.2f}"


def _ratio(r: Mapping[str, Any]) -> str:
    if r["ratio"] is None:
        return "-"
    if r["compare"] == "A-B":
        return f"{r['ratio']:+.1f} {r['unit']} (A-B)"
    return f"{r['ratio']:.2f} ({r['compare']})"


def _cpu(stats: Mapping[str, Any] | None) -> str:
    return "-" if not stats else f"{stats['median']:.2f}"


def markdown(rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any], bench: Bench) -> str:
    """The results as Markdown: a header, the table, failed checks, errors."""
    head = [
        "metric",
        "A",
        "A med",
        "A min-max",
        "B",
        "B med",
        "B min-max",
        "ratio",
        "host CPU-s A / B",
        "target",
        "met",
    ]
    lines = [
        "# dockyard benchmark",
        "",
        f"{meta['finished']} · {meta['rounds']} round(s) · {meta['cpus']} CPUs · "
        f"load average {meta['loadavg_start']} at start, {meta['loadavg_end']} at end "
        f"(max 1-min {meta['loadavg_max_1m']}) · git {meta['versions'].get('git', '?')}"
        + ("" if meta["targets"] else " · targets not judged (--no-targets)"),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        a, b, unit = r["a_stats"] or {}, r["b_stats"] or {}, r["unit"]
        cells = [
            r["metric"],
            r["a"],
            number(a.get("median"), unit),
            f"{number(a.get('min'), unit)}-{number(a.get('max'), unit)}" if a else "-",
            r["b"] or "-",
            number(b.get("median"), unit),
            f"{number(b.get('min'), unit)}-{number(b.get('max'), unit)}" if b else "-",
            _ratio(r),
            f"{_cpu(r['a_cpu'])} / {_cpu(r['b_cpu'])}" if r["a_cpu"] or r["b_cpu"] else "-",
            r["target"],
            r["met"],
        ]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "Medians over all samples; host CPU-s from /proc/stat over each command (the whole host).",
        "`met`: a target; `ok`/`failed`: a self-check; `-`: context or a peer.",
        "",
    ]
    if failed := bench.failed_checks:
        lines += ["## Failed self-checks", "", *(f"- **{c.name}**: {c.detail}" for c in failed), ""]
    if bench.errors:
        lines += ["## Errors", ""]
        for e in bench.errors:
            first, *rest = e["error"].splitlines() or [""]
            lines.append(f"- **{e['measurement']}**: {first}")
            if rest:
                lines += ["", "  ```", *(f"  {line}" for line in rest[-15:]), "  ```"]
    return "\n".join(lines) + "\n"


def write(directory: Path, rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any], bench: Bench) -> str:
    """Write results.json and results.md into ``directory``; the Markdown."""
    results = {
        "meta": meta,
        "rows": rows,
        "checks": [asdict(c) for c in bench.checks],
        "samples": bench.samples,
        "details": bench.details,
        "load": bench.load,
        "errors": bench.errors,
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(rows, meta, bench)
    (directory / "results.md").write_text(text)
    return text
