"""The `dockyard` console script: the invoke program (:mod:`.app`) over dockyard's tasks.

`dockyard up` forks its keeper first (:mod:`.early`), so the keeper starts the stack at once;
a plainly typed `up`, `down` or `run -- CMD` then runs to its end without loading invoke at all.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import sys

from dockyard import __version__
from dockyard.cli import early


def main() -> None:
    """Entry point of the `dockyard` console script."""
    early.fork_keeper(sys.argv[1:])
    if (code := early.run(sys.argv[1:])) is not None:
        _done()
        sys.exit(code)
    from dockyard.cli.app import DockyardProgram  # noqa: PLC0415 - after the fork: see the module's docstring
    from dockyard.cli.tasks import namespace  # noqa: PLC0415

    try:
        DockyardProgram(name="dockyard", binary="dockyard", version=__version__, namespace=namespace).run()
    finally:
        _done()


def _done() -> None:
    """What every command does once its work is done, before the interpreter's exit."""
    _late_sigint_ends_the_process()
    # The interpreter's last collection walks every object the imports made, ~25 ms of a
    # command's wall time; frozen, they are left to the exit. atexit handlers still run.
    gc.freeze()


def _late_sigint_ends_the_process() -> None:
    """A Ctrl-C once the work is done ends the process by SIGINT, as a shell expects of it.

    Left to Python, one arriving while the interpreter shuts down (atexit callbacks: docker-py's
    connection pools) is printed as an ignored KeyboardInterrupt and the exit status stays 0.
    The output is flushed first: dying by the signal skips Python's own flush.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a full pipe: nothing left to save
            stream.flush()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
