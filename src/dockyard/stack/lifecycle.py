"""Up and down: build, create, start level by level to ready, and tear everything of the lease down."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

from dockyard.engine.endpoints import forget_clients, preflight, publish_note
from dockyard.engine.labels import find, remove
from dockyard.errors import DockerUnavailable, StackUnhealthy, TeardownIncomplete
from dockyard.pool.leasing import image_sources, share_images
from dockyard.settings import Settings
from dockyard.stack import teardown
from dockyard.stack.attach import attach_runner, detach_runner
from dockyard.stack.compose import ComposeModel
from dockyard.stack.coverage import STOP_TIMEOUT
from dockyard.stack.override import Override
from dockyard.stack.project import ComposeProject
from dockyard.stack.readiness import Readiness, Unready
from dockyard.ui.progress import FAILED, STARTING, Reporter

if TYPE_CHECKING:
    from docker import DockerClient

_SAID: set[str] = set()  # notes said once per process

DEFERRED = (signal.SIGINT, signal.SIGTERM)  # what may not cut a teardown short
OnUnready = Callable[[Unready], NoReturn]  # collects the evidence of a failed start and raises


class Lifecycle:
    """The up/down flow of one berth's stack."""

    def __init__(
        self,
        settings: Settings,
        model: ComposeModel,
        project: ComposeProject,
        *,
        override: Override,
        readiness: Readiness,
        progress: Reporter,
        on_unready: OnUnready,
    ) -> None:
        self.settings = settings
        self.model = model
        self.project = project
        self.override = override
        self.readiness = readiness
        self.progress = progress
        self.on_unready = on_unready

    def build(self, *, services: Sequence[str] = (), no_cache: bool = False) -> dict[str, str]:
        """Build the stack's images that are missing or changed (shared by all berths)."""
        from dockyard.engine.images import ensure_images, wanted_images  # noqa: PLC0415 - the builder (docker-py), when building

        specs = [s for s in self.model.build_specs() if not services or s.service in services]
        engine = self.project.berth.engine
        share_images(engine, wanted_images(specs, self.settings), image_sources(self.settings))
        return ensure_images(
            self.project.client,
            specs,
            self.settings,
            no_cache=no_cache,
            progress=self.progress,
            cli_env=engine.cli_env(),
        )

    def up(self, *, build: bool = True) -> None:
        """Start every service and wait until all are ready, or fail with the evidence.

        A partial start is torn down before the error propagates, unless keep_on_failure.
        """
        began = time.monotonic()
        berth = self.project.berth
        self.project.ensure_engine()
        berth.note_engine_id()
        if (note := publish_note(berth.engine)) is not None and note not in _SAID:
            _SAID.add(note)
            self.progress(note)
        coverage = self.override.coverage
        if coverage is not None:
            coverage.prepare()
        self.override.write()
        try:
            if build:
                self.build()
                if coverage is not None:
                    # Now that the images exist, PYTHONPATH can keep what a new one sets.
                    self.override.write()
            self.progress.stack_starting(self.project.name, sorted(self.model.services), berth.port_block)
            # Compose creates everything (networks, volumes, containers) in one call; dockyard
            # then starts the containers level by level of `depends_on`, looking at each
            # service's readiness at a fine interval. `up --wait` could only notice health at
            # the health-check interval, once per level.
            self.project.call("up", "--no-start", "--no-build", say=self.progress)
            attach_runner(self.project, self.settings.runner, self.progress)
            deadline = time.monotonic() + self.settings.health_timeout
            for level in self.model.start_levels():
                self.start_level(level)
                self.wait(level, timeout=max(0.0, deadline - time.monotonic()))
        except StackUnhealthy:
            raise
        except BaseException as exc:
            # Ctrl-C or an engine error half-way: clean up what was created, then re-raise.
            try:
                self.down()
            except TeardownIncomplete as left:
                exc.add_note(f"cleaning up the partial start: {left}")  # the start's error stays the one raised
            raise
        self.progress.stack_ready(self.project.name, time.monotonic() - began)

    def start_level(self, services: Sequence[str]) -> None:
        """Start the created containers of ``services`` through the engine API."""
        for service in services:
            self.progress.service_state(service, STARTING)
        problems = self.project.start_containers(services)
        if problems:
            for service, why in problems:
                self.progress.service_state(service, FAILED, f"could not start: {why}")
            reason = "; ".join(f"service {service!r} could not start: {why}" for service, why in problems)
            self.on_unready(Unready(reason, tuple(sorted({service for service, _ in problems}))))

    def wait(self, services: Sequence[str] = (), timeout: float | None = None) -> None:
        """Wait until ``services`` (default all) are ready; on failure, the evidence is raised."""
        if (unready := self.readiness.wait(services, timeout)) is not None:
            self.on_unready(unready)

    def down(self) -> None:
        """Remove containers, networks, volumes and orphans; then sweep anything of this lease left.

        What ``compose down -v --remove-orphans`` removes, through the engine API (see
        :mod:`dockyard.stack.teardown`), then everything labelled with the lease. Anything still
        there afterwards raises :class:`TeardownIncomplete` naming it, and the berth's record is kept
        for the next holder (or ``cleanup``) to reap. SIGINT/SIGTERM arriving meanwhile are held
        until the sweep is done, then delivered: the lease is released right after a teardown,
        so one cut short leaked the stack for good.
        """
        from requests.exceptions import ConnectionError as ConnectionLost  # noqa: PLC0415 - docker-py's transport

        with signals_deferred():
            detach_runner(self.project, self.settings.runner, self.progress)
            engine = self.project.berth.engine
            try:
                try:
                    left = self._remove_all(preflight(engine))
                except ConnectionLost:
                    forget_clients()  # the cached client's daemon went away: connecting anew says so
                    left = self._remove_all(preflight(engine))
            except DockerUnavailable:
                # The engine went away: what is left on it stays recorded, for the next holder
                # (or `cleanup`) to reap once it answers again.
                self.project.berth.keep_record = True
                raise
            if left:
                self.project.berth.keep_record = True
                raise TeardownIncomplete(
                    f"the teardown of {self.project.name} left {'; '.join(left)}",
                    remedy="run `dockyard cleanup` (it removes them by their labels) once the engine allows it",
                )
            self.override.remove()

    def _remove_all(self, client: DockerClient) -> list[str]:
        """Take the project down, then sweep the lease's labels; what is still there, as text."""
        lease = {"dockyard.lease": self.project.berth.record.lease_id}
        name = self.project.name
        coverage = self.override.coverage
        if coverage is not None:
            # Measured services first, and given time: their data is written as they stop.
            # A failed stop changes nothing below: the removal kills what still runs.
            measured = coverage.services
            teardown.stop(client, name, timeout=self.stop_timeout(measured), services=measured)
        problems = teardown.take_down(client, name, timeout=self.settings.stop_timeout)
        # Whatever the removal did: everything of this lease goes, by its label.
        problems += remove(client, find(client, **lease))
        if not problems:
            return []
        # Say only what is truly still there: the sweep may have removed what the first pass could not.
        return sorted({*teardown.remaining(client, name), *(f"{r.kind} {r.name}" for r in find(client, **lease))})

    def stop_timeout(self, services: Sequence[str] = ()) -> int:
        """Seconds ``services`` (default all) get to stop before they are killed."""
        coverage = self.override.coverage
        if coverage is not None and (not services or set(services) & set(coverage.services)):
            return max(self.settings.stop_timeout, STOP_TIMEOUT)
        return self.settings.stop_timeout


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block; deliver the first one that came once it ends."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers, and only it runs them
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: pending.append(signum)) for sig in DEFERRED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if pending:
            signal.raise_signal(pending[0])
