"""Tiny servers for test stacks, in the perl of the Debian base image (it has no Python).

Each returns a container command (a JSON list, compose escaping applied) that sleeps
``delay`` seconds first, so that anything calling a service ready before it listens is caught.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .helpers import IMAGE

# A socket written to by a closed client must not kill the server.
_PRELUDE = '$$SIG{PIPE}="IGNORE"; select(undef, undef, undef, {delay});'
_LISTEN = "$$s = IO::Socket::INET->new(LocalPort => {port}, Listen => 16, ReuseAddr => 1) or die $$!;"


def http_server(port: int = 8000, *, status: int = 200, delay: float = 0.0) -> list[str]:
    """Answers every request with ``status`` and the body ``ok``."""
    script = (
        _PRELUDE.replace("{delay}", str(delay))
        + _LISTEN.replace("{port}", str(port))
        + "while ($$c = $$s->accept) { $$l = <$$c>; "
        + f'print $$c "HTTP/1.0 {status} X\\r\\nContent-Length: 2\\r\\n\\r\\nok"; close $$c }}'
    )
    return ["perl", "-MIO::Socket::INET", "-e", script]


def echo_server(port: int, *, delay: float = 0.0) -> list[str]:
    """Sends every line it gets back."""
    script = (
        _PRELUDE.replace("{delay}", str(delay))
        + _LISTEN.replace("{port}", str(port))
        + "while ($$c = $$s->accept) { $$l = <$$c>; print $$c $$l if defined $$l; close $$c }"
    )
    return ["perl", "-MIO::Socket::INET", "-e", script]


def shell(script: str) -> list[str]:
    """``sh -c script`` (write ``$$`` for a literal ``$``)."""
    return ["sh", "-c", script]


def bare_service(name: str, command: Sequence[str], *, ports: Sequence[str] = (), extra: Sequence[str] = ()) -> str:
    """A service of the base image with no health check (compose YAML)."""
    lines = [
        f"  {name}:",
        f"    image: {IMAGE}",
        f"    command: {json.dumps(list(command))}",
        "    init: true",
        "    stop_grace_period: 1s",
        "    healthcheck: {disable: true}",
    ]
    if ports:
        lines.append(f"    ports: {json.dumps(list(ports))}")
    lines += [f"    {line}" for line in extra]
    return "\n".join(lines) + "\n"
