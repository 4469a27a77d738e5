"""The engine's ``GET /_ping`` over a unix socket, with the standard library alone.

A process that only needs to know that its engine answers (take a berth, write the override,
hand over to Compose) should not pay for docker-py and requests (~50-80 ms of import), nor for
``http.client``, which brings ``email`` and ``ssl`` along (~7-20 ms). One request with
``Connection: close`` and one status line to read is small enough to write out here; Docker
Engine and Podman's Docker-compatible service both answer it.
"""

from __future__ import annotations

import re
import socket

TIMEOUT_S = 10.0  # a daemon that takes longer than this to answer /_ping is not usable
_MAX_RESPONSE = 64 * 1024  # /_ping answers "OK" and a few headers
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r?\n")


class PingError(OSError):
    """The socket answered, but not as an engine answers ``/_ping``."""


def ping_unix(path: str, timeout: float = TIMEOUT_S) -> None:
    """``GET /_ping`` of the engine listening on the unix socket ``path``; raises OSError when it does not answer 200.

    A missing socket, a refused connection or a timeout raise the OS's own error; an answer
    that is not HTTP, or not 200, raises :class:`PingError` naming what came back.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        answer = _read_head(sock)
    status_of(answer)


def _read_head(sock: socket.socket) -> bytes:
    answer = b""
    while b"\r\n" not in answer and len(answer) < _MAX_RESPONSE:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    """The status of an HTTP answer to ``/_ping`` when it is 200; raises :class:`PingError` otherwise."""
    match = _STATUS.match(answer)
    if match is None:
        shown = answer[:80].decode("utf-8", "replace").strip() or "nothing"
        raise PingError(f"not an HTTP answer to GET /_ping: {shown!r}")
    status = int(match[1])
    if status != 200:  # HTTP OK
        raise PingError(f"GET /_ping answered HTTP {status}")
    return status
