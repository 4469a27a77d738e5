"""No health check, no wait strategy, no published port: ready once it has kept running a while."""

from __future__ import annotations

import time
from collections.abc import Callable

from dockyard.stack.waits.protocol import Seen, Target

# Seconds a container must keep running, unless the `settle` setting says otherwise: a crash at
# start happens well within it.
SETTLE = 2.0


class Settle:
    """Running, without a restart, for ``seconds``; or exited 0."""

    def __init__(self, seconds: float = SETTLE, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.name = f"{seconds:g}s of running (the settle time: no health check, wait strategy or published port)"
        self._since: dict[str, float] = {}  # StartedAt of a run -> when it was first seen running here

    def check(self, target: Target) -> Seen:
        """Look at the run afresh: a restart in between starts the count again."""
        from docker.errors import NotFound  # noqa: PLC0415 - the caller's engine client has imported docker-py

        state = target.state
        if state.state == "exited" and state.exit_code == 0:
            return Seen(ready=True)
        if state.state != "running":
            return Seen.not_yet(f"container is {state.state}")
        try:
            now = target.api.inspect_container(state.container)["State"]
        except NotFound:
            return Seen.not_yet("container is gone")
        if now.get("Status") != "running":
            return Seen.not_yet(f"container is {now.get('Status')}")
        since = self._since.setdefault(str(now.get("StartedAt")), self.clock())
        running = self.clock() - since
        if running >= self.seconds:
            return Seen(ready=True)
        return Seen.not_yet(f"running for {running:.1f}s of {self.seconds:g}s")
