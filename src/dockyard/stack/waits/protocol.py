"""What every wait strategy is: a look at one service's container that says ready or not yet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from dockyard.stack.services import ServiceState

if TYPE_CHECKING:
    from docker import APIClient


@dataclass(frozen=True)
class Target:
    """One service's container as a strategy sees it."""

    state: ServiceState  # what the engine's listing said of it just now
    info: dict[str, Any]  # its inspect output, taken once this run of the container was seen
    api: APIClient  # the engine, for a strategy that must look closer


@dataclass(frozen=True)
class Seen:
    """What one look found."""

    ready: bool
    detail: str = ""  # the last thing seen: "connection refused", "status 503", a log line
    failed: bool = False  # it can no longer become ready (exited, say): stop waiting for it
    again: float | None = None  # look again this soon (s), not at the usual pace: the look cost nothing

    @classmethod
    def not_yet(cls, detail: str, again: float | None = None) -> Seen:
        """Not ready yet, because of ``detail``; worth another look in ``again`` seconds, if given."""
        return cls(ready=False, detail=detail, again=again)


class WaitStrategy(Protocol):
    """Decides whether one service is ready. Each :meth:`check` must return within about a second."""

    @property
    def name(self) -> str:
        """What it waits for, as a user would write it (``"http://:8000/health"``, ``"health check"``)."""
        ...

    def check(self, target: Target) -> Seen:
        """Look once. Called again (every ~0.1 s, or as its ``again`` says) until it says ready or failed."""
        ...
