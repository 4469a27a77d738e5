"""The progress reporter for an interactive terminal: a rich live display, a row per image and service.

Rows change in place (waiting, starting, probing health, healthy (0.8s), unhealthy) while a
spinner turns on what is in progress; notes are printed above the display. The display stops
when the stack is ready (the command that `dockyard run` starts then has the terminal), or
when :meth:`LiveReporter.close` is called, whichever comes first; the last picture stays.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from dockyard.portblock import PortBlock
from dockyard.ui.progress import BUILT, DONE, FAILED, HEALTHY, STARTING, UNHEALTHY, WAITING

_STYLE = {HEALTHY: "green", BUILT: "green", "cached": "green", UNHEALTHY: "red", FAILED: "red", WAITING: "dim"}
_MARK = {HEALTHY: "✓", BUILT: "✓", "cached": "✓", UNHEALTHY: "✗", FAILED: "✗", WAITING: "·"}


@dataclass
class _Row:
    """One line of the display: what it is, its state, since when, and how it ended."""

    kind: str  # "image" or "service"
    name: str
    state: str
    since: float
    detail: str = ""
    took: float | None = None  # seconds to the final state, once there
    spinner: Spinner = field(default_factory=lambda: Spinner("dots", style="cyan"))

    @property
    def busy(self) -> bool:
        return self.state not in DONE and self.state not in ("cached", BUILT, WAITING)


class LiveReporter:
    """Shows dockyard's progress events as a live table on ``console`` (stderr)."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.clock = clock
        self.title = ""
        self._rows: dict[tuple[str, str], _Row] = {}
        self._lock = threading.Lock()  # the display refreshes from its own thread
        self._live: Live | None = None
        self._closed = False

    # -- the display ---------------------------------------------------------------------------

    def _start(self) -> None:
        if self._live is None and not self._closed:
            self._live = Live(console=self.console, get_renderable=self.render, refresh_per_second=8, transient=False)
            self._live.start()

    def close(self) -> None:
        """Stop the live display, leaving its last picture; later notes print as plain lines."""
        self._closed = True
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()

    def __enter__(self) -> LiveReporter:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def render(self) -> RenderableType:
        """The display as it is now: a title line, then one row per image and service."""
        now = self.clock()
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=1)
        grid.add_column(no_wrap=True)
        grid.add_column()
        with self._lock:
            rows = list(self._rows.values())
            title = self.title
        if title:
            grid.add_row("", Text.from_markup(f"[bold]{escape(title)}[/bold]"), "")
        for row in rows:
            style = _STYLE.get(row.state, "")
            mark: RenderableType = row.spinner if row.busy else Text(_MARK.get(row.state, " "), style)
            state = row.state
            if row.took is not None and row.state in (HEALTHY, BUILT):
                state += f" ({row.took:.1f}s)"
            elif row.busy:
                state += f" {now - row.since:.1f}s"
            if row.detail:
                state += f": {row.detail}"
            name = f"image {row.name}" if row.kind == "image" else row.name
            grid.add_row(mark, name, Text(state, style))
        return grid

    def _set(self, kind: str, name: str, state: str, detail: str = "", took: float | None = None) -> None:
        with self._lock:
            row = self._rows.get((kind, name))
            now = self.clock()
            if row is None:
                row = self._rows[(kind, name)] = _Row(kind, name, state, now)
            if state == STARTING or row.state == WAITING:
                row.since = now  # time to healthy counts from the container's start
            if took is None and state == HEALTHY:
                took = now - row.since
            row.state, row.detail, row.took = state, detail, took
        self._start()
        if self._closed:
            # After the display stopped (e.g. a restart after `up`), changes print as lines.
            self.console.print(f"dockyard: {name}: {state}" + (f": {detail}" if detail else ""), markup=False)

    # -- the Reporter protocol -------------------------------------------------------------------

    def __call__(self, message: str) -> None:
        """Print the note above the display."""
        self.console.print(f"[dim]dockyard:[/dim] {escape(message)}")

    def image_started(self, image: str, service: str) -> None:
        """A building row for ``image``."""
        self._set("image", image, "building", service)

    def image_done(self, image: str, status: str, seconds: float) -> None:
        """The image's row ends as cached or built (with its time)."""
        self._set("image", image, status, took=seconds)

    def stack_starting(self, project: str, services: Sequence[str], port_block: PortBlock) -> None:
        """A title for the stack and a waiting row per service."""
        with self._lock:
            self.title = f"{project}  ports {port_block}"
        for service in services:
            self._set("service", service, WAITING)

    def service_state(self, service: str, state: str, detail: str = "") -> None:
        """Update the service's row."""
        self._set("service", service, state, detail)

    def stack_ready(self, project: str, seconds: float) -> None:
        """Title the stack ready and stop the display (the last picture stays)."""
        with self._lock:
            self.title = f"{self.title or project}  ready in {seconds:.1f}s"
        if self._live is not None:
            self._live.refresh()
        self.close()
