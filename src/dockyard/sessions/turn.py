"""A shard's pipe from `dockyard parallel`: first its turn to start its stack, then its tests.

(And the name of the report each `dockyard run` writes back, ``DOCKYARD_RUN_REPORT``.)

`dockyard parallel` starts every shard at the outset and queues only their stack starts. Each
shard's `dockyard run` reads one line at each of two moments: before it starts its stack
(``start``: its turn; ``none``: the split gave it no tests, so it ends) and, once the stack is
up, before it runs its command (``tests``: they are in its shard file; ``none``: it runs
nothing). The second line lets the parent collect and split the tests while the first stacks
start. The pipe closing before a line means the parallel run is stopping.
"""

from __future__ import annotations

import os
import time
from typing import IO

from dockyard.errors import DockyardError

TURN_ENV = "DOCKYARD_START_TURN"  # the pipe's descriptor, inherited from `dockyard parallel`
# The other way: where `dockyard run` writes what it held (berth, ports, timings, exit code) as
# JSON, for the process that started it (`dockyard parallel` reads one per shard). Written
# first when the stack is up (exit code null), again at the end.
REPORT_ENV = "DOCKYARD_RUN_REPORT"
START, TESTS, NONE = b"start\n", b"tests\n", b"none\n"


class Turn:
    """The read end of one shard's pipe; each wait returns whether there is work, and is timed."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.pipe = pipe
        self.waited: dict[str, float] = {}  # seconds spent in each wait: "turn", "tests"

    @classmethod
    def from_env(cls) -> Turn | None:
        """The pipe ``DOCKYARD_START_TURN`` names, or None when this process is no queued shard."""
        fd = os.environ.pop(TURN_ENV, "")  # the command run later inherits neither the pipe nor its name
        if not fd:
            return None
        try:
            return cls(open(int(fd), "rb", buffering=0))
        except (OSError, ValueError) as exc:
            raise DockyardError(
                f"{TURN_ENV}={fd} is not a pipe this process can read ({exc})",
                remedy=f"unset {TURN_ENV}: only `dockyard parallel` sets it, for the shards it starts",
            ) from None

    def start(self) -> bool:
        """Wait for this shard's turn to start its stack; False when it has no tests (the pipe is closed)."""
        line = self._line("turn", "this shard's turn to start its stack", (START, NONE))
        if line == NONE:
            self.close()
        return line == START

    def tests(self) -> bool:
        """Wait until this shard's tests are handed over (its stack is up); False when it has none."""
        try:
            return self._line("tests", "handing this shard its tests", (TESTS, NONE)) == TESTS
        finally:
            self.close()

    def close(self) -> None:
        """Close the pipe (the parent sees a shard that has ended)."""
        self.pipe.close()

    def _line(self, wait: str, what: str, expected: tuple[bytes, ...]) -> bytes:
        began = time.monotonic()
        line = self.pipe.readline()
        self.waited[wait] = time.monotonic() - began
        if not line:
            self.close()
            raise DockyardError(
                f"`dockyard parallel` stopped before {what}",
                remedy="see the parallel run's own output for why it stopped",
            )
        if line not in expected:
            self.close()
            raise DockyardError(
                f"`dockyard parallel` sent {line!r} where {' or '.join(map(repr, expected))} was due",
                remedy=f"run the same `dockyard` for the parent and its shards ({TURN_ENV} is theirs alone)",
            )
        return line
