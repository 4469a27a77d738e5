"""Phase marks: a holder says which phase of its session it is entering, one line each, in a file.

``DOCKYARD_PHASES=<file>`` asks `dockyard run` to append ``<phase> <pid> <wall-clock time>``
to ``<file>`` as it enters each phase: ``acquire``, ``build``, ``up``, ``test``, ``down``,
``release``. A phase may come more than once (``up`` resumes after ``build``); the phase a
process is in is the last one it wrote. The chaos suite reads them to know where a signal
landed: a line is written before the phase's first step, and the process is frozen before it
is read, so what the file says is exactly where the process was.

Without the variable nothing is written and nothing is imported beyond this module.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from dockyard.portblock import PortBlock
from dockyard.ui.progress import BUILT, Reporter

PHASES_ENV = "DOCKYARD_PHASES"
PHASES = ("acquire", "build", "up", "test", "down", "release")


def mark(phase: str) -> None:
    """Append ``phase`` to the file ``DOCKYARD_PHASES`` names (nothing when it names none)."""
    path = os.environ.get(PHASES_ENV)
    if not path:
        return
    # One write(2) on an O_APPEND descriptor: a reader never sees half a line, and lines of
    # several holders sharing the file do not interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{phase} {os.getpid()} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)


def read_marks(path: Path) -> list[tuple[str, int, float]]:
    """The ``(phase, pid, wall-clock time)`` lines of a phase file, oldest first (none if it is missing)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    marks = []
    for line in text.splitlines():
        phase, pid, at = line.split()
        marks.append((phase, int(pid), float(at)))
    return marks


class Marking(Reporter):
    """Forwards every progress event to ``inner``; marks ``build`` while an image builds."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner
        self.building: set[str] = set()  # images build side by side: `up` only once none does
        self.lock = threading.Lock()

    def __call__(self, message: str) -> None:
        """Forward."""
        self.inner(message)

    def image_started(self, image: str, service: str) -> None:
        """Mark ``build``, then forward."""
        with self.lock:
            self.building.add(image)
        mark("build")
        self.inner.image_started(image, service)

    def image_done(self, image: str, status: str, seconds: float) -> None:
        """Forward; after a build, mark ``up`` again: the rest of the start is not building."""
        self.inner.image_done(image, status, seconds)
        with self.lock:
            self.building.discard(image)
            if status == BUILT and not self.building:
                mark("up")

    def stack_starting(self, project: str, services: Sequence[str], port_block: PortBlock) -> None:
        """Forward."""
        self.inner.stack_starting(project, services, port_block)

    def service_state(self, service: str, state: str, detail: str = "") -> None:
        """Forward."""
        self.inner.service_state(service, state, detail)

    def stack_ready(self, project: str, seconds: float) -> None:
        """Forward."""
        self.inner.stack_ready(project, seconds)
