"""A compose stack running in a berth: the facade over its roles.

Each role is a module of its own: :mod:`~dockyard.stack.addresses` (ports, URLs, ``--json``),
:mod:`~dockyard.stack.override` (the override file), :mod:`~dockyard.stack.lifecycle` (up and
down), :mod:`~dockyard.stack.readiness` (waiting by strategy), :mod:`~dockyard.stack.evidence`
(the error and bundle of a failed start), :mod:`~dockyard.stack.control` (single services) and
:mod:`~dockyard.stack.coverage` (services run under coverage.py),
all talking to Compose through :mod:`~dockyard.stack.project`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from dockyard.pool.berth import Berth
from dockyard.settings import Settings
from dockyard.stack.addresses import Addresses
from dockyard.stack.compose import ComposeModel
from dockyard.stack.control import Control
from dockyard.stack.coverage import ServiceCoverage
from dockyard.stack.evidence import Evidence
from dockyard.stack.lifecycle import Lifecycle
from dockyard.stack.masking import StackRedactor
from dockyard.stack.override import Override
from dockyard.stack.project import ComposeProject
from dockyard.stack.readiness import Readiness, Unready
from dockyard.stack.services import ServiceState
from dockyard.stack.waits.choice import Chooser
from dockyard.stack.waits.protocol import WaitStrategy
from dockyard.ui.progress import SILENT, Reporter, as_reporter

if TYPE_CHECKING:
    from python_on_whales import DockerClient

__all__ = ["ServiceState", "Stack"]


class Stack:
    """The user's compose stack in one berth.

    The compose files are used unchanged; a generated override file remaps published ports
    into the berth's block and labels everything. Construct it for a held berth, then
    :meth:`up` / :meth:`down`, or use it as a context manager.
    """

    def __init__(
        self,
        settings: Settings,
        berth: Berth,
        *,
        model: ComposeModel | None = None,
        progress: Reporter | Callable[[str], None] = SILENT,
        coverage: bool = False,
    ) -> None:
        """``coverage``: run the measured services under coverage.py (see :mod:`~dockyard.stack.coverage`)."""
        self.settings = settings
        self.berth = berth
        self.progress = as_reporter(progress)
        self.model = model or ComposeModel.load(settings)
        self.redact = StackRedactor(self.model)
        self.coverage = ServiceCoverage(settings, self.model, berth) if coverage else None
        self.override = Override(self.model, berth, coverage=self.coverage)
        self.compose_project = ComposeProject(settings, berth, self.override.path, self.redact)
        self.addresses = Addresses(settings, berth, self.model, self.compose_project)
        self.readiness = Readiness(
            self.compose_project,
            lambda: list(self.model.services),
            settings.health_timeout,
            self.progress,
            chooser=self._choose,
        )
        self.evidence = Evidence(settings, self.compose_project, self.model)
        self.lifecycle = Lifecycle(
            settings,
            self.model,
            self.compose_project,
            override=self.override,
            readiness=self.readiness,
            progress=self.progress,
            on_unready=self._fail,
        )
        self.control = Control(settings, self.compose_project, self.lifecycle)

    @cached_property
    def chooser(self) -> Chooser:
        """Which wait strategy each service gets (the configured ``wait`` specs, checked)."""
        return Chooser.of(self.model, self.settings)

    def _choose(self, service: str, info: dict[str, Any]) -> WaitStrategy:
        return self.chooser(service, info)

    def _fail(self, unready: Unready) -> NoReturn:
        self.evidence.fail(unready.reason, unready.services, teardown=self.down, ports=self.describe()["ports"])

    # -- what it is and where --------------------------------------------------------------

    @property
    def project(self) -> str:
        """The compose project name."""
        return self.berth.project

    @property
    def labels(self) -> dict[str, str]:
        """The ``dockyard.*`` labels of everything this stack creates."""
        return self.override.labels

    @property
    def override_path(self) -> Path:
        """Where the berth's override file lives."""
        return self.override.path

    @property
    def port_map(self) -> dict[tuple[str, int, str], int]:
        """Host port of each published (service, container port, protocol)."""
        return self.addresses.port_map

    @property
    def compose(self) -> DockerClient:
        """python-on-whales' client for this berth's compose project."""
        return self.compose_project.compose

    def port(self, service: str, container_port: int) -> int:
        """Host port (on 127.0.0.1) of ``service``'s ``container_port``."""
        return self.addresses.port(service, container_port)

    def address(self, service: str, container_port: int) -> tuple[str, int]:
        """Where this process reaches ``service``'s published ``container_port``: (host, port)."""
        return self.addresses.address(service, container_port)

    def url(self, service: str, container_port: int, scheme: str = "http") -> str:
        """``scheme://<host>:<port>`` of a published port (see :meth:`address`)."""
        return self.addresses.url(service, container_port, scheme)

    def describe(self) -> dict[str, Any]:
        """Machine-readable berth info (what ``up --json`` prints)."""
        return self.addresses.describe()

    # -- up and down -----------------------------------------------------------------------

    def write_override(self) -> Path:
        """Write this berth's override file (private, beside the lock)."""
        return self.override.write()

    def build(self, *, services: Sequence[str] = (), no_cache: bool = False) -> dict[str, str]:
        """Build the stack's images that are missing or changed (shared by all berths)."""
        return self.lifecycle.build(services=services, no_cache=no_cache)

    def up(self, *, build: bool = True) -> None:
        """Start every service and wait until all are ready, or fail with the evidence."""
        self.chooser  # noqa: B018 - a bad `wait` spec fails here, before anything is started
        self.lifecycle.up(build=build)

    def down(self) -> None:
        """Remove containers, networks, volumes and orphans; then sweep anything of this lease left."""
        self.lifecycle.down()

    def wait_healthy(self, services: Sequence[str] = (), timeout: float | None = None) -> None:
        """Wait until ``services`` (default all) are ready, or fail with the evidence."""
        self.lifecycle.wait(services, timeout)

    def ps(self) -> list[ServiceState]:
        """The state of every container of the project."""
        return self.readiness.ps()

    # -- single services -------------------------------------------------------------------

    def stop(self, *services: str) -> None:
        """Stop ``services`` (they keep their state)."""
        self.control.stop(*services)

    def start(self, *services: str) -> None:
        """Start stopped ``services`` and wait until they are ready."""
        self.control.start(*services)

    def restart(self, *services: str) -> None:
        """Restart ``services`` (default all) and wait until they are ready."""
        self.control.restart(*services)

    def refresh(self, *services: str) -> None:
        """Rebuild and recreate ``services`` (the inner dev loop), then wait until they are ready."""
        self.control.refresh(*services)

    def logs(
        self, services: Sequence[str] = (), *, follow: bool = False, tail: str | None = None, since: str | None = None
    ) -> Iterator[str]:
        """Log lines of ``services`` (default all), secrets masked."""
        return self.control.logs(services, follow=follow, tail=tail, since=since)

    def exec(self, service: str, command: Sequence[str], *, tty: bool = False) -> int:
        """Run ``command`` in ``service``'s container; its exit code."""
        return self.control.exec(service, command, tty=tty)

    def __enter__(self) -> Stack:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()
