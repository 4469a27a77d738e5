"""A compose stack running in a berth: up to healthy, down to nothing, and what lies between."""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.engine.endpoints import forget_clients, preflight
from dockyard.engine.labels import detach_foreign, find, labels_for, remove
from dockyard.engine.location import runner, say_once
from dockyard.errors import ComposeError, DockerUnavailable, DockyardError, StackUnhealthy
from dockyard.pool.berth import Berth, pool_id
from dockyard.pool.leasing import image_sources, share_images
from dockyard.settings import Settings
from dockyard.stack.compose import ComposeModel, compose_command
from dockyard.stack.evidence import Redactor, health_output, log_tail, write_bundle
from dockyard.ui.progress import FAILED, HEALTHY, PROBING, STARTING, UNHEALTHY, WAITING, Reporter, as_reporter

if TYPE_CHECKING:
    from docker import DockerClient as SdkClient
    from python_on_whales import DockerClient
    from python_on_whales.exceptions import DockerException

_POLL = 0.1  # seconds between looks at the containers' state while waiting to a deadline
_EXEC_POLL = 0.01  # seconds between looks at a running health-check command (most take ~50 ms)
_DEFERRED = (signal.SIGINT, signal.SIGTERM)  # what may not cut a teardown short
Progress = Reporter | Callable[[str], None]  # a plain callable gets each event as a line


def _quiet(_: str) -> None:
    """The default progress sink: say nothing."""


@dataclass(frozen=True)
class ServiceState:
    """What one service's container is doing right now."""

    service: str
    container: str
    state: str  # running, exited, restarting, created, ...
    health: str  # healthy, unhealthy, starting, or "" without a health check
    exit_code: int | None

    @property
    def ready(self) -> bool:
        """Running and healthy (or running without a health check), or a one-shot that succeeded."""
        return (self.state == "running" and self.health in ("healthy", "")) or (
            self.state == "exited" and self.exit_code == 0
        )

    @property
    def failed(self) -> bool:
        """Unhealthy, or gone: exited with an error, or crash-looping."""
        return (
            self.health == "unhealthy"
            or self.state in ("restarting", "dead")
            or (self.state == "exited" and self.exit_code != 0)
        )


def _parse_status(row: dict[str, Any]) -> ServiceState:
    status = row.get("Status", "")
    health = next((h for h in ("unhealthy", "healthy") if f"({h})" in status), "")
    if "(health: starting)" in status:
        health = "starting"
    exit_code = None
    if row.get("State") == "exited" and "Exited (" in status:
        exit_code = int(status.split("Exited (", 1)[1].split(")", 1)[0])
    return ServiceState(
        service=row["Labels"].get("com.docker.compose.service", "?"),
        container=row["Names"][0].lstrip("/"),
        state=row.get("State", "?"),
        health=health,
        exit_code=exit_code,
    )


