"""The berth's compose project as the stack's roles reach it: one door to Compose and the engine.

Three channels, each for what only it does well:

- python-on-whales (:attr:`ComposeProject.compose`) for Compose's own verbs on a running stack
  (``stop``, ``restart``, a refresh's ``up``): the engine users run, not a re-implementation;
- the ``docker compose`` CLI as a child process (:meth:`ComposeProject.command`,
  :meth:`ComposeProject.call`) for the creation of a start (``up --no-start``) and for streams
  (``logs --follow``, ``exec``), which a reader that stops early must be able to end;
- the engine API (:attr:`ComposeProject.api`) for the fine-grained looks of a start (container
  states many times a second, starting one level of ``depends_on``, running a check) and for
  the teardown (:mod:`dockyard.stack.teardown`).
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.engine.endpoints import handshake, is_podman, preflight
from dockyard.errors import ComposeError
from dockyard.host import die_with_parent
from dockyard.pool.berth import Berth
from dockyard.settings import Settings
from dockyard.stack.compose import compose_command
from dockyard.stack.services import PROJECT_LABEL, SERVICE_LABEL, ServiceState, engine_states

if TYPE_CHECKING:
    from docker import APIClient
    from docker import DockerClient as SdkClient
    from python_on_whales import DockerClient
    from python_on_whales.exceptions import DockerException

FINISH_WAIT = 30.0  # seconds an interrupted start gives Compose to end its call
FINISH_NOTICE = 0.5  # a wait for Compose longer than this is said, with how to cut it short


def _silent(_message: str) -> None:
    """Says nothing."""


class ComposeProject:
    """One compose project (the berth's) with the user's files and the berth's override file."""

    def __init__(
        self, settings: Settings, berth: Berth, override_path: Path, redact: Callable[[str], str] = str
    ) -> None:
        self.settings = settings
        self.berth = berth
        self.override_path = override_path
        self.redact = redact

    @property
    def name(self) -> str:
        """The compose project name."""
        return self.berth.project

    @property
    def client(self) -> SdkClient:
        """docker-py's client of the berth's engine (checked to answer, once per process)."""
        return preflight(self.berth.engine)

    def ensure_engine(self) -> None:
        """Check that the engine answers and Compose v2 is there (DockerUnavailable says how to fix it when not)."""
        handshake(self.berth.engine)

    @property
    def api(self) -> APIClient:
        """The engine's low-level API, for many small calls."""
        return self.client.api

    @cached_property
    def compose(self) -> DockerClient:
        """python-on-whales' client for this berth's compose project."""
        # Imported on first use: python-on-whales (pydantic models) costs ~120 ms of import,
        # which a process that only reads addresses or writes the override should not pay.
        from python_on_whales import DockerClient  # noqa: PLC0415

        engine = self.berth.engine
        return DockerClient(
            compose_files=[*self.settings.compose_files, self.override_path],
            compose_project_name=self.name,
            compose_profiles=list(self.settings.profiles),
            # The berth's engine, whatever DOCKER_HOST says: by its context (and TLS) or endpoint.
            host=None if engine.context else engine.endpoint,
            context=engine.context,
        )

    def run(self, action: str, call: Callable[[], object]) -> None:
        """Run one python-on-whales call; a failure becomes a :class:`ComposeError`, masked."""
        from python_on_whales.exceptions import DockerException  # noqa: PLC0415 - see `compose`

        try:
            call()
        except DockerException as exc:
            raise ComposeError(
                f"compose {action}", map(str, exc.docker_command), exc.return_code, self.redact(exc.stderr or "")
            ) from None

    def call(self, verb: str, *args: str, say: Callable[[str], None] = _silent) -> None:
        """Run ``docker compose <verb> <args>`` for this project to its end; a failure is a :class:`ComposeError`.

        A child process of its own, for the verbs of a start: python-on-whales' import
        (~0.25 CPU-s of pydantic models) buys nothing a command line does not say.

        Compose runs in a process group of its own, so a Ctrl-C or a group's SIGTERM reaches
        dockyard alone, and an interrupted start lets Compose end the call it is making (at
        most :data:`FINISH_WAIT` seconds; a second signal stops it at once) before the
        interruption goes on to the teardown. A Compose cut short leaves the engine finishing
        a create it had asked for, which can land after the teardown has looked. If dockyard
        dies, Compose is killed with it, and the watchdog reaps. A wait longer than
        :data:`FINISH_NOTICE` is told through ``say``.
        """
        cmd = self.command(verb, *args)
        with subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.settings.root,
            env=self.cli_env(),
            process_group=0,
            preexec_fn=die_with_parent(signal.SIGKILL),  # noqa: PLW1509 - the child runs only prctl, resolved beforehand
        ) as child:
            try:
                out, err = child.communicate()
            except BaseException:
                _let_finish(child, say)
                raise
        if child.returncode != 0:
            raise ComposeError(f"compose {verb}", cmd, child.returncode, self.redact(err or out))

    def stderr_tail(self, exc: DockerException) -> str:
        """The last lines Compose wrote to stderr, masked."""
        return self.redact("\n".join((exc.stderr or str(exc)).strip().splitlines()[-5:]))

    def command(self, verb: str, *args: str) -> list[str]:
        """``docker compose ... <verb> <args>`` for this project, to run as a child process."""
        return [*compose_command(self.settings, self.name, [self.override_path]), verb, *args]

    def cli_env(self) -> dict[str, str]:
        """The environment a ``docker`` child process needs to reach the berth's engine."""
        return self.berth.engine.cli_env()

    def states(self) -> list[ServiceState]:
        """What Docker says of every container of the project (one engine call)."""
        return engine_states(self.api, self.name)

    def networks(self) -> list[str]:
        """IDs of the project's networks."""
        return [n["Id"] for n in self.api.networks(filters={"label": [f"{PROJECT_LABEL}={self.name}"]})]

    def containers(self) -> list[Any]:
        """docker-py's objects of every container of the project (for the evidence of a failure)."""
        return list(self.client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={self.name}"}))

    def start_containers(self, services: Sequence[str]) -> list[tuple[str, str]]:
        """Start the created containers of ``services`` together; (service, why) of each that could not."""
        from docker.errors import APIError  # noqa: PLC0415 - the `api` property has imported docker-py

        api = self.api
        rows = api.containers(all=True, filters={"label": [f"{PROJECT_LABEL}={self.name}"]})
        todo: dict[str, str] = {
            r["Id"]: r["Labels"][SERVICE_LABEL]
            for r in rows
            if (r.get("Labels") or {}).get(SERVICE_LABEL) in services and r["State"] != "running"
        }

        def start(container_id: str) -> tuple[str, str] | None:
            try:
                api.start(container_id)
            except APIError as exc:
                return todo[container_id], str(exc.explanation or exc)
            return None

        # The engine takes ~0.3-0.5 s per start (network attach, port proxies): start them together.
        # Not on Podman: two first starts on one network race to create its firewall chains, and
        # one fails with "netavark: ... iptables: Chain already exists" (containers/podman#13767).
        together = 1 if is_podman(api) else max(1, len(todo))
        with ThreadPoolExecutor(max_workers=together) as pool:
            return [p for p in pool.map(start, todo) if p]


def _let_finish(child: subprocess.Popen[str], say: Callable[[str], None]) -> None:
    """Wait for an interrupted ``child`` to end on its own; kill it after :data:`FINISH_WAIT` or a second signal."""
    try:
        try:
            child.communicate(timeout=FINISH_NOTICE)
        except subprocess.TimeoutExpired:
            say(
                f"interrupted: letting Compose end the call it is making (at most {FINISH_WAIT:g}s), "
                "then taking the stack down; interrupt again to stop Compose now"
            )
            child.communicate(timeout=FINISH_WAIT - FINISH_NOTICE)
    except subprocess.TimeoutExpired:
        child.kill()
    except BaseException:
        child.kill()  # interrupted twice: the user will not wait
        raise
