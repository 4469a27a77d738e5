"""``log:TEXT``: ready once the container's output of this run holds ``TEXT``."""

from __future__ import annotations

from datetime import datetime

from dockyard.stack.waits.protocol import Seen, Target


def started_at(stamp: str) -> datetime | None:
    """The engine's ``StartedAt`` (nanoseconds, ``Z``) as a datetime."""
    try:
        head, _, rest = stamp.rstrip("Z").partition(".")
        return datetime.fromisoformat(f"{head}.{rest[:6] or '0'}+00:00")
    except ValueError:
        return None


class Log:
    """``log:TEXT``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.name = f"log:{text}"

    def check(self, target: Target) -> Seen:
        """Read the run's output once."""
        from docker.errors import APIError  # noqa: PLC0415 - the caller's engine client has imported docker-py

        state = target.state
        if state.state in ("created", "restarting"):
            return Seen.not_yet(f"container is {state.state}")
        since = started_at(str((target.info.get("State") or {}).get("StartedAt", "")))
        try:
            raw = target.api.logs(state.container, stdout=True, stderr=True, since=since)
        except APIError:
            return Seen.not_yet("its log cannot be read yet")
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if self.text in text:
            return Seen(ready=True)
        lines = [line for line in text.splitlines() if line.strip()]
        last = f"last log line {lines[-1].strip()[:200]!r}" if lines else "no log line yet"
        if state.state == "exited":
            return Seen(ready=False, failed=True, detail=f"exited with code {state.exit_code}; {last}")
        return Seen.not_yet(last)
