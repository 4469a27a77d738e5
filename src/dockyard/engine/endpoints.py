"""Preflight and engine identity: which Docker engine(s) we talk to, and one client per engine.

An engine is named by its endpoint (``unix:///var/run/docker.sock``, ``tcp://host:2376``,
``ssh://user@host``). The current one comes from ``DOCKER_HOST``, else the current Docker
context, else the default socket: the order the docker CLI itself uses, so python-on-whales
(which runs the CLI) and the SDK client here always talk to the same engine.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dockyard.engine import socket_api
from dockyard.engine.compose_cli import compose_version
from dockyard.errors import DockerUnavailable
from dockyard.host import own_addresses

if TYPE_CHECKING:
    from docker import APIClient
    from docker import DockerClient as SdkClient

DEFAULT_ENDPOINT = "unix:///var/run/docker.sock"
LOCAL = "local"  # the port scope of every engine that publishes on this machine's own ports


@dataclass(frozen=True)
class Engine:
    """One Docker engine: its endpoint, and the Docker context it was found through (if any)."""

    endpoint: str
    context: str | None = None  # a context name: its TLS material is the context's, not ours

    @property
    def scope(self) -> str:
        """Where this engine publishes ports: :data:`LOCAL`, or the remote host's name.

        Ports are bound on the machine the engine runs on. Every engine behind a unix socket
        (or a TCP/SSH address of this machine) runs here and publishes on this host's
        127.0.0.1, so they all share one port pool; a remote engine's ports are its host's own,
        so each remote host gets a pool of its own (two engines on one remote host share it).
        """
        parts = urlsplit(self.endpoint)
        if parts.scheme in ("unix", "npipe", "fd", ""):
            return LOCAL
        host = (parts.hostname or "").lower()
        if host in ("localhost", socket.gethostname().lower(), socket.getfqdn().lower()):
            return LOCAL
        try:
            if ipaddress.ip_address(host).is_loopback:
                return LOCAL
        except ValueError:
            pass  # a host name, not an address
        return host or self.endpoint

    @property
    def local(self) -> bool:
        """Whether its published ports are this machine's own (so /proc can see them)."""
        return self.scope == LOCAL

    def cli_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) pointed at this engine for the docker CLI."""
        env = {
            k: v
            for k, v in (os.environ if base is None else base).items()
            if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")
        }
        if self.context is not None:
            env["DOCKER_CONTEXT"] = self.context
        else:
            env["DOCKER_HOST"] = self.endpoint
        return env

    def __str__(self) -> str:
        return self.endpoint if self.context is None else f"{self.endpoint} (context {self.context})"


def _current_context_name(env: Mapping[str, str]) -> str | None:
    if name := env.get("DOCKER_CONTEXT"):
        return name
    config = _config_dir(env) / "config.json"
    try:
        name = json.loads(config.read_text()).get("currentContext")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) and name else None


def current_engine(env: Mapping[str, str] | None = None) -> Engine:
    """The engine the docker CLI would use: ``DOCKER_HOST``, else the current context, else the default socket."""
    env = os.environ if env is None else env
    if host := env.get("DOCKER_HOST"):
        return Engine(host)
    name = _current_context_name(env)
    if name and name != "default":
        context = _context(name, env)
        if context is None:
            raise DockerUnavailable(
                f"the Docker context {name!r} (DOCKER_CONTEXT or ~/.docker/config.json) does not exist",
                remedy="`docker context ls` lists the contexts; `docker context use default` goes back",
            )
        return Engine(context.host, name)
    return Engine(DEFAULT_ENDPOINT)


@dataclass(frozen=True)
class _Context:
    """What dockyard needs of a Docker context: its endpoint and its TLS material, if any."""

    host: str
    tls_dir: Path | None
    skip_tls_verify: bool


def _context(name: str, env: Mapping[str, str]) -> _Context | None:
    # The CLI's own store (`docker context create` writes it): meta/<sha256(name)>/meta.json and
    # tls/<sha256(name)>/docker/. Read directly: docker-py's ContextAPI only finds the store
    # when a config.json exists beside it, which `docker context create` does not make.
    store = _config_dir(env) / "contexts"
    digest = hashlib.sha256(name.encode()).hexdigest()
    try:
        meta = json.loads((store / "meta" / digest / "meta.json").read_text())
        endpoint = meta["Endpoints"]["docker"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    tls_dir = store / "tls" / digest / "docker"
    return _Context(
        host=str(endpoint.get("Host") or DEFAULT_ENDPOINT),
        tls_dir=tls_dir if tls_dir.is_dir() else None,
        skip_tls_verify=bool(endpoint.get("SkipTLSVerify")),
    )


def _config_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get("DOCKER_CONFIG") or Path.home() / ".docker")


LOOPBACK = "127.0.0.1"  # where published ports bind, wherever the engine's host is this one


@functools.cache
def publish_address(engine: Engine) -> str:
    """The address ``engine`` binds the stack's published ports to: 127.0.0.1, or a TCP engine's own.

    A TCP engine on another host (GitLab's Docker executor with a ``docker:dind`` service,
    ``DOCKER_HOST=tcp://docker:2375``) binds ports on that host, whose loopback this process
    cannot reach; the address this process reaches the engine at is that host's, so ports
    published there are reachable from here, and only as far as the engine itself is. Every
    other engine (a socket, a TCP address of this machine, SSH) publishes on loopback.
    """
    parts = urlsplit(engine.endpoint)
    if engine.local or parts.scheme not in ("tcp", "http", "https") or not parts.hostname:
        return LOOPBACK
    try:
        found = socket.getaddrinfo(parts.hostname, parts.port or 2375, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return LOOPBACK  # unresolvable: preflight says the engine cannot be reached, with the remedy
    address = str(found[0][4][0])
    # An address of this very machine (a TCP engine here, named by its LAN address) would
    # publish the stack on the LAN: loopback reaches it as well.
    return LOOPBACK if address in own_addresses() else address


def publish_note(engine: Engine) -> str | None:
    """One line for the user when ``engine``'s ports are not published on loopback."""
    address = publish_address(engine)
    if address == LOOPBACK:
        return None
    return (
        f"the engine {engine.endpoint} runs on another host: published ports bind to its address "
        f"{address} (reachable from here), not to 127.0.0.1"
    )


def engine_for(endpoint: str) -> Engine:
    """The engine of a lease record or a setting; the current one (with its context) when it matches."""
    current = current_engine()
    return current if not endpoint or endpoint == current.endpoint else Engine(endpoint)


def engines_of(endpoints: tuple[str, ...] | list[str]) -> list[Engine]:
    """The configured engines (setting ``engines``), or just the current one when none are."""
    return [engine_for(e) for e in dict.fromkeys(endpoints)] if endpoints else [current_engine()]


def engine_name() -> str:
    """The engine this process talks to, as users would name it."""
    return str(current_engine())


def _client(engine: Engine) -> SdkClient:
    import docker  # noqa: PLC0415 - see _sdk
    from docker import DockerClient  # noqa: PLC0415
    from docker.tls import TLSConfig  # noqa: PLC0415

    context = _context(engine.context, os.environ) if engine.context is not None else None
    if context is not None:
        tls: TLSConfig | bool = False
        if context.tls_dir is not None:
            files = {n: context.tls_dir / f"{n}.pem" for n in ("ca", "cert", "key")}
            tls = TLSConfig(
                client_cert=(str(files["cert"]), str(files["key"])) if files["cert"].is_file() else None,
                ca_cert=str(files["ca"]) if files["ca"].is_file() else None,
                verify=not context.skip_tls_verify,
            )
        return DockerClient(
            base_url=context.host, tls=tls, timeout=30, use_ssh_client=context.host.startswith("ssh://")
        )
    if engine.endpoint == os.environ.get("DOCKER_HOST"):
        return docker.from_env(timeout=30)  # keeps DOCKER_TLS_VERIFY / DOCKER_CERT_PATH
    return DockerClient(base_url=engine.endpoint, timeout=30, use_ssh_client=engine.endpoint.startswith("ssh://"))


def sdk(engine: Engine | None = None) -> SdkClient:
    """A Docker SDK client of ``engine`` (default: the current one); raises :class:`DockerUnavailable`."""
    return _sdk(engine or current_engine())


@functools.cache
def _sdk(engine: Engine) -> SdkClient:
    # Imported here, not at the top: docker-py (with requests) costs ~60 ms of import, and
    # taking a berth, writing an override file or the handshake of a unix socket need none.
    import docker.errors  # noqa: PLC0415

    _need_cli()
    client = None
    try:
        client = _client(engine)
        client.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).splitlines()[0][:200]
    else:
        return client
    # Raised out here, with the client closed: docker-py leaves the socket of a failed connect
    # open, and an SDK error chained to ours would keep it (and a ResourceWarning) alive.
    if client is not None:
        client.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    raise unreachable(engine, reason)


