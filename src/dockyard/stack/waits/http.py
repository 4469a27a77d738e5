"""``http://:PORT/PATH``: ready when the container answers a GET with a 2xx or 3xx status."""

from __future__ import annotations

from typing import Any

from dockyard.stack.waits.protocol import Seen, Target
from dockyard.stack.waits.tcp import container_address

TIMEOUT = 1.0  # seconds for one request: a health endpoint answers at once, or it is not ready


def host_side(info: dict[str, Any], port: int) -> tuple[str, int] | None:
    """Where ``port`` is published on the engine's host (a full answer through docker-proxy is the container's)."""
    for bound in ((info.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{port}/tcp") or []:
        return bound.get("HostIp") or "127.0.0.1", int(bound["HostPort"])
    return None


def get(host: str, port: int, path: str) -> tuple[int | None, str]:
    """GET ``path``: (status, "") or (None, what went wrong)."""
    import http.client  # noqa: PLC0415 - brings email and ssl (~9 ms), needed only once a stack is up

    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers={"User-Agent": "dockyard"})
        return conn.getresponse().status, ""
    except ConnectionRefusedError:
        return None, "connection refused"
    except ConnectionResetError:
        return None, "connection reset"
    except TimeoutError:
        return None, "timed out"
    except (OSError, http.client.HTTPException) as exc:
        return None, str(exc) or type(exc).__name__
    finally:
        conn.close()


class Http:
    """``http://:PORT/PATH``."""

    def __init__(self, port: int, path: str = "/") -> None:
        self.port = port
        self.path = path or "/"
        self.name = f"http://:{port}{self.path}"

    def check(self, target: Target) -> Seen:
        """One request, to the container's own address (or its published port when that is unreachable)."""
        state = target.state
        if state.state == "exited":
            return Seen(ready=False, failed=True, detail=f"exited with code {state.exit_code} before answering")
        if state.state != "running":
            return Seen.not_yet(f"container is {state.state}")
        address = container_address(target.info)
        status, problem = get(address, self.port, self.path) if address else (None, "no address")
        unreachable = status is None and problem not in ("connection refused", "connection reset")
        if unreachable and (published := host_side(target.info, self.port)) is not None:
            status, problem = get(*published, self.path)
        if status is not None and 200 <= status < 400:
            return Seen(ready=True)
        return Seen.not_yet(f"status {status}" if status is not None else problem)
