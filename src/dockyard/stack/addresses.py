"""Where this process reaches the stack's services: host ports, addresses, URLs, ``--json`` info."""

from __future__ import annotations

from typing import Any

from dockyard.engine.endpoints import publish_address
from dockyard.engine.location import runner
from dockyard.pool.berth import Berth
from dockyard.settings import Settings
from dockyard.stack.compose import ComposeModel
from dockyard.stack.project import ComposeProject
from dockyard.stack.services import project_rows


class Addresses:
    """The published ports of one berth's stack, as this process reaches them.

    Fills ``berth.ports`` (service -> container port -> host port) from the model's port map.
    """

    def __init__(self, settings: Settings, berth: Berth, model: ComposeModel, project: ComposeProject) -> None:
        self.settings = settings
        self.berth = berth
        self.project = project
        self.port_map = model.port_map(berth.port_block)
        berth.ports = {}
        for (service, target, _proto), host in self.port_map.items():
            berth.ports.setdefault(service, {})[target] = host
        self._names: dict[str, str] = {}  # service -> container name, for addresses from a runner container

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

        ``("127.0.0.1", <host port>)`` on the host (a TCP engine on another host: its address,
        see :func:`~dockyard.engine.endpoints.publish_address`); from a runner container attached to the
        stack's networks (see :mod:`dockyard.engine.location`), the service container's name
        and the container port. Every address dockyard hands out (URLs, DSNs) is made here.
        """
        host_port = self.port(service, container_port)  # unpublished ports are an error either way
        if not runner(self.settings.runner, self.berth.engine).attached:
            return publish_address(self.berth.engine), host_port
        # The container name, not the service name: a runner attached to two stacks' networks
        # (two berths at once) would get either stack's "postgres" for the bare service name.
        return self.container_name(service), container_port

    def container_name(self, service: str) -> str:
        """The name of ``service``'s container (the service name while it has none yet)."""
        if service not in self._names:
            rows = project_rows(self.project.api, self.project.name, service=service)
            names = sorted(r["Names"][0].lstrip("/") for r in rows)
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
            "project": self.berth.project,
            "port_block": self.berth.port_block.to_json(),
            "ports": {svc: {str(k): v for k, v in ports.items()} for svc, ports in self.berth.ports.items()},
            "addresses": {
                svc: {str(k): "{}:{}".format(*self.address(svc, k)) for k in ports}
                for svc, ports in self.berth.ports.items()
            },
        }