def _need_cli() -> None:
    if shutil.which("docker") is None:
        raise DockerUnavailable(
            "the `docker` command is not installed",
            remedy="install Docker Engine (https://docs.docker.com/engine/install/) and try again",
        )


def unreachable(engine: Engine, reason: str) -> DockerUnavailable:
    """The error of an engine that does not answer, for ``reason``, with the remedy."""
    return DockerUnavailable(
        f"the Docker daemon at {engine} is unreachable ({reason})",
        remedy="start the daemon (e.g. `sudo systemctl start docker`), or fix DOCKER_HOST / the docker context"
        " / the `engines` setting",
    )


def plain_socket(engine: Engine) -> str | None:
    """The path of ``engine``'s unix socket when plain HTTP reaches it; None when only docker-py can.

    TLS material (a context's, or DOCKER_TLS_VERIFY / DOCKER_CERT_PATH beside DOCKER_HOST),
    TCP, SSH and named pipes are docker-py's to handle.
    """
    parts = urlsplit(engine.endpoint)
    if parts.scheme != "unix" or parts.netloc or not parts.path:
        return None
    if engine.context is not None:
        context = _context(engine.context, os.environ)
        if context is None or context.tls_dir is not None:
            return None
    elif engine.endpoint == os.environ.get("DOCKER_HOST") and (
        os.environ.get("DOCKER_TLS_VERIFY") or os.environ.get("DOCKER_CERT_PATH")
    ):
        return None
    return parts.path


