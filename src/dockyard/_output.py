"""Terminal output: rich on a terminal, plain lines in CI and pipes, JSON where machines read."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


@functools.cache
def console() -> Console:
    """The stderr console: colour only on a terminal outside CI."""
    plain = bool(os.environ.get("CI")) or not sys.stderr.isatty()
    return Console(stderr=True, no_color=plain, highlight=False, soft_wrap=plain)


def say(message: str) -> None:
    """One progress line for humans (stderr)."""
    console().print(
        f"[dim]dockyard:[/dim] {message}" if not console().no_color else f"dockyard: {message}",
        markup=not console().no_color,
    )


def emit_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else there."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A table on stdout (plain text when not on a terminal)."""
    plain = bool(os.environ.get("CI")) or not sys.stdout.isatty()
    out = Console(no_color=plain, highlight=False, width=None if not plain else 160)
    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*(str(cell) for cell in row))
    out.print(grid)
