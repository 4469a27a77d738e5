"""One shard of a run: its tests, its files, what came of it; and whether shards were isolated."""

from __future__ import annotations

import json
import math
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.shards import plugin
from dockyard.shards.junit import Counts, junit_counts, read_xml

TO_COME = -1  # the test count of a pending shard: its tests are handed over once split


@dataclass
class ShardRun:
    """One shard: its tests, its files, and what came of it.

    A shard ``whole`` runs every test its pytest selects (one shard: no split, so nothing to
    collect beforehand); its ``nodeids`` are the ones that pytest collected, once it ran. A
    shard ``pending`` started before the split was known: its tests are handed over later.
    """

    number: int
    count: int
    nodeids: list[str]
    directory: Path
    whole: bool = False
    pending: bool = False
    exit_code: int | None = None
    began: float = 0.0  # seconds after the run's first shard began (queued stack starts delay later ones)
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
    def empty(self) -> bool:
        """Whether the split left this shard nothing to run (it is never started)."""
        return not self.nodeids and not self.whole and not self.pending

    @property
    def tests(self) -> int | None:
        """How many tests the shard runs: None for a whole shard that has not collected yet, TO_COME pending."""
        if self.pending:
            return TO_COME
        return None if self.whole and self.exit_code is None else len(self.nodeids)

    def hand(self, nodeids: Sequence[str]) -> None:
        """Give a pending shard its tests: they go to its shard file, which its pytest reads."""
        self.nodeids, self.pending = list(nodeids), False
        self.write_ids()

    def write_ids(self) -> None:
        """The shard file: its node ids, one a line (atomically: its pytest may read it at any time after)."""
        tmp = self.path("ids.tmp")
        tmp.write_text("".join(f"{t}\n" for t in self.nodeids))
        tmp.replace(self.path("ids"))

    @property
    def ok(self) -> bool:
        """Whether the shard ran and everything in it passed (an empty shard is fine)."""
        return self.empty or (self.exit_code == 0 and self.counts is not None and not self.counts.failed)

    def command(self, pytest_args: Sequence[str]) -> list[str]:
        """``dockyard run -- pytest ARGS`` for this shard, with this Python whatever PATH says."""
        return [
            *(sys.executable, "-m", "dockyard", "run", "--"),
            *(sys.executable, "-m", "pytest", *pytest_args),
            *("-p", plugin.NAME, f"--junitxml={self.path('xml')}"),
            # Concurrent shards would race on one .pytest_cache (lastfailed, nodeids).
            *("-p", "no:cacheprovider"),
        ]

    def gather(self) -> None:
        """Read the finished shard's JUnit XML and `dockyard run` report (either may be missing).

        A whole shard's node ids too, as its pytest listed them.
        """
        if self.whole:
            try:
                self.nodeids = list(dict.fromkeys(self.path("ids").read_text().splitlines()))
            except FileNotFoundError:  # its pytest never got to collect
                self.nodeids = []
        self.junit = read_xml(self.path("xml"))
        self.counts = None if self.junit is None else junit_counts(self.junit)
        try:
            self.report = json.loads(self.path("json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            self.report = None


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


def isolation_line(reports: Sequence[Mapping[str, Any]]) -> str:
    """What the isolation check saw, for the end of a run (problems raise before this)."""
    berths = {r["index"] for r in reports}
    line = (
        f"isolation check: {len(reports)} shard(s) held {len(berths)} distinct berth(s), project(s) and port block(s)"
    )
    if len(berths) < len(reports):
        line += "; a berth was reused after its shard ended, never shared at once"
    return line
