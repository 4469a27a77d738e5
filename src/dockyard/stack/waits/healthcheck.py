"""The service's own health check, run by dockyard at a fine interval instead of the engine's."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

from dockyard.engine.endpoints import is_podman
from dockyard.stack.waits.protocol import Seen, Target
from dockyard.stack.waits.tcp import REFUSED_AGAIN, closed_port

if TYPE_CHECKING:
    from docker import APIClient

EXEC_POLL = 0.01  # seconds between looks at a running health-check command (most take ~50 ms)
_RETRY_S = 0.1  # the least time between two runs of a check that failed


def health_test(info: dict[str, Any]) -> list[str]:
    """The container's health-check test (``[]`` when it has none or it is disabled)."""
    test: list[str] = ((info.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
    return [] if not test or test[0] == "NONE" else test


@dataclass(frozen=True)
class _Run:
    """One run of the check in a container, started and not yet seen to end."""

    exec_id: str
    container: str
    began: float
    deadline: float  # past it, the check has hung: it has failed, as it would for the engine


class HealthCheck:
    """Ready when the engine says healthy, or as soon as the check's own command passes here.

    The command runs only once every published TCP port of the container accepts connections on
    the container's own address: that costs a connect() to find out, and a (maybe heavy) check
    cannot pass before. On Docker the command runs detached and each look only asks whether it
    has ended, so the other services' looks go on meanwhile (two checks of ~0.15 s no longer
    wait for each other); a check that failed runs again no sooner than it took.
    """

    name = "health check"

    def __init__(self, test: list[str] | None = None) -> None:
        self.test = test  # as the compose files wrote it; else the engine's copy in the inspect output
        self.running: _Run | None = None

    def check(self, target: Target) -> Seen:
        """Look at the engine's verdict, at the check running, else start the check."""
        state = target.state
        if state.health == "healthy" or (state.state == "exited" and state.exit_code == 0):
            return Seen(ready=True)
        if state.state != "running":
            self.running = None
            return Seen.not_yet(f"container is {state.state}")
        if self.running is not None and self.running.container == state.container:
            return self._follow(target.api, self.running)
        return self._start(target)

    def _start(self, target: Target) -> Seen:
        """Start the check in the container (on Podman: run it to its end), once its ports accept."""
        test = self.test or health_test(target.info)
        if not test:
            return Seen.not_yet("the container has no health check")
        if (closed := closed_port(target.info)) is not None:
            port, problem = closed
            return Seen.not_yet(f"port {port}: {problem}", REFUSED_AGAIN)
        command = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
        # The check's own timeout (Docker's default 30 s), as the engine would apply it.
        limit = (((target.info.get("Config") or {}).get("Healthcheck") or {}).get("Timeout") or 30e9) / 1e9
        if is_podman(target.api):  # its detached execs report Running forever: run it attached, to its end
            return _verdict(run_check(target, command, limit))
        exec_id = start_check(target, command)
        if exec_id is None:
            return Seen.not_yet("the check has not passed yet")  # the container is going: the listing says why
        now = time.monotonic()
        self.running = _Run(exec_id, target.state.container, now, now + limit)
        return Seen.not_yet("the check is running", EXEC_POLL)

    def _follow(self, api: APIClient, run: _Run) -> Seen:
        """Whether the check's run has ended, and how."""
        from docker.errors import APIError  # noqa: PLC0415 - the caller's engine client has imported docker-py

        try:
            result = api.exec_inspect(run.exec_id)
        except APIError:
            result = {"Running": False, "ExitCode": None}  # gone with its container: the next listing says why
        now = time.monotonic()
        if result.get("Running") and now <= run.deadline:
            return Seen.not_yet("the check is running", EXEC_POLL)
        self.running = None
        code = None if result.get("Running") else result.get("ExitCode")
        seen = _verdict(None if code is None else int(code))
        # A heavy check must not starve the service it checks: the next run waits as long as this one took.
        return seen if seen.ready else replace(seen, again=max(_RETRY_S, now - run.began))


def _verdict(code: int | None) -> Seen:
    if code == 0:
        return Seen(ready=True)
    return Seen.not_yet("the check has not passed yet" if code is None else f"the check exited {code}")


def start_check(target: Target, command: list[str]) -> str | None:
    """Start ``command`` in the container, detached; its exec id (None: the container is going)."""
    from docker.errors import APIError  # noqa: PLC0415 - the caller's engine client has imported docker-py

    try:
        exec_id = str(target.api.exec_create(target.state.container, command, stdout=False, stderr=False)["Id"])
        # With no stream attached the engine answers at once, while the check still runs:
        # its exit code is there once exec_inspect says it is no longer running.
        target.api.exec_start(exec_id, detach=True)
    except APIError:
        return None
    return exec_id


def run_check(target: Target, command: list[str], limit: float) -> int | None:
    """Run ``command`` in the container to its end (Podman's way); its exit code.

    None: it hung past ``limit``, or the container went.
    """
    from docker.errors import APIError  # noqa: PLC0415 - the caller's engine client has imported docker-py

    try:
        return _run_attached(target.api, target.state.container, command, limit)
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
