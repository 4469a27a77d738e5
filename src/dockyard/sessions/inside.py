"""`dockyard run --in SERVICE -- CMD`: the command in a one-off container of a service, on the stack's networks.

The container is ``docker compose run`` of ``SERVICE`` (its image, environment, volumes and
networks; ``--no-deps``: the stack is up already), so a test suite baked into a service image
(``backend-test``, say) runs where it would in production. It carries the stack's labels, so
whatever happens it goes with the stack. CMD's exit code is passed through.

Inside, the port variables of ``sessions/env.py`` keep their names but point where the
container reaches each service: ``DOCKYARD_<SERVICE>_<PORT>=<service>:<container port>``.
``--copy-out SRC:DEST`` copies a path of the container (reports: JUnit XML, coverage data)
to the host after CMD ends, whatever its exit code, before the container is removed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from dockyard.errors import DockyardError
from dockyard.sessions.env import variable
from dockyard.stack.compose import compose_command
from dockyard.stack.stack import Stack
from dockyard.ui.console import say


def parse_copy(spec: str) -> tuple[str, Path]:
    """``/reports:./reports`` -> (path in the container, path on the host)."""
    src, sep, dest = spec.partition(":")
    if not sep or not src or not dest or not PurePosixPath(src).is_absolute():
        raise DockyardError(
            f"--copy-out {spec!r}: expected CONTAINER_PATH:HOST_PATH with an absolute container path",
            remedy="e.g. --copy-out /app/reports:./reports",
        )
    return src, Path(dest)


def inside_environment(stack: Stack) -> dict[str, str]:
    """The port variables as a container on the stack's networks reaches the services."""
    env = {
        "DOCKYARD_PROJECT": stack.project,
        "DOCKYARD_PORT_BLOCK": f"{stack.berth.port_block.start}-{stack.berth.port_block.stop - 1}",
        "DOCKYARD_BERTH_INDEX": str(stack.berth.index),
    }
    for service, ports in stack.berth.ports.items():
        for port in ports:
            env[variable(service, port)] = f"{service}:{port}"
    return env


def run_inside(stack: Stack, service: str, command: Sequence[str], copy_out: Sequence[str] = ()) -> int:
    """Run ``command`` in a one-off container of ``service``; its exit code."""
    if service not in stack.model.services:
        raise DockyardError(
            f"--in: no service {service!r} in the compose files",
            remedy=f"choose among {', '.join(sorted(stack.model.services))}",
        )
    copies = [parse_copy(spec) for spec in copy_out]
    name = f"{stack.project}-{service}-run-{os.getpid()}"
    env_flags = [flag for key, value in sorted(inside_environment(stack).items()) for flag in ("-e", f"{key}={value}")]
    base = compose_command(stack.settings, stack.project, [stack.override_path])
    cli_env = stack.berth.engine.cli_env()
    code = subprocess.call(
        [*base, "run", "--name", name, "--no-deps", "-T", *env_flags, service, *command],
        cwd=stack.settings.root,
        env=cli_env,
    )
    try:
        for src, dest in copies:
            dest.parent.mkdir(parents=True, exist_ok=True)
            copied = subprocess.run(
                ["docker", "cp", f"{name}:{src}", str(dest)], capture_output=True, text=True, check=False, env=cli_env
            )
            if copied.returncode != 0:
                say(f"could not copy {src} out of {service}: {stack.redact(copied.stderr.strip())}")
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False, env=cli_env)
    return code
