"""Waiting, to a deadline, until services are ready: each by its wait strategy, reported as it goes."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dockyard.stack.project import ComposeProject
from dockyard.stack.services import ServiceState
from dockyard.stack.waits.choice import choose
from dockyard.stack.waits.protocol import Seen, Target, WaitStrategy
from dockyard.ui.progress import FAILED, HEALTHY, PROBING, UNHEALTHY, WAITING, Reporter

POLL = 0.1  # seconds between looks at the containers' state while waiting to a deadline
NAP = 0.005  # the shortest sleep between two looks
Chooser = Callable[[str, dict[str, Any]], WaitStrategy]  # (service, inspect output) -> its strategy


@dataclass(frozen=True)
class Unready:
    """Why a wait ended without every service ready, and which services are to blame."""

    reason: str
    services: tuple[str, ...]


class StateReporter:
    """Tells a reporter what each service is doing while the stack waits (it hears only the changes)."""

    def __init__(self, progress: Reporter, health_timeout: float) -> None:
        self.progress = progress
        self.health_timeout = health_timeout

    def report(self, service: str, state: ServiceState | None, passed: bool, detail: str = "") -> None:
        """Map what the engine says (and whether the service's strategy passed) to a progress state."""
        if passed or (state is not None and state.health == "healthy"):
            self.progress.service_state(service, HEALTHY)
        elif state is None or state.state == "created":
            self.progress.service_state(service, WAITING)
        elif state.failed:
            self.progress.service_state(service, UNHEALTHY if state.health == "unhealthy" else FAILED, self.why(state))
        elif state.state == "running":
            self.progress.service_state(service, PROBING, detail)

    def why(self, state: ServiceState) -> str:
        """Why ``state`` is not ready, in words that follow the service's name."""
        if state.health == "unhealthy":
            return "is unhealthy"
        if state.health == "starting":
            return f"did not become healthy within {self.health_timeout:g}s (health_timeout)"
        if state.state == "exited":
            return f"exited with code {state.exit_code} during start"
        return f"is {state.state}"


@dataclass
class _Looks:
    """What one wait has seen so far."""

    done: set[str] = field(default_factory=set)  # services whose strategy said ready
    next: dict[str, float] = field(default_factory=dict)  # service -> when its strategy may look again
    inspected: dict[str, dict[str, Any]] = field(default_factory=dict)  # a running container's check and address stay
    strategies: dict[str, WaitStrategy] = field(default_factory=dict)
    seen: dict[str, Seen] = field(default_factory=dict)  # service -> what its strategy saw last


class Readiness:
    """Decides when a stack's services are ready, and remembers whose readiness it saw itself."""

    def __init__(
        self,
        project: ComposeProject,
        services: Callable[[], Sequence[str]],
        health_timeout: float,
        progress: Reporter,
        chooser: Chooser = choose,
    ) -> None:
        self.project = project
        self.services = services
        self.health_timeout = health_timeout
        self.reporter = StateReporter(progress, health_timeout)
        self.chooser = chooser
        # Container -> StartedAt of the run whose readiness dockyard saw: until the engine's own
        # next health check (one interval later) Docker still says "starting".
        self.passed: dict[str, str] = {}

    def wait(self, services: Sequence[str] = (), timeout: float | None = None) -> Unready | None:
        """Poll to a deadline until ``services`` (default all) are ready; stop at the first failure.

        Each service's strategy looks every ~0.1 s, and never more than half the time, so that a
        heavy health check does not starve the service it checks; sooner where its last look
        says so (a refused port: it costs nothing, and its first accept is what a start waits
        for). The engine's listing of the containers is taken anew every ~0.1 s.
        """
        wanted = sorted(set(services or self.services()))
        deadline = time.monotonic() + (self.health_timeout if timeout is None else timeout)
        looks = _Looks()
        listed = -POLL
        states: dict[str, ServiceState] = {}
        while True:
            if time.monotonic() - listed >= POLL:
                # The engine's view (one call); `looks.done` already says what passed here.
                listed = time.monotonic()
                states = {s.service: s for s in self.project.states() if s.service in wanted}
            failed = sorted(name for name, s in states.items() if s.failed)
            for name in wanted:
                state = states.get(name)
                if state is not None and name not in failed and self._step(name, state, looks):
                    failed.append(name)
                detail = looks.strategies[name].name if name in looks.strategies else ""
                self.reporter.report(name, state, name in looks.done, f"waiting for {detail}" if detail else "")
            if failed:
                return Unready(", ".join(self._failure(n, states[n], looks) for n in failed), tuple(failed))
            pending = [n for n in wanted if n not in looks.done]
            if not pending:
                return None
            if time.monotonic() > deadline:
                return self._timed_out(pending, looks)
            now = time.monotonic()
            due = min([listed + POLL, *(looks.next[n] for n in pending if n in looks.next)])
            time.sleep(min(POLL, max(NAP, due - now)))

    def _step(self, name: str, state: ServiceState, looks: _Looks) -> bool:
        """Look at ``name`` with its strategy when its turn has come; whether it failed."""
        if name in looks.done or state.state == "created" or time.monotonic() < looks.next.get(name, 0):
            return False
        began = time.monotonic()
        if (info := self._inspect(state.container, looks)) is None:
            return False  # gone between the listing and the look: the next listing says why
        if name not in looks.strategies:
            looks.strategies[name] = self.chooser(name, info)
        seen = looks.seen[name] = looks.strategies[name].check(Target(state, info, self.project.api))
        pace = seen.again if seen.again is not None else max(POLL, time.monotonic() - began)
        looks.next[name] = time.monotonic() + pace
        if seen.ready and not seen.failed:
            looks.done.add(name)
            self.passed[state.container] = info["State"]["StartedAt"]
        return seen.failed

    def _inspect(self, container: str, looks: _Looks) -> dict[str, Any] | None:
        from docker.errors import NotFound  # noqa: PLC0415 - the project's `api` has imported docker-py

        if container not in looks.inspected:
            try:
                looks.inspected[container] = self.project.api.inspect_container(container)
            except NotFound:
                return None
        return looks.inspected[container]

    def _failure(self, name: str, state: ServiceState, looks: _Looks) -> str:
        seen = looks.seen.get(name)
        why = seen.detail if seen is not None and seen.failed else self.reporter.why(state)
        strategy = looks.strategies.get(name)
        return f"service {name!r} {why}" + (f" (waiting for {strategy.name})" if strategy else "")

    def _timed_out(self, pending: list[str], looks: _Looks) -> Unready:
        for name in pending:
            self.reporter.progress.service_state(name, UNHEALTHY, f"not healthy after {self.health_timeout:g}s")
        last = [
            f"{name!r} waited for {looks.strategies[name].name}, last saw: {looks.seen[name].detail or 'not ready'}"
            for name in pending
            if name in looks.strategies and name in looks.seen
        ]
        return Unready(
            f"service(s) {', '.join(map(repr, pending))} not healthy after {self.health_timeout:g}s (health_timeout)"
            + "".join(f"; {line}" for line in last),
            tuple(pending),
        )

    def ps(self) -> list[ServiceState]:
        """The state of every container of the project.

        A container whose readiness dockyard saw counts as healthy while Docker still says
        "starting" (until the engine's own first check), as long as it is the same run: one
        more engine call for each such container.
        """
        from docker.errors import NotFound  # noqa: PLC0415 - the project's `api` has imported docker-py

        states = self.project.states()
        for i, state in enumerate(states):
            if state.health == "starting" and state.container in self.passed:
                try:
                    started = self.project.api.inspect_container(state.container)["State"]["StartedAt"]
                except NotFound:
                    continue
                if started == self.passed[state.container]:
                    states[i] = replace(state, health="healthy")
        return sorted(states, key=lambda s: s.service)
