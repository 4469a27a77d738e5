"""The stack's addresses as environment variables, for test runners that are not pytest.

The scheme (documented in the README, relied on by users' scripts):

``DOCKYARD_<SERVICE>_<PORT>``
    ``host:port`` where this process reaches ``SERVICE``'s container port ``PORT``
    (``127.0.0.1:<berth port>`` on the host). ``SERVICE`` is the compose service name in
    upper case, every character other than A-Z and 0-9 turned into ``_``.
``DOCKYARD_PROJECT``
    The compose project name of the berth.
``DOCKYARD_PORT_BLOCK``
    The berth's port block, ``FIRST-LAST``.
``DOCKYARD_BERTH_INDEX``
    The berth's index in the pool (``--berth N`` of the other tasks).

None of these is a settings key (those never end in a port number), so they cannot be
mistaken for ``DOCKYARD_<KEY>`` overrides by a nested dockyard.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from dockyard.errors import DockyardError
from dockyard.stack.stack import Stack


def variable(service: str, port: int | str) -> str:
    """``DOCKYARD_<SERVICE>_<PORT>`` of one published port."""
    return f"DOCKYARD_{re.sub(r'[^A-Z0-9]', '_', service.upper())}_{port}"


def port_environment(stack: Stack) -> dict[str, str]:
    """One variable per published port, plus the project, the port block and the berth index."""
    info = stack.describe()
    env = {
        "DOCKYARD_PROJECT": stack.project,
        "DOCKYARD_PORT_BLOCK": "{}-{}".format(*info["port_block"]),
        "DOCKYARD_BERTH_INDEX": str(stack.berth.index),
    }
    owners: dict[str, str] = {}
    for service, ports in sorted(info["addresses"].items()):
        for port, address in sorted(ports.items()):
            name = variable(service, port)
            if name in owners and owners[name] != service:
                raise DockyardError(
                    f"services {owners[name]!r} and {service!r} both map to {name}",
                    remedy="rename one of them: the variable names keep only letters, digits and '_'",
                )
            owners[name] = service
            env[name] = address
    return env


def write_env_file(path: Path, env: Mapping[str, str]) -> Path:
    """Write ``env`` as a dotenv file (``KEY=value`` lines), replacing ``path`` atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(f"{key}={value}\n" for key, value in sorted(env.items())))
    tmp.replace(path)
    return path
