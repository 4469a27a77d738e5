"""`validate`: a checklist of everything a session needs, each line with a remedy when it fails."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dockyard.dirs import ensure_lock_dir
from dockyard.engine.compose_cli import compose_version
from dockyard.engine.endpoints import Engine, engines_of, is_podman, sdk
from dockyard.engine.labels import MANAGED
from dockyard.errors import DockyardError, ExitCode
from dockyard.pool.berth import BerthPool, State
from dockyard.sessions.api import running_stack
from dockyard.settings import Settings
from dockyard.stack.compose import ComposeModel
from dockyard.stack.waits import choice as waits


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    name: str
    ok: bool
    detail: str
    remedy: str = ""
    exit_code: ExitCode = ExitCode.FAILURE


def _run(name: str, check: Callable[[], str]) -> Check:
    try:
        return Check(name, True, check())
    except DockyardError as exc:
        return Check(name, False, exc.message, exc.remedy or "", exc.exit_code)


def checklist(settings: Settings, *, quick: bool) -> Iterator[Check]:
    """Run the checks in order; later checks are skipped once Docker itself is unusable."""
    docker_ok = _run("docker", _docker)
    yield docker_ok
    for engine in engines_of(settings.engines) if settings.engines else ():
        yield _run(f"engine {engine}", functools.partial(_engine_check, engine))
    compose_ok = _run("compose", lambda: "Compose v" + ".".join(map(str, compose_version())))
    yield compose_ok
    if not (docker_ok.ok and compose_ok.ok):
        return
    models: list[ComposeModel] = []

    def config() -> str:
        models.append(ComposeModel.load(settings))
        return f"{len(models[0].services)} services in {', '.join(p.name for p in settings.compose_files)}"

    yield (cfg := _run("compose config", config))
    if cfg.ok:
        model = models[0]
        findings = model.findings()
        yield Check(
            "parallel safety",
            not findings,
            "no container_name, fixed subnet, external or shared resources"
            if not findings
            else "\n".join(map(str, findings)),
            "change the lines named above; dockyard never edits your compose files",
            ExitCode.BAD_CONFIGURATION,
        )
        yield _run("readiness", functools.partial(_readiness, model, settings))
        yield _run(
            "port block",
            lambda: f"{len(model.port_map(settings.port_block(0)))} published ports fit in {settings.block_size}",
        )
    yield _run("lock directory", lambda: f"{ensure_lock_dir(settings.lock_dir)} is private")

    def berths() -> str:
        states = [s.state for s in BerthPool(settings).statuses()]
        free = sum(s in (State.FREE, State.STALE) for s in states)
        if not free:
            raise DockyardError(
                f"all {len(states)} berths are live or blocked",
                remedy="see `dockyard status`; `dockyard cleanup` clears stale ones",
            )
        return f"{free} of {len(states)} berths free"

    yield _run("free berths", berths)
    yield _run("network pool", _network_pool)
    if not quick and cfg.ok:

        def smoke() -> str:
            with running_stack(settings) as stack:
                services = len(stack.ps())
            return f"up and down in a spare berth ({services} services healthy)"

        yield _run("smoke", smoke)


def _readiness(model: ComposeModel, settings: Settings) -> str:
    """A warning (not a failure) for each service whose readiness dockyard can only guess at."""
    unwaited = [f"warning: {finding}" for finding in waits.unwaited(model, settings)]
    return "\n".join(unwaited) if unwaited else "every service publishing ports has a health check or wait strategy"


def _docker() -> str:
    """The current engine: reachable, and whether it is Podman (which dockyard meets halfway)."""
    client = sdk()
    version = client.version().get("Version", "?")
    if is_podman(client.api):
        return (
            f"Podman {version} reachable through its Docker API: dockyard runs each health check itself, as the"
            " compose files wrote it (Podman runs its own only under systemd, and its Docker API splits a CMD"
            " check's arguments at spaces: containers/podman#26519)"
        )
    return f"engine {version} reachable"


def _engine_check(engine: Engine) -> str:
    """One engine of the ``engines`` setting: reachable, and where its ports are bound."""
    where = "this host's ports" if engine.local else f"the ports of {engine.scope}"
    return f"Docker {sdk(engine).version().get('Version', '?')} reachable; publishes on {where}"


def _network_pool() -> str:
    """Create (and remove) a bridge network: proof that an address pool has room."""
    import docker.errors  # noqa: PLC0415 - docker-py (~45 ms) only where the engine is called; sdk() loads it

    client = sdk()
    try:
        net = client.networks.create(
            f"dockyard-validate-{uuid.uuid4().hex[:8]}", labels={MANAGED: "true", "dockyard.validate": "true"}
        )
    except docker.errors.APIError as exc:
        raise DockyardError(
            f"Docker cannot create another network ({exc.explanation or exc})",
            remedy="remove unused networks (`docker network prune`) or widen default-address-pools in daemon.json",
        ) from None
    net.remove()
    return "a new bridge network can be created"
