"""The :class:`Reporter` protocol: what dockyard tells while images build and services become healthy.

:mod:`dockyard.engine.images` and :mod:`dockyard.stack` report events to a :class:`Reporter`;
how (or whether) they are shown is the reporter's business. The default is :data:`SILENT`,
so a library user sees nothing. The front doors pick a reporter for the terminal
(:func:`dockyard.ui.console.reporter`): a rich live display on an interactive terminal, one
plain line per change in CI and pipes (:class:`Lines`).

A plain ``Callable[[str], None]`` works as ``progress=`` too: :func:`as_reporter` renders
every event for it as one line of text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Protocol, runtime_checkable

from dockyard.portblock import PortBlock

# A service's states, in the order a healthy start passes through them.
WAITING = "waiting"  # created; its turn (a depends_on level) has not come
STARTING = "starting"  # the engine is starting its container
PROBING = "probing health"  # running; dockyard runs its health check until it passes
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"  # its health check failed, or it was not healthy by the deadline
FAILED = "failed"  # exited, crash-looping, or could not start
DONE = frozenset({HEALTHY, UNHEALTHY, FAILED})

# What image_done reports.
CACHED = "cached"
BUILT = "built"


@runtime_checkable
class Reporter(Protocol):
    """Receives dockyard's progress events. Every method must return quickly and never raise.

    ``service_state`` reaches a reporter only when a service's state changes (see
    :func:`as_reporter`); the other events come once each. Each method's default does
    nothing: subclass this to handle only the events you want.
    """

    # The explicit `return None`s make the defaults real methods (mypy takes an empty body in a
    # protocol for abstract), so the silent reporter is this protocol itself.
    def __call__(self, message: str) -> None:
        """A free-text note (a lock waited for, a base image being bootstrapped, ...)."""
        return None  # noqa: RET501 - a silent default, not an abstract method

    def image_started(self, image: str, service: str) -> None:
        """``image`` (of ``service``) is being built."""
        return None  # noqa: RET501 - a silent default, not an abstract method

    def image_done(self, image: str, status: str, seconds: float) -> None:
        """``image`` is there: ``status`` is ``"cached"`` or ``"built"``, after ``seconds``."""
        return None  # noqa: RET501 - a silent default, not an abstract method

    def stack_starting(self, project: str, services: Sequence[str], port_block: PortBlock) -> None:
        """The stack's containers are created; every service in ``services`` is waiting."""
        return None  # noqa: RET501 - a silent default, not an abstract method

    def service_state(self, service: str, state: str, detail: str = "") -> None:
        """``service`` entered ``state`` (one of the state constants); ``detail`` says why."""
        return None  # noqa: RET501 - a silent default, not an abstract method

    def stack_ready(self, project: str, seconds: float) -> None:
        """Every service is healthy, ``seconds`` after the start began."""
        return None  # noqa: RET501 - a silent default, not an abstract method


class _Silent(Reporter):
    """The default reporter: says nothing."""


SILENT: Reporter = _Silent()


def _seconds(value: float) -> str:
    return f"{value:.1f}s"


