"""CI-native output: folded sections and the job's step summary on GitHub Actions and GitLab CI.

GitHub Actions folds the lines between ``::group::TITLE`` and ``::endgroup::`` and renders
Markdown appended to the file ``$GITHUB_STEP_SUMMARY`` on the run's page. GitLab CI folds
between ``section_start`` and ``section_end`` lines (each an ANSI erase-line sequence, a unix
time and a section name). Elsewhere every function here does nothing.

A process whose stderr is a file its parent reads (a shard of ``dockyard parallel``) is told
so by ``DOCKYARD_CI_OUTPUT=off`` in its environment: the parent folds and summarises for it,
and N shards must not each append to the job's summary.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Literal

OUTPUT_ENV = "DOCKYARD_CI_OUTPUT"  # "off": no folding, no step summary (a child whose output is a file)

Kind = Literal["github", "gitlab"]

_ESC = "\x1b[0K"  # GitLab's erase-to-end-of-line, around its section markers
_sections = itertools.count(1)


def kind(env: Mapping[str, str] | None = None) -> Kind | None:
    """The CI service this process reports to, or None (not in CI, or output turned off)."""
    env = os.environ if env is None else env
    if env.get(OUTPUT_ENV, "").lower() in ("off", "0", "false", "no"):
        return None
    if env.get("GITHUB_ACTIONS") == "true":
        return "github"
    if env.get("GITLAB_CI"):
        return "gitlab"
    return None


def child_env() -> dict[str, str]:
    """Environment for a child whose output goes to a file this process reads (no CI markers)."""
    return {OUTPUT_ENV: "off"}


@contextmanager
def fold(title: str, stream: IO[str] | None = None) -> Iterator[None]:
    """Fold what is written to ``stream`` (default stderr) inside the block under ``title``.

    The section ends however the block ends, so a failure's output stays inside its fold
    and what follows it is not swallowed.
    """
    service = kind()
    if service is None:
        yield
        return
    out = sys.stderr if stream is None else stream
    title = " ".join(title.split())  # one line: a newline would end the marker early
    if service == "github":
        _write(out, f"::group::{title}\n")
    else:
        name = f"dockyard_{os.getpid()}_{next(_sections)}"
        _write(out, f"{_ESC}section_start:{int(time.time())}:{name}[collapsed=true]\r{_ESC}{title}\n")
    try:
        yield
    finally:
        if service == "github":
            _write(out, "::endgroup::\n")
        else:
            _write(out, f"{_ESC}section_end:{int(time.time())}:{name}\r{_ESC}\n")


def _write(out: IO[str], text: str) -> None:
    out.write(text)
    out.flush()


def step_summary(markdown: str) -> Path | None:
    """Append ``markdown`` to the GitHub Actions job summary; the file written, or None.

    Only on GitHub Actions with ``$GITHUB_STEP_SUMMARY`` set: GitLab has no such page (its
    summaries are JUnit reports, which ``dockyard parallel`` already merges).
    """
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if kind() != "github" or not path:
        return None
    target = Path(path)
    with target.open("a", encoding="utf-8") as fh:
        fh.write(markdown.rstrip("\n") + "\n\n")
    return target


def _cell(value: object) -> str:
    # A bar would end the cell; a newline, the row.
    return re.sub(r"\s*\n\s*", " ", str(value)).replace("|", "\\|")


def markdown_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """``### title`` and a GitHub-flavoured Markdown table of ``rows``."""
    lines = [f"### {title}", "", "| " + " | ".join(_cell(c) for c in columns) + " |"]
    lines.append("|" + "|".join(" --- " for _ in columns) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_fields(title: str, fields: Iterable[tuple[str, object]]) -> str:
    """``### title`` and a two-column table of ``name | value`` (what :func:`~dockyard.ui.console.summary` shows)."""
    return markdown_table(title, ("", ""), ((f"**{_cell(name)}**", f"`{_cell(value)}`") for name, value in fields))
