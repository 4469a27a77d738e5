"""What `dockyard parallel` shows while its shards run: plain lines, or a live row per shard.

A shard is a `dockyard run` subprocess writing to its own log; the view learns of it from the
launcher (started, ended), from the run report the shard writes once its stack is up, and,
on a terminal, from the last progress line in the shard's log (e.g. ``backend: probing
health``), so the display says which service each shard is waiting for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rich.console import Console, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from dockyard.shards.shard import TO_COME
from dockyard.ui.console import console, say

_PREFIX = "dockyard: "


class ShardView(Protocol):
    """Receives the life of each shard (``label`` is ``K/N``)."""

    def queued(self, label: str, tests: int | None) -> None:
        """The shard waits for its turn to start (stacks start a few at a time).

        ``tests`` None: the shard runs every test its pytest selects, not counted beforehand;
        TO_COME: they are handed over once collected and split (:meth:`counted` says how many).
        """

    def started(self, label: str, tests: int | None, log: Path) -> None:
        """The shard's `dockyard run` was started; its output goes to ``log``."""

    def counted(self, label: str, tests: int) -> None:
        """The split is known: the shard (started before it) runs ``tests`` tests."""

    def stack_up(self, label: str, berth: int, project: str, seconds: float) -> None:
        """The shard's stack is healthy in ``berth`` after ``seconds``; its tests run now."""

    def note(self, label: str, line: str) -> None:
        """The last progress line the shard wrote while its stack starts."""

    def ended(self, label: str, exit_code: int, seconds: float) -> None:
        """The shard's process ended."""


class PlainShards:
    """One line per shard event (no notes: they are in each shard's log)."""

    def queued(self, label: str, tests: int | None) -> None:
        """Nothing: the launcher says how many stacks start at a time."""

    def started(self, label: str, tests: int | None, log: Path) -> None:
        """``shard K/N: 12 test(s), log shard-K.log``."""
        say(f"shard {label}: {_tests(tests)}, log {log.name}")

    def counted(self, label: str, tests: int) -> None:
        """Nothing: the launcher says how the tests were split."""

    def stack_up(self, label: str, berth: int, project: str, seconds: float) -> None:
        """``shard K/N: stack up in berth B (project) in 8.1s, running tests``."""
        say(f"shard {label}: stack up in berth {berth} ({project}) in {seconds:.1f}s, running tests")

    def note(self, label: str, line: str) -> None:
        """Nothing: a CI log gets the shard's own lines from its log file."""

    def ended(self, label: str, exit_code: int, seconds: float) -> None:
        """``shard K/N ended (exit 0) after 41.2s``."""
        say(f"shard {label} ended (exit {exit_code}) after {seconds:.1f}s")


def _tests(tests: int | None, plural: str = "test(s)") -> str:
    if tests == TO_COME:
        return "tests to come"
    return "all tests" if tests is None else f"{tests} {plural}"


@dataclass
class _Shard:
    label: str
    tests: int | None
    since: float
    state: str = "starting stack"
    note: str = ""
    berth: str = ""
    exit_code: int | None = None
    took: float | None = None
    spinner: Spinner = field(default_factory=lambda: Spinner("dots", style="cyan"))


class LiveShards:
    """A live table on a terminal: a row per shard with its berth, state and time."""

    def __init__(self, out: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self._shards: dict[str, _Shard] = {}
        self._lock = threading.Lock()  # the display refreshes from its own thread
        self._live = Live(console=out, get_renderable=self.render, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveShards:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def render(self) -> RenderableType:
        """The shards as they are now."""
        now = self.clock()
        grid = Table.grid(padding=(0, 1))
        with self._lock:
            shards = list(self._shards.values())
        for shard in shards:
            seconds = shard.took if shard.took is not None else now - shard.since
            if shard.exit_code is None:
                mark: RenderableType = shard.spinner
                state = Text(shard.state + (f": {shard.note}" if shard.note else ""))
            else:
                ok = shard.exit_code == 0
                mark = Text("✓" if ok else "✗", "green" if ok else "red")
                state = Text("passed" if ok else f"failed (exit {shard.exit_code})", "green" if ok else "red")
            grid.add_row(
                mark,
                f"shard {shard.label}",
                Text(shard.berth, "dim"),
                _tests(shard.tests, plural="tests"),
                state,
                f"{seconds:.1f}s",
            )
        return grid

    def queued(self, label: str, tests: int | None) -> None:
        """A row for the shard, queued."""
        with self._lock:
            self._shards[label] = _Shard(label, tests, self.clock(), state="queued")

    def started(self, label: str, tests: int | None, log: Path) -> None:
        """The shard's row: starting its stack (its time counts from now)."""
        with self._lock:
            self._shards[label] = _Shard(label, tests, self.clock())

    def counted(self, label: str, tests: int) -> None:
        """The row shows the shard's number of tests."""
        with self._lock:
            self._shards[label].tests = tests

    def stack_up(self, label: str, berth: int, project: str, seconds: float) -> None:
        """The row says the berth, and that tests run."""
        with self._lock:
            shard = self._shards[label]
            shard.berth, shard.state, shard.note = f"berth {berth} {project}", "running tests", ""

    def note(self, label: str, line: str) -> None:
        """The row shows the shard's latest progress line while its stack starts."""
        with self._lock:
            shard = self._shards[label]
            if shard.state == "starting stack":
                shard.note = line

    def ended(self, label: str, exit_code: int, seconds: float) -> None:
        """The row ends passed or failed, with the shard's wall time."""
        with self._lock:
            shard = self._shards[label]
            shard.exit_code, shard.took = exit_code, seconds


@contextmanager
def shard_view() -> Iterator[ShardView]:
    """The view for this process's stderr: live rows on a terminal, plain lines otherwise."""
    if not console().is_terminal:
        yield PlainShards()
        return
    with LiveShards(console()) as live:
        yield live


def last_note(log: Path) -> str:
    """The last progress line (``dockyard: ...``, without the prefix) in a shard's log, or ""."""
    try:
        with log.open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 4096))  # the tail is enough: the line is recent
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:  # not created yet
        return ""
    return next((ln[len(_PREFIX) :] for ln in reversed(lines) if ln.startswith(_PREFIX)), "")
