"""The `dockyard` console script: the invoke task collection as a program of its own."""

from __future__ import annotations

import shlex

from invoke.program import Program

from dockyard import __version__
from dockyard.cli.tasks import namespace, remainder


class _Program(Program):
    """Hands the words after `--` to `dockyard run`."""

    def execute(self) -> None:
        # invoke's `core.remainder` joins the words after `--` with bare spaces, so quoted
        # arguments (`run -- python -c "a; b"`) fall apart; re-quote the words as given.
        words = self.argv[self.argv.index("--") + 1 :] if "--" in self.argv else []
        remainder.set(shlex.join(words))
        super().execute()


def main() -> None:
    """Entry point of the `dockyard` console script."""
    _Program(name="dockyard", binary="dockyard", version=__version__, namespace=namespace).run()
