"""The `dockyard` console script: the invoke task collection as a program of its own."""

from __future__ import annotations

from invoke.program import Program

from . import __version__
from .tasks import namespace, remainder


class _Program(Program):
    """Hands the words after `--` to `dockyard run`."""

    def execute(self) -> None:
        remainder.set(self.core.remainder)
        super().execute()


def main() -> None:
    """Entry point of the `dockyard` console script."""
    _Program(name="dockyard", binary="dockyard", version=__version__, namespace=namespace).run()