class Stack:
    """The user's compose stack in one berth.

    The compose files are used unchanged; a generated override file remaps published ports
    into the berth's block and labels everything. Construct it for a held berth, then
    :meth:`up` / :meth:`down`, or use it as a context manager.
    """

    def __init__(
        self, settings: Settings, berth: Berth, *, model: ComposeModel | None = None, progress: Progress = _quiet
    ) -> None:
        self.settings = settings
        self.berth = berth
        self.progress = as_reporter(progress)
        self.model = model or ComposeModel.load(settings)
        self.port_map = self.model.port_map(berth.port_block)
        berth.ports = {}
        for (service, target, _proto), host in self.port_map.items():
            berth.ports.setdefault(service, {})[target] = host
        self.labels = labels_for(
            berth.index,
            berth.project,
            berth.lock_path,
            berth.record.lease_id,
            berth.record.started,
            pool=pool_id(berth.lock_path.parent, create=True),
        )
        # Beside the berth's lock, so berths of two pools (two engines' scopes) never share one.
        self.override_path = berth.lock_path.with_suffix(".override.yml")
        # Container -> StartedAt of the run whose health check dockyard saw pass: until the
        # engine's own next check (one interval later) Docker still says "starting".
        self._passed: dict[str, str] = {}
        self._names: dict[str, str] = {}  # service -> container name, for addresses from a runner container

    @cached_property
    def redact(self) -> Redactor:
        """Masks the stack's secret values in logs, errors and bundles."""
        # Built at first need (a failure, `logs`): the secrets are in the complete configuration,
        # which the memo does not hold, and asking Compose for it costs ~150 ms.
        try:
            return Redactor(self.model.secrets())
        except DockyardError:
            # Compose cannot give the configuration now (its files broke under the running
            # stack, say). This runs in error paths: raising here would hide the error being
            # reported, and text shown unmasked might hold a secret, so it is withheld instead.
            return Redactor.withholding("`docker compose config` failed, so the secrets to mask are unknown")

    @cached_property
    def compose(self) -> DockerClient:
        """python-on-whales' client for this berth's compose project."""
        # Imported on first use: python-on-whales (pydantic models) costs ~120 ms of import,
        # which a process that only reads addresses or writes the override should not pay.
        from python_on_whales import DockerClient  # noqa: PLC0415

        engine = self.berth.engine
        return DockerClient(
            compose_files=[*self.settings.compose_files, self.override_path],
            compose_project_name=self.berth.project,
            compose_profiles=list(self.settings.profiles),
            # The berth's engine, whatever DOCKER_HOST says: by its context (and TLS) or endpoint.
            host=None if engine.context else engine.endpoint,
            context=engine.context,
        )

    # -- addresses ---------------------------------------------------------------------------

    @property
    def project(self) -> str:
        """The compose project name."""
        return self.berth.project

    def port(self, service: str, container_port: int) -> int:
        """Host port (on 127.0.0.1) of ``service``'s ``container_port``."""
        try:
            return self.berth.ports[service][container_port]
        except KeyError:
            published = ", ".join(f"{s}:{p}" for s, ports in sorted(self.berth.ports.items()) for p in ports)
            raise KeyError(
                f"{service}:{container_port} is not published; published: {published or 'nothing'}"
            ) from None

    def address(self, service: str, container_port: int) -> tuple[str, int]:
        """Where this process reaches ``service``'s published ``container_port``: (host, port).

        ``("127.0.0.1", <host port>)`` on the host; from a runner container attached to the
        stack's networks (see ``_where``), the service container's name and the container
        port. Every address dockyard hands out (URLs, DSNs) is made here.
        """
        host_port = self.port(service, container_port)  # unpublished ports are an error either way
        if not runner(self.settings.runner, self.berth.engine).attached:
            return "127.0.0.1", host_port
        # The container name, not the service name: a runner attached to two stacks' networks
        # (two berths at once) would get either stack's "postgres" for the bare service name.
        return self._container_name(service), container_port

    def _container_name(self, service: str) -> str:
        if service not in self._names:
            rows = preflight(self.berth.engine).api.containers(
                all=True,
                filters={
                    "label": [f"com.docker.compose.project={self.project}", f"com.docker.compose.service={service}"]
                },
            )
            names = sorted(
                r["Names"][0].lstrip("/") for r in rows if r["Labels"].get("com.docker.compose.oneoff") != "True"
            )
            if not names:
                return service  # not created yet: the network alias is the best guess, so not remembered
            self._names[service] = names[0]
        return self._names[service]

    def url(self, service: str, container_port: int, scheme: str = "http") -> str:
        """``scheme://<host>:<port>`` of a published port (see :meth:`address`)."""
        host, port = self.address(service, container_port)
        return f"{scheme}://{host}:{port}"

    def describe(self) -> dict[str, Any]:
        """Machine-readable berth info (what ``up --json`` prints).

        ``ports`` are the host ports; ``addresses`` are ``host:port`` as this process reaches them.
        """
        return {
            "index": self.berth.index,
            "project": self.project,
            "port_block": [self.berth.port_block.start, self.berth.port_block.stop - 1],
            "ports": {svc: {str(k): v for k, v in ports.items()} for svc, ports in self.berth.ports.items()},
            "addresses": {
                svc: {str(k): "{}:{}".format(*self.address(svc, k)) for k in ports}
                for svc, ports in self.berth.ports.items()
            },
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def write_override(self) -> Path:
        """Write this berth's override file (private, beside the lock)."""
        text = self.model.override(self.project, self.berth.port_block, self.labels)
        fd = os.open(self.override_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return self.override_path

    def build(self, *, services: Sequence[str] = (), no_cache: bool = False) -> dict[str, str]:
        """Build the stack's images that are missing or changed (shared by all berths)."""
        from dockyard.engine.images import ensure_images, wanted_images  # noqa: PLC0415 - the builder (docker-py), when building

        specs = [s for s in self.model.build_specs() if not services or s.service in services]
        client = preflight(self.berth.engine)
        share_images(self.berth.engine, wanted_images(specs, self.settings), image_sources(self.settings))
        return ensure_images(
            client, specs, self.settings, no_cache=no_cache, progress=self.progress, cli_env=self.berth.engine.cli_env()
        )

    def up(self, *, build: bool = True) -> None:
        """Start every service and wait until all are healthy, or fail with the evidence.

        A partial start is torn down before the error propagates, unless keep_on_failure.
        """
        began = time.monotonic()
        preflight(self.berth.engine)
        with _signals_deferred():
            # python-on-whales, imported where first used: a Ctrl-C cutting that import short
            # leaves half-made modules no later import can finish, and the teardown of a
            # partial start needs them. Here nothing is created yet, and the import completes.
            importlib.import_module("python_on_whales")
        self.berth.note_engine_id()
        self.write_override()
        try:
            if build:
                self.build()
            block = (self.berth.port_block.start, self.berth.port_block.stop - 1)
            self.progress.stack_starting(self.project, sorted(self.model.services), block)
            # Compose creates everything (networks, volumes, containers) in one call; dockyard
            # then starts the containers level by level of `depends_on`, probing each
            # service's own health check at a fine interval. `up --wait` could only notice
            # health at the health-check interval, once per level.
            self._run(
                "up --no-start", lambda: self.compose.compose.up(detach=True, no_build=True, quiet=True, start=False)
            )
            self._attach_runner()
            deadline = time.monotonic() + self.settings.health_timeout
            for level in self.model.start_levels():
                self._start(level)
                self.wait_healthy(level, timeout=max(0.0, deadline - time.monotonic()))
        except StackUnhealthy:
            raise
        except BaseException:
            # Ctrl-C or an engine error half-way: clean up what was created, then re-raise.
            self.down()
            raise
        self.progress.stack_ready(self.project, time.monotonic() - began)

    def _networks(self) -> list[str]:
        rows = preflight(self.berth.engine).api.networks(
            filters={"label": [f"com.docker.compose.project={self.project}"]}
        )
        return [n["Id"] for n in rows]

    def _attach_runner(self) -> None:
        """Connect the runner's container (when tests run in one) to every network of the stack."""
        from docker.errors import APIError  # noqa: PLC0415 - preflight() has imported docker-py

        place = runner(self.settings.runner, self.berth.engine)
        say_once(place, self.progress)
        if place.container is None:
            return
        api = preflight(self.berth.engine).api
        for network in self._networks():
            try:
                api.connect_container_to_network(place.container, network)
            except APIError as exc:
                if "already exists" in str(exc.explanation or exc):
                    continue  # attached already (a restarted `up` of the same project)
                raise DockyardError(
                    f"could not attach the runner's container to network {network[:12]} of {self.project}: "
                    f"{exc.explanation or exc}",
                    remedy="set DOCKYARD_RUNNER=host and publish the stack's ports to the runner another way",
                ) from None

    def _bundle_config(self) -> dict[str, Any]:
        """The effective configuration for a failure bundle; what is known of it if Compose fails now."""
        try:
            return self.model.config
        except DockyardError:
            return {"dockyard": "`docker compose config` failed while the bundle was written", **self.model.shape}

    def _start(self, services: Sequence[str]) -> None:
        """Start the created containers of ``services`` through the engine API."""
        from docker.errors import APIError  # noqa: PLC0415 - preflight() has imported docker-py

        api = preflight(self.berth.engine).api
        rows = api.containers(all=True, filters={"label": [f"com.docker.compose.project={self.project}"]})
        todo = {
            r["Id"]: r["Labels"].get("com.docker.compose.service", "?")
            for r in rows
            if r["Labels"].get("com.docker.compose.service") in services and r["State"] != "running"
        }

        def start(container_id: str) -> tuple[str, str] | None:
            try:
                api.start(container_id)
            except APIError as exc:
                return todo[container_id], str(exc.explanation or exc)
            return None

        for service in services:
            self.progress.service_state(service, STARTING)
        # The engine takes ~0.3-0.5 s per start (network attach, port proxies): start them together.
        with ThreadPoolExecutor(max_workers=max(1, len(todo))) as pool:
            problems = [p for p in pool.map(start, todo) if p]
        if problems:
            for service, why in problems:
                self.progress.service_state(service, FAILED, f"could not start: {why}")
            reason = "; ".join(f"service {service!r} could not start: {why}" for service, why in problems)
            self._fail(reason, sorted({service for service, _ in problems}))

    def wait_healthy(self, services: Sequence[str] = (), timeout: float | None = None) -> None:
        """Poll to a deadline until ``services`` (default all) are ready; fail on the first failure.

        A service is ready when Docker says healthy, or as soon as its own health-check
        command passes when dockyard runs it (probing at most every ~0.1 s, and never
        more than half the time, so a heavy check does not starve the service it checks).
        """
        wanted = set(services or self.model.services)
        deadline = time.monotonic() + (self.settings.health_timeout if timeout is None else timeout)
        probed: set[str] = set()
        next_probe: dict[str, float] = {}
        inspected: dict[str, dict[str, Any]] = {}  # a running container's check and address do not change
        while True:
            # The engine's view alone (one call a look): `probed` already says what passed here.
            states = {s.service: s for s in self._engine_states() if s.service in wanted}
            for name in sorted(wanted):
                self._report(name, states.get(name), name in probed)
            failed = sorted(name for name, s in states.items() if s.failed)
            if failed:
                self._fail(", ".join(f"service {n!r} {self._why(states[n])}" for n in failed), failed)
            pending = sorted(n for n in wanted if n not in probed and (n not in states or not states[n].ready))
            for name in pending:
                state = states.get(name)
                now = time.monotonic()
                if state and state.state == "running" and state.health == "starting" and now >= next_probe.get(name, 0):
                    passed = self._probe(state.container, inspected)
                    took = time.monotonic() - now
                    next_probe[name] = time.monotonic() + max(_POLL, took)
                    if passed:
                        probed.add(name)
                        self._passed[state.container] = inspected[state.container]["State"]["StartedAt"]
                        self.progress.service_state(name, HEALTHY)
            pending = [n for n in pending if n not in probed]
            if not pending:
                return
            if time.monotonic() > deadline:
                for name in pending:
                    self.progress.service_state(name, UNHEALTHY, f"not healthy after {self.settings.health_timeout:g}s")
                self._fail(
                    f"service(s) {', '.join(map(repr, pending))} not healthy after "
                    f"{self.settings.health_timeout:g}s (health_timeout)",
                    pending,
                )
            time.sleep(_POLL)

    def _probe(self, container: str, inspected: dict[str, dict[str, Any]]) -> bool:
        """Run the container's own health-check command once; whether it passed.

        A service whose published TCP ports do not accept connections yet cannot be healthy;
        that costs a connect() to find out, so the (maybe heavy) health-check command only
        runs once the ports listen.
        """
        from docker.errors import APIError  # noqa: PLC0415 - preflight() has imported docker-py

        api = preflight(self.berth.engine).api
        if container not in inspected:
            inspected[container] = api.inspect_container(container)
        info = inspected[container]
        test = ((info.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
        if not test or test[0] == "NONE":
            return False
        if not _listening(info):
            return False
        command = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
        # The check's own timeout (Docker's default 30 s), as the engine would apply it.
        limit = (((info.get("Config") or {}).get("Healthcheck") or {}).get("Timeout") or 30e9) / 1e9
        try:
            exec_id = api.exec_create(container, command, stdout=False, stderr=False)["Id"]
            # With no stream attached the engine answers at once, while the check still runs:
            # its exit code is there only once exec_inspect says it is no longer running.
            api.exec_start(exec_id, detach=True)
            deadline = time.monotonic() + limit
            while (result := api.exec_inspect(exec_id)).get("Running"):
                if time.monotonic() > deadline:
                    return False  # a check that hangs has failed, as it would for the engine
                time.sleep(_EXEC_POLL)
            return bool(result.get("ExitCode") == 0)
        except APIError:
            return False  # the container is stopping or gone: the next look at its state says why

    def _report(self, service: str, state: ServiceState | None, probed: bool) -> None:
        """Tell the reporter what ``service`` is doing (it hears only the changes)."""
        if probed or (state is not None and state.ready):
            self.progress.service_state(service, HEALTHY)
        elif state is None or state.state == "created":
            self.progress.service_state(service, WAITING)
        elif state.failed:
            self.progress.service_state(service, UNHEALTHY if state.health == "unhealthy" else FAILED, self._why(state))
        elif state.state == "running" and state.health == "starting":
            self.progress.service_state(service, PROBING)

    def _why(self, state: ServiceState) -> str:
        if state.health == "unhealthy":
            return "is unhealthy"
        if state.health == "starting":
            return f"did not become healthy within {self.settings.health_timeout:g}s (health_timeout)"
        if state.state == "exited":
            return f"exited with code {state.exit_code} during start"
        return f"is {state.state}"

    def _fail(self, reason: str, services: Sequence[str] = ()) -> None:
        """Collect the evidence, write the bundle, tear down (unless kept), raise."""
        client = preflight(self.berth.engine)
        containers = self._containers(client)
        if not services:
            services = sorted(
                {
                    c.labels.get("com.docker.compose.service", c.name)
                    for c in containers
                    if not _parse_status_container(c).ready
                }
            ) or sorted(self.model.services)
        parts = [f"stack {self.project} did not become healthy: {reason}"]
        for c in containers:
            service = c.labels.get("com.docker.compose.service", c.name)
            if service not in services:
                continue
            if health := health_output(c):
                parts.append(f"--- {service}: health check ---\n{health}")
            parts.append(f"--- {service}: last log lines ---\n{log_tail(c).rstrip()}")
        bundle = write_bundle(
            self.settings.artifacts_dir,
            project=self.project,
            reason=parts[0],
            containers=containers,
            config=self._bundle_config(),
            redact=self.redact,
        )
        if self.settings.keep_on_failure:
            parts.append(
                f"keep_on_failure: {self.project} is left running; ports: {json.dumps(self.describe()['ports'])}"
                # `down` only knows berths kept by `dockyard up`; once this session ends
                # and its berth is free, the stack is an orphan that `cleanup` removes.
                "; take it down with `dockyard cleanup` once this session has ended"
            )
        else:
            self.down()
        raise StackUnhealthy(self.redact("\n".join(parts)), services=services, bundle=str(bundle))

    def _containers(self, client: SdkClient) -> list[Any]:
        return list(client.containers.list(all=True, filters={"label": f"com.docker.compose.project={self.project}"}))

    def _engine_states(self) -> list[ServiceState]:
        """What Docker says of every container of the project (one engine call)."""
        rows = preflight(self.berth.engine).api.containers(
            all=True, filters={"label": [f"com.docker.compose.project={self.project}"]}
        )
        return [_parse_status(r) for r in rows if r["Labels"].get("com.docker.compose.oneoff") != "True"]

    def ps(self) -> list[ServiceState]:
        """The state of every container of the project.

        A container whose health check dockyard saw pass counts as healthy while Docker still
        says "starting" (until the engine's own first check), as long as it is the same run:
        one more engine call for each such container.
        """
        from docker.errors import NotFound  # noqa: PLC0415 - preflight() has imported docker-py

        api = preflight(self.berth.engine).api
        states = self._engine_states()
        for i, state in enumerate(states):
            if state.health == "starting" and state.container in self._passed:
                try:
                    started = api.inspect_container(state.container)["State"]["StartedAt"]
                except NotFound:
                    continue
                if started == self._passed[state.container]:
                    states[i] = replace(state, health="healthy")
        return sorted(states, key=lambda s: s.service)

    def down(self) -> None:
        """Remove containers, networks, volumes and orphans; then sweep anything of this lease left.

        SIGINT/SIGTERM arriving meanwhile are held until the sweep is done, then delivered: the
        lease is released right after a teardown, so one cut short leaked the stack for good.
        """
        from docker.errors import APIError  # noqa: PLC0415 - preflight() has imported docker-py
        from python_on_whales.exceptions import DockerException  # noqa: PLC0415 - see `compose`

        with _signals_deferred():
            try:
                # The runner container this process attached would make `compose down` fail on
                # the networks. Any other stranger there is detached by the label sweep below.
                if runner(self.settings.runner, self.berth.engine).attached:
                    client = preflight(self.berth.engine)
                    for network in self._networks():
                        detach_foreign(client, network, self.berth.record.lease_id)
            except (APIError, DockyardError) as exc:
                self.progress(f"could not detach the runner's container from {self.project}'s networks: {exc}")
            try:
                self.compose.compose.down(
                    remove_orphans=True, volumes=True, timeout=self.settings.stop_timeout, quiet=True
                )
            except DockerException as exc:
                self.progress(f"compose down of {self.project} failed ({self._stderr_tail(exc)}); removing by label")
            finally:
                # Whatever compose did or raised: everything of this lease goes, by its label.
                try:
                    self._sweep()
                except DockerUnavailable:
                    # The engine went away: what is left on it stays recorded, for the next holder
                    # (or `cleanup`) to reap once it answers again.
                    self.berth.keep_record = True
                    raise
                self.override_path.unlink(missing_ok=True)

    def _sweep(self) -> None:
        """Remove everything labelled with this lease; :class:`DockerUnavailable` if the engine is gone."""
        from requests.exceptions import ConnectionError as ConnectionLost  # noqa: PLC0415 - docker-py's transport

        lease = {"dockyard.lease": self.berth.record.lease_id}
        client = preflight(self.berth.engine)
        try:
            remove(client, find(client, **lease))
        except ConnectionLost:
            forget_clients()  # the cached client's daemon went away: connecting anew says so
            client = preflight(self.berth.engine)
            remove(client, find(client, **lease))

    def stop(self, *services: str) -> None:
        """Stop ``services`` (they keep their state)."""
        self._run("stop", lambda: self.compose.compose.stop(list(services), timeout=self.settings.stop_timeout))

    def start(self, *services: str) -> None:
        """Start stopped ``services`` and wait until they are healthy."""
        self._run("start", lambda: self.compose.compose.start(list(services)))
        self.wait_healthy(services)

    def restart(self, *services: str) -> None:
        """Restart ``services`` (default all) and wait until they are healthy."""
        self._run(
            "restart", lambda: self.compose.compose.restart(list(services) or None, timeout=self.settings.stop_timeout)
        )
        self.wait_healthy(services)

    def refresh(self, *services: str) -> None:
        """Rebuild and recreate ``services`` (the inner dev loop), then wait until healthy."""
        self.build(services=services)
        self._run(
            "refresh",
            lambda: self.compose.compose.up(
                list(services) or None, detach=True, no_build=True, force_recreate=True, dependencies=False, quiet=True
            ),
        )
        self.wait_healthy(services)

    def logs(
        self, services: Sequence[str] = (), *, follow: bool = False, tail: str | None = None, since: str | None = None
    ) -> Iterator[str]:
        """Log lines of ``services`` (default all), secrets masked."""
        cmd = [*compose_command(self.settings, self.project, [self.override_path]), "logs", "--no-color"]
        if follow:
            cmd.append("--follow")
        if tail:
            cmd += ["--tail", tail]
        if since:
            cmd += ["--since", since]
        # Our own process rather than python-on-whales' stream: a reader that stops early
        # must not leave `docker compose logs` running behind it.
        with subprocess.Popen(
            [*cmd, *services],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.berth.engine.cli_env(),
        ) as proc:
            try:
                for line in proc.stdout or ():
                    yield self.redact(line.decode("utf-8", "replace"))
            finally:
                proc.terminate()

    def exec(self, service: str, command: Sequence[str], *, tty: bool = False) -> int:
        """Run ``command`` in ``service``'s container; its exit code."""
        cmd = [*compose_command(self.settings, self.project, [self.override_path]), "exec"]
        if not tty:
            cmd.append("-T")
        return subprocess.call([*cmd, service, *command], cwd=self.settings.root, env=self.berth.engine.cli_env())

    def _run(self, action: str, call: Callable[[], object]) -> None:
        from python_on_whales.exceptions import DockerException  # noqa: PLC0415 - see `compose`

        try:
            call()
        except DockerException as exc:
            raise ComposeError(
                f"compose {action}", map(str, exc.docker_command), exc.return_code, self.redact(exc.stderr or "")
            ) from None

    def _stderr_tail(self, exc: DockerException) -> str:
        return self.redact("\n".join((exc.stderr or str(exc)).strip().splitlines()[-5:]))

    def __enter__(self) -> Stack:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block; deliver the first one that came once it ends."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers, and only it runs them
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: pending.append(signum)) for sig in _DEFERRED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if pending:
            signal.raise_signal(pending[0])


def _listening(info: dict[str, Any]) -> bool:
    """Whether every published TCP port of the container accepts connections on its own address.

    True when that cannot be told from here (no address reachable, e.g. a remote engine).
    """
    settings = info.get("NetworkSettings") or {}
    addresses = [n.get("IPAddress") for n in (settings.get("Networks") or {}).values() if n.get("IPAddress")]
    ports = [int(p.split("/")[0]) for p, bound in (settings.get("Ports") or {}).items() if p.endswith("/tcp") and bound]
    if not addresses or not ports:
        return True
    for port in ports:
        try:
            with socket.create_connection((addresses[0], port), timeout=0.2):
                pass
        except ConnectionRefusedError:
            return False
        except OSError:
            return True  # unreachable from here: let the health check decide
    return True


def _parse_status_container(container: Any) -> ServiceState:
    state = container.attrs.get("State") or {}
    return ServiceState(
        service=container.labels.get("com.docker.compose.service", container.name),
        container=container.name,
        state=state.get("Status", "?"),
        health=(state.get("Health") or {}).get("Status", "").replace("none", ""),
        exit_code=state.get("ExitCode"),
    )
