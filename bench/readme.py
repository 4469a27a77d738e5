"""The README's Performance table, generated from a kept ``results.json``: never typed by hand.

    python -m bench.readme            # rewrite the block in README.md from bench/results/results.json
    python -m bench.readme --check    # exit 1 when the README's block is not what the results say

The block sits between ``<!-- bench-table:start -->`` and ``<!-- bench-table:end -->``. It
names the run (commit, rounds, when, load) and has one line per target, self-check and peer
row of that run, with both sides' medians, the ratio, the target and whether it was met.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.report import number

START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
RESULTS = ROOT / "bench" / "results" / "results.json"
README = ROOT / "README.md"
SHOWN = ("target", "check")  # kinds of row shown; a context row is shown only as a peer


def _side(label: str | None, stats: Mapping[str, Any] | None, unit: str) -> str:
    if not label or not stats:
        return "-"
    value = number(stats.get("median"), unit)
    return f"`{label}` {value} {unit}" if unit not in ("x", "") else f"{label} {value}"


def _ratio(row: Mapping[str, Any]) -> str:
    ratio = row.get("ratio")
    if ratio is None:
        return ""
    if row.get("compare") == "A-B":
        return f"{ratio:+.1f} {row['unit']}"
    return f"{ratio:.2f} ({row['compare']})"


def _verdict(row: Mapping[str, Any]) -> str:
    met = str(row.get("met") or "-")
    return {"met": "yes", "missed": "**no**", "ok": "ok", "failed": "**failed**"}.get(met, met)


def _shown(row: Mapping[str, Any]) -> bool:
    return row.get("kind") in SHOWN or str(row.get("target", "")) == "(peer)"


def table(results: Mapping[str, Any]) -> str:
    """The block's text (markers excluded) for one run's results."""
    meta = results["meta"]
    load = meta.get("loadavg_max_1m")
    lines = [
        f"A full run, {meta['rounds']} round(s){' (quick)' if meta.get('quick') else ''}, at commit "
        f"{meta['versions']['git']}, {meta['started']} to {meta['finished']}, on {meta['cpus']} CPUs "
        f"(highest 1-minute load average {load}); its `bench/results/results.json` is kept in the repository.",
        "",
        "| metric | dockyard | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        if not _shown(row):
            continue
        unit = str(row.get("unit") or "")
        metric = str(row["metric"]).replace("{shards}", str(meta.get("shards", "")))
        a = _side(row.get("a"), row.get("a_stats"), unit)
        b = _side(row.get("b"), row.get("b_stats"), unit)
        target = str(row.get("target") or "")
        lines.append(f"| {metric} | {a} | {b} | {_ratio(row)} | {target} | {_verdict(row)} |")
    failed = [c["name"] for c in results.get("checks", []) if not c.get("ok")]
    lines += ["", f"Self-checks: {len(results.get('checks', [])) - len(failed)} passed"]
    lines[-1] += f", failed: {', '.join(failed)}." if failed else ", none failed."
    return "\n".join(lines)


def rewrite(readme: str, block: str) -> str:
    """``readme`` with the text between the markers replaced by ``block``."""
    try:
        head, rest = readme.split(START, 1)
        _, tail = rest.split(END, 1)
    except ValueError:
        raise SystemExit(f"README.md has no {START} ... {END} block for the table") from None
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or check) the README's block; 1 when ``--check`` finds it stale."""
    parser = argparse.ArgumentParser(prog="python -m bench.readme", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether the README's block is current")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results.json to render")
    args = parser.parse_args(argv)
    block = table(json.loads(args.results.read_text()))
    text = README.read_text()
    wanted = rewrite(text, block)
    if args.check:
        if wanted != text:
            sys.stderr.write(f"README.md's Performance table is not what {args.results} says\n")
            sys.stderr.write("  -> run `python -m bench.readme`\n")
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
