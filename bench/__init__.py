"""dockyard's benchmark: dockyard against its baselines, whole process against whole process, in one run.

One module per measurement (``ready``, ``peer``, ``start_path``, ``fresh``, ``parallel``,
``images``, ``daily``, ``matrix``, ``first_run``; ``first_call`` and ``collected`` are the
pytest plugins ``daily`` and ``matrix`` load), over small shared ones: ``procs`` (commands
timed to a deadline), ``cpu`` (host CPU-seconds from /proc/stat), ``host`` (the engine, ports and compose files),
``readout`` (dockyard's ``--json`` output), ``samples``, ``targets``, ``report`` and ``chart``.
``python -m bench --help`` (or ``nox -s bench -- --help``) runs it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


class BenchError(Exception):
    """A measurement could not be taken: a command failed or timed out, something was left behind."""


def say(message: str) -> None:
    """One progress line (stderr; the table goes to stdout)."""
    print(f"bench: {message}", file=sys.stderr, flush=True)
