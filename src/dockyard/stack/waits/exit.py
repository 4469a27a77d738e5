"""``exit:0``: a one-shot container (a migration, a seed) is done when it has exited 0."""

from __future__ import annotations

from dockyard.stack.waits.protocol import Seen, Target


class ExitZero:
    """``exit:0``; any other exit code is a failure, never ready."""

    name = "exit:0"

    def check(self, target: Target) -> Seen:
        """Whether it exited, and how."""
        state = target.state
        if state.state == "exited":
            if state.exit_code == 0:
                return Seen(ready=True)
            return Seen(ready=False, failed=True, detail=f"exited with code {state.exit_code}")
        return Seen.not_yet(f"still {state.state}")