class Lines:
    """Every event as one line of plain text, handed to ``sink`` (no colour, no spinner).

    The healthy line carries the seconds since the service's container was started (or, after
    a restart, since the service was first reported).
    """

    def __init__(self, sink: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.sink = sink
        self.clock = clock
        self._since: dict[str, float] = {}

    def __call__(self, message: str) -> None:
        """Pass the note on."""
        self.sink(message)

    def image_started(self, image: str, service: str) -> None:
        """``image <image>: building (<service>)``."""
        self.sink(f"image {image}: building ({service})")

    def image_done(self, image: str, status: str, seconds: float) -> None:
        """``image <image>: cached`` or ``... built in 12.3s``."""
        self.sink(f"image {image}: {status}" + (f" in {_seconds(seconds)}" if status == BUILT else ""))

    def stack_starting(self, project: str, services: Sequence[str], port_block: PortBlock) -> None:
        """``starting <project> on ports A-B: svc, ...``."""
        self.sink(f"starting {project} on ports {port_block}: {', '.join(services)}")

    def service_state(self, service: str, state: str, detail: str = "") -> None:
        """``<service>: <state>``, with the time to healthy or the reason of a failure."""
        now = self.clock()
        if state == STARTING or (service not in self._since and state not in (*DONE, WAITING)):
            self._since[service] = now
        text = f"{service}: {state}"
        if state == HEALTHY and service in self._since:
            text += f" ({_seconds(now - self._since[service])})"
        if detail:
            text += f": {detail}"
        self.sink(text)

    def stack_ready(self, project: str, seconds: float) -> None:
        """``<project> ready in 4.2s``."""
        self.sink(f"{project} ready in {_seconds(seconds)}")


def plain_lines(stream: IO[str], prefix: str = "dockyard: ") -> Lines:
    """A :class:`Lines` reporter writing ``prefix`` + line to ``stream``, flushed at once."""

    def write(line: str) -> None:
        stream.write(f"{prefix}{line}\n")
        stream.flush()

    return Lines(write)


class _Changes:
    """Forwards to ``inner``, but each service's state only when it changed.

    The stack looks at its services many times a second; a reporter wants transitions.
    """

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner
        self._state: dict[str, str] = {}

    def __call__(self, message: str) -> None:
        """Forward the note."""
        self.inner(message)

    def image_started(self, image: str, service: str) -> None:
        """Forward."""
        self.inner.image_started(image, service)

    def image_done(self, image: str, status: str, seconds: float) -> None:
        """Forward."""
        self.inner.image_done(image, status, seconds)

    def stack_starting(self, project: str, services: Sequence[str], port_block: PortBlock) -> None:
        """Forward; every service is waiting now."""
        self._state.update(dict.fromkeys(services, WAITING))
        self.inner.stack_starting(project, services, port_block)

    def service_state(self, service: str, state: str, detail: str = "") -> None:
        """Forward when ``state`` differs from the last one forwarded for ``service``."""
        if self._state.get(service) != state:
            self._state[service] = state
            self.inner.service_state(service, state, detail)

    def stack_ready(self, project: str, seconds: float) -> None:
        """Forward."""
        self.inner.stack_ready(project, seconds)


def as_reporter(progress: Reporter | Callable[[str], None] | None) -> Reporter:
    """A reporter that sees each state change once: ``progress`` itself, or lines for a callable."""
    if progress is None or progress is SILENT:
        return SILENT
    if isinstance(progress, _Changes):
        return progress
    if not isinstance(progress, Reporter):
        progress = Lines(progress)
    return _Changes(progress)


# -- across a pipe (the `dockyard up` keeper runs the stack in another process) -----------------

_EVENTS = ("image_started", "image_done", "stack_starting", "service_state", "stack_ready")


class JsonLines:
    """Writes every event as one JSON object per line: ``{"event": name, "args": {...}}``."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def _emit(self, event: str, **args: Any) -> None:
        if self.stream.closed:
            return  # the reader has its answer (the keeper closes stdout once the stack is up)
        self.stream.write(json.dumps({"event": event, "args": args}) + "\n")
        self.stream.flush()

    def __call__(self, message: str) -> None:
        """``{"event": "message", ...}``."""
        self._emit("message", message=message)

    def image_started(self, image: str, service: str) -> None:
        """Emit the event."""
        self._emit("image_started", image=image, service=service)

    def image_done(self, image: str, status: str, seconds: float) -> None:
        """Emit the event."""
        self._emit("image_done", image=image, status=status, seconds=seconds)

    def stack_starting(self, project: str, services: Sequence[str], port_block: PortBlock) -> None:
        """Emit the event (the block as ``[start, last]``)."""
        self._emit("stack_starting", project=project, services=list(services), port_block=port_block.to_json())

    def service_state(self, service: str, state: str, detail: str = "") -> None:
        """Emit the event."""
        self._emit("service_state", service=service, state=state, detail=detail)

    def stack_ready(self, project: str, seconds: float) -> None:
        """Emit the event."""
        self._emit("stack_ready", project=project, seconds=seconds)


def replay(message: Mapping[str, Any], reporter: Reporter) -> bool:
    """Hand one :class:`JsonLines` object to ``reporter``; False when it is no event."""
    event, args = message.get("event"), dict(message.get("args") or {})
    if event == "message":
        reporter(str(args.get("message", "")))
        return True
    if event not in _EVENTS:
        return False
    if event == "stack_starting":
        args["port_block"] = PortBlock.from_json(args["port_block"])
    getattr(reporter, str(event))(**args)
    return True
