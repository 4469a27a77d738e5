"""The web server: ``POST /jobs`` queues a job, ``GET /jobs/<id>`` shows it, ``GET /health``.

The standard library's threading HTTP server: enough for an example, and nothing to install.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

import redis

from . import store

_JOB_PATH = re.compile(r"/jobs/([0-9a-f]{32})")
_MAX_BODY = 64 * 1024


class Handler(BaseHTTPRequestHandler):
    """One request; every answer is JSON."""

    server_version = "jobqueue/0.1"
    client: redis.Redis  # set on the class by main(): one connection pool for all threads

    def do_GET(self) -> None:
        """``/health`` and ``/jobs/<id>``."""
        if self.path == "/health":
            self._health()
            return
        match = _JOB_PATH.fullmatch(self.path)
        job = store.fetch(self.client, match.group(1)) if match else None
        if job is None:
            self._send(HTTPStatus.NOT_FOUND, {"error": "no such job"})
        else:
            self._send(HTTPStatus.OK, job)

    def do_POST(self) -> None:
        """``/jobs`` with ``{"text": "..."}``: 202 and the new job's id."""
        if self.path != "/jobs":
            self._send(HTTPStatus.NOT_FOUND, {"error": "no such endpoint"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"at most {_MAX_BODY} bytes"})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            body = None
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            self._send(HTTPStatus.BAD_REQUEST, {"error": 'expected {"text": "<non-empty string>"}'})
            return
        job_id = store.submit(self.client, text)
        self._send(HTTPStatus.ACCEPTED, {"id": job_id, "status": "queued"}, location=f"/jobs/{job_id}")

    def _health(self) -> None:
        try:
            self.client.ping()
            workers = store.workers(self.client)
        except redis.RedisError as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "redis unavailable", "error": str(exc)})
            return
        # Workers are reported, not required: the web server accepts jobs while none runs.
        self._send(HTTPStatus.OK, {"status": "ok", "workers": workers})

    def _send(self, status: HTTPStatus, body: dict[str, Any], location: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(data)


def _stop(_signum: int, _frame: FrameType | None) -> None:
    # As PID 1 the process has no default SIGTERM action: without this, `docker stop` waits
    # out its grace period and then kills.
    sys.exit(0)


def main() -> None:
    """Serve on ``PORT`` (default 8080) until SIGTERM."""
    signal.signal(signal.SIGTERM, _stop)
    Handler.client = store.connect()
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler)  # noqa: S104 - in a container
    server.daemon_threads = True
    print(f"jobqueue web listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
