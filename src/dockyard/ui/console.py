"""Terminal output: rich on a terminal, plain lines in CI and pipes, JSON where machines read."""

from __future__ import annotations

import functools
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from dockyard.ui import ci
from dockyard.ui.progress import Reporter, plain_lines

if TYPE_CHECKING:
    from rich.console import Console

# rich (~50 ms of import) is imported where it draws: plain output (pipes, CI) never needs it.


def is_plain(stream: IO[str] | None = None) -> bool:
    """Whether output to ``stream`` (default stderr) must be plain: not a terminal, CI set, or TERM=dumb.

    ``FORCE_COLOR`` (any non-empty value, as rich reads it) makes it rich in CI and off a
    terminal; a dumb terminal cannot show it either way.
    """
    stream = sys.stderr if stream is None else stream
    if os.environ.get("TERM") == "dumb":
        return True
    if os.environ.get("FORCE_COLOR"):
        return False
    if os.environ.get("CI"):
        return True
    isatty = getattr(stream, "isatty", None)
    return not (isatty and isatty())


@functools.cache
def console() -> Console:
    """The stderr console: colour and live displays only on a terminal outside CI (or with FORCE_COLOR).

    ``NO_COLOR`` always wins over colour: rich reads it when ``no_color`` is left to it.
    """
    from rich.console import Console  # noqa: PLC0415 - see the imports above

    plain = is_plain(sys.stderr)
    # force_terminal=False, not just no_color: CI runners often give a TTY, and bold/dim or a
    # cursor-moving live display would still reach their logs as escape codes.
    return Console(
        stderr=True, force_terminal=False if plain else None, no_color=plain or None, highlight=False, soft_wrap=plain
    )


def say(message: str) -> None:
    """One progress line for humans (stderr)."""
    if is_plain(sys.stderr) or not console().is_terminal:
        sys.stderr.write(f"dockyard: {message}\n")
        sys.stderr.flush()
        return
    # soft_wrap: a long path broken by an inserted newline can no longer be copied.
    console().print(f"[dim]dockyard:[/dim] {message}", markup=True, soft_wrap=True)


@contextmanager
def reporter(title: str = "dockyard: images and services") -> Iterator[Reporter]:
    """The progress reporter for this process's stderr, stopped when the block ends.

    A live display (a row per image and service) on an interactive terminal; one plain line
    per change when stderr is not a terminal or CI is set, folded under ``title`` on GitHub
    Actions and GitLab CI (:func:`dockyard.ui.ci.fold`).
    """
    with ci.fold(title):
        if is_plain(sys.stderr) or not console().is_terminal:
            yield plain_lines(sys.stderr)
            return
        from dockyard.ui.live import LiveReporter  # noqa: PLC0415 - rich, see the imports above

        with LiveReporter(console()) as live:
            yield live


def emit_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else there."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A table on stdout: rich on a terminal; ASCII, Markdown-shaped, under its title otherwise."""
    from rich import box  # noqa: PLC0415 - see the imports above
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    plain = is_plain(sys.stdout)
    # CI logs and pipes: no box-drawing characters and no title or cells padded to the
    # terminal's width; the rows read (and paste into an issue) as a Markdown table.
    grid = Table(box=box.MARKDOWN) if plain else Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*(str(cell) for cell in row))
    if not plain:
        Console(highlight=False).print(grid)
        return
    out = Console(file=io.StringIO(), force_terminal=False, no_color=True, highlight=False, width=400)
    out.print(grid)
    lines = [line.rstrip() for line in out.file.getvalue().splitlines()]  # type: ignore[attr-defined]
    sys.stdout.write("\n".join([title, *(line for line in lines if line)]) + "\n")
    sys.stdout.flush()


def table_rows(text: str) -> list[list[str]]:
    """The cells of every row of the tables in ``text`` (as :func:`table` prints them), header rows included."""
    rows = []
    for line in text.splitlines():
        for bar in ("|", "\u2502", "\u2503"):  # plain, and rich's light and heavy verticals
            if line.startswith(bar) and not set(line) <= set("|-: \u2502\u2503\u2500\u2501"):
                rows.append([cell.strip() for cell in line.split(bar)[1:-1]])
                break
    return rows


def summary(title: str, fields: Iterable[tuple[str, object]]) -> None:
    """An end-of-run summary on stderr: a title, then one ``name  value`` line per field.

    On GitHub Actions it is appended to the job's step summary too, as a Markdown table.
    """
    fields = list(fields)
    ci.step_summary(ci.markdown_fields(f"dockyard: {title}", fields))
    if is_plain(sys.stderr) or not (out := console()).is_terminal:
        # Plain lines, never wrapped: CI logs are grepped, and a wrapped path is no path.
        lines = [f"dockyard: {title}", *(f"  {name}: {value}" for name, value in fields)]
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()
        return
    from rich.table import Table  # noqa: PLC0415 - see the imports above
    from rich.text import Text  # noqa: PLC0415

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for name, value in fields:
        grid.add_row(name, Text(str(value)))
    out.print(Text(f"dockyard: {title}", style="bold"))
    out.print(grid)


def human_age(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h10m``, ``1d03h``: an age at a glance (negative counts as 0)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
