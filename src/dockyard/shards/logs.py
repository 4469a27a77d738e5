"""Shard logs, masked: a shard's output reaches its log file only through the stack's redactor.

A shard's tests may print what its stack holds (a URL's password from the environment, a
secret file's contents). The shard writes to a pipe; a thread of the supervising process
reads it line by line, masks each line and appends it to the log, flushed at once, so the log
stays live for ``tail`` and the progress notes. Every file written from a shard's output (its
JUnit XML too, once it ended) goes through :func:`mask_file` or :class:`LogPump`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

Redact = Callable[[str], str]


class LogPump:
    """Copies a shard's output (``source``, bytes) into ``log``, masked, one line at a time."""

    def __init__(self, source: IO[bytes], log: Path, redact: Redact, *, name: str = "shard-log") -> None:
        self.source = source
        self.log = log
        self.redact = redact
        self.log.touch()  # there from the start: `tail -f` and the progress notes open it first
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> LogPump:
        """Start copying (until the shard closes its end of the pipe)."""
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        """Wait until everything the shard wrote is in the log."""
        self._thread.join(timeout)

    def _run(self) -> None:
        with self.log.open("a", encoding="utf-8") as out:
            # Line by line: a secret is never split between two reads, and each line is in the
            # log as soon as the shard ends it. A line without its newline (the last one) too.
            for raw in iter(self.source.readline, b""):
                text = self.redact(raw.decode("utf-8", "replace"))
                try:
                    out.write(text)
                    out.flush()
                except OSError:
                    # A full disk must not block the shard on a pipe nobody drains: keep
                    # reading, drop what cannot be written.
                    continue
        self.source.close()


def mask_file(path: Path, redact: Redact) -> None:
    """Rewrite ``path`` with its secrets masked (nothing when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    masked = redact(text)
    if masked != text:
        path.write_text(masked, encoding="utf-8")
