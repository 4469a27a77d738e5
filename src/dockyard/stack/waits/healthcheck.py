"""The service's own health check, run by dockyard at a fine interval instead of the engine's."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any, cast

from dockyard.engine.endpoints import is_podman
from dockyard.stack.waits.protocol import Seen, Target
from dockyard.stack.waits.tcp import REFUSED_AGAIN, refused_port

if TYPE_CHECKING:
    from docker import APIClient

EXEC_POLL = 0.01  # seconds between looks at a running health-check command (most take ~50 ms)


def health_test(info: dict[str, Any]) -> list[str]:
    """The container's health-check test (``[]`` when it has none or it is disabled)."""
    test: list[str] = ((info.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
    return [] if not test or test[0] == "NONE" else test


class HealthCheck:
    """Ready when the engine says healthy, or as soon as the check's own command passes here.

    The command runs only once every published TCP port of the container accepts connections on
    the container's own address: that costs a connect() to find out, and a (maybe heavy) check
    cannot pass before.
    """

    name = "health check"

    def __init__(self, test: list[str] | None = None) -> None:
        self.test = test  # as the compose files wrote it; else the engine's copy in the inspect output

    def check(self, target: Target) -> Seen:
        """Look at the engine's verdict, else run the check once."""
        state = target.state
        if state.health == "healthy" or (state.state == "exited" and state.exit_code == 0):
            return Seen(ready=True)
        if state.state != "running":
            return Seen.not_yet(f"container is {state.state}")
        test = self.test or health_test(target.info)
        if not test:
            return Seen.not_yet("the container has no health check")
        if (port := refused_port(target.info)) is not None:
            return Seen.not_yet(f"port {port}: connection refused", REFUSED_AGAIN)
        command = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
        # The check's own timeout (Docker's default 30 s), as the engine would apply it.
        limit = (((target.info.get("Config") or {}).get("Healthcheck") or {}).get("Timeout") or 30e9) / 1e9
        code = run_check(target, command, limit)
        if code == 0:
            return Seen(ready=True)
        return Seen.not_yet("the check has not passed yet" if code is None else f"the check exited {code}")


def run_check(target: Target, command: list[str], limit: float) -> int | None:
    """Run ``command`` in the container; its exit code (None: it hung past ``limit``, or the container went)."""
    from docker.errors import APIError  # noqa: PLC0415 - the caller's engine client has imported docker-py

    api = target.api
    container = target.state.container
    try:
        if is_podman(api):
            return _run_attached(api, container, command, limit)
        exec_id = api.exec_create(container, command, stdout=False, stderr=False)["Id"]
        # With no stream attached the engine answers at once, while the check still runs:
        # its exit code is there only once exec_inspect says it is no longer running.
        api.exec_start(exec_id, detach=True)
        deadline = time.monotonic() + limit
        while (result := api.exec_inspect(exec_id)).get("Running"):
            if time.monotonic() > deadline:
                return None  # a check that hangs has failed, as it would for the engine
            time.sleep(EXEC_POLL)
        code = result.get("ExitCode")
        return int(code) if code is not None else None
    except APIError:
        return None  # the container is stopping or gone: the next look at its state says why


def _run_attached(api: APIClient, container: str, command: list[str], limit: float) -> int | None:
    """Podman's way: its detached execs report ``Running`` forever, and an attached one needs a stream.

    The output stream is read to its end (the command's exit), to the check's own time limit.
    """
    exec_id = api.exec_create(container, command, stdout=True, stderr=False)["Id"]
    sock = api.exec_start(exec_id, socket=True)
    # docker-py hands over a SocketIO around the real socket (on a unix or TCP engine).
    raw = cast(socket.socket, getattr(sock, "_sock", sock))
    deadline = time.monotonic() + limit
    try:
        while (left := deadline - time.monotonic()) > 0:
            raw.settimeout(left)
            if not raw.recv(4096):
                break
        else:
            return None
    except TimeoutError:
        return None  # a check that hangs has failed, as it would for the engine
    finally:
        sock.close()
        raw.close()  # closing the SocketIO alone leaves the connection open
    code = api.exec_inspect(exec_id).get("ExitCode")
    return int(code) if code is not None else None