@functools.cache
def _answers(engine: Engine) -> None:
    # Cached on success only (functools.cache keeps no exception): one ping per engine and process.
    path = plain_socket(engine)
    if path is None:
        _sdk(engine)
        return
    _need_cli()
    try:
        socket_api.ping(path)
    except OSError as exc:
        raise unreachable(engine, _reason(path, exc)) from None


def _reason(path: str, exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return f"{path} did not answer within the timeout"
    if exc.strerror:
        return f"{path}: {exc.strerror}"
    return f"{path}: {str(exc)[:200]}"


def handshake(engine: Engine | None = None) -> None:
    """Check the CLI, that ``engine`` (default: the current one) answers, and Compose v2.

    Raises :class:`DockerUnavailable` with the remedy. A plain unix socket is pinged without
    docker-py (see :mod:`dockyard.engine.socket_api`); any other endpoint through the SDK client.
    """
    _answers(engine or current_engine())
    compose_version()


def forget_clients() -> None:
    """Drop the cached SDK clients (one of them found its daemon gone): the next call connects anew."""
    _sdk.cache_clear()
    _answers.cache_clear()


def engine_id(engine: Engine) -> str:
    """The engine's ID from ``docker info`` (not unique: daemons sharing /etc/docker/key.json share it)."""
    return str(sdk(engine).info().get("ID", ""))


def preflight(engine: Engine | None = None) -> SdkClient:
    """Check the CLI, ``engine`` (default: the current one) and Compose v2; its SDK client when all are usable."""
    client = sdk(engine)
    compose_version()
    return client


def is_podman(api: APIClient) -> bool:
    """Whether ``api`` talks to Podman's Docker-compatible service rather than to Docker Engine."""
    key = str(api.base_url)
    if key not in _PODMAN:
        components = api.version().get("Components") or []
        _PODMAN[key] = any("podman" in str(c.get("Name", "")).lower() for c in components)
    return _PODMAN[key]


_PODMAN: dict[str, bool] = {}
