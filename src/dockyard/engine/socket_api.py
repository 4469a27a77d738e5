"""A few of the engine's API calls over a unix socket, with the standard library alone.

A process that only needs to know that its engine answers (take a berth, write the override,
hand over to Compose), or which container it runs in, should not pay for docker-py and
requests (~50-80 ms of import), nor for ``http.client``, which brings ``email`` and ``ssl``
along (~7-20 ms). Each call is one HTTP/1.0 request: the engine answers it without chunking
and closes the connection, so the body is whatever follows the head. Docker Engine and
Podman's Docker-compatible service both answer these.
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any
from urllib.parse import quote

TIMEOUT_S = 10.0  # a daemon that takes longer than this to answer is not usable
_MAX_RESPONSE = 16 * 1024 * 1024  # an inspect answer is a few KiB; this bounds a runaway one
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r?\n")
_LENGTH = re.compile(rb"\r\nContent-Length: *(\d+)", re.IGNORECASE)


class PingError(OSError):
    """The socket answered, but not as an engine answers."""


def get(path: str, url: str, timeout: float = TIMEOUT_S) -> tuple[int, bytes]:
    """``GET url`` of the engine listening on the unix socket ``path``: its status and body.

    A missing socket, a refused connection or a timeout raise the OS's own error; an answer
    that is not HTTP raises :class:`PingError` naming what came back.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(f"GET {url} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        answer = b""
        while len(answer) < _MAX_RESPONSE and not _complete(answer) and (chunk := sock.recv(65536)):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return status_of(head + b"\r\n"), body


def _complete(answer: bytes) -> bool:
    # The whole body by its Content-Length, so that a server keeping the connection open after
    # all is not waited on; without one, the end is the closed connection.
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    match = _LENGTH.search(head)
    return match is not None and len(body) >= int(match[1])


def status_of(answer: bytes) -> int:
    """The status of an HTTP answer; raises :class:`PingError` when it is not one."""
    match = _STATUS.match(answer)
    if match is None:
        shown = answer[:80].decode("utf-8", "replace").strip() or "nothing"
        raise PingError(f"not an HTTP answer: {shown!r}")
    return int(match[1])


def ping(path: str, timeout: float = TIMEOUT_S) -> None:
    """``GET /_ping``; raises OSError (:class:`PingError` for a wrong answer) unless it is 200."""
    status, _ = get(path, "/_ping", timeout)
    if status != 200:  # HTTP OK
        raise PingError(f"GET /_ping answered HTTP {status}")


def inspect_container(path: str, ref: str) -> dict[str, Any] | None:
    """The engine's inspect data of container ``ref`` (an id, a prefix or a name), or None when it has none.

    None too for any other refusal (an ambiguous prefix answers 400), as no positive
    identification; an unreachable engine raises OSError.
    """
    status, body = get(path, f"/containers/{quote(ref, safe='')}/json")
    if status != 200:  # HTTP OK
        return None
    try:
        info = json.loads(body)
    except ValueError:
        return None
    return info if isinstance(info, dict) else None
