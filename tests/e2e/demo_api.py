"""A thin client for the demo stack, addressed through a berth.

Only plumbing lives here (base URLs, bearer headers, the event socket's handshake); the
journeys make their HTTP calls themselves, so each test reads as the requests it makes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import httpx
from psycopg.conninfo import make_conninfo
from websockets.sync.client import ClientConnection, connect

from dockyard import Stack

from .models import Account

# Container ports from compose/app.yml; the host ports come from the berth.
APP_PORT = 8000
POSTGRES_PORT = 5432
REDIS_PORT = 6379

# Generous for a loaded CI host, short enough that a hang fails the test rather than the job.
TIMEOUT_S = 10.0


def postgres_conninfo(stack: Stack) -> str:
    """libpq connection string of the stack's PostgreSQL through its berth port.

    The credentials are the demo's, as compose/infra.yml sets them.
    """
    url = stack.url("postgres", POSTGRES_PORT, scheme="postgresql")
    return make_conninfo(url, user="demo", password="demo-password", dbname="demo")  # noqa: S106 -- a demo value


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


class DemoApi:
    """HTTP clients for auth and backend of one running stack, plus its event socket."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.auth = httpx.Client(base_url=stack.url("auth", APP_PORT), timeout=TIMEOUT_S)
        self.backend = httpx.Client(base_url=stack.url("backend", APP_PORT), timeout=TIMEOUT_S)

    def close(self) -> None:
        """Close both clients."""
        self.auth.close()
        self.backend.close()

    def __enter__(self) -> DemoApi:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def register(self, account: Account) -> dict[str, Any]:
        """Register ``account``, which must succeed; the new user (``id``, ``username``)."""
        response = self.auth.post("/register", json=account.credentials())
        assert response.status_code == 201, response.text
        user: dict[str, Any] = response.json()
        return user

    def login(self, account: Account) -> str:
        """Log ``account`` in, which must succeed; its bearer token."""
        response = self.auth.post("/login", json=account.credentials())
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    def sign_up(self, account: Account) -> str:
        """Register and log in ``account``; its bearer token."""
        self.register(account)
        return self.login(account)

    def events_url(self, token: str) -> str:
        """The WebSocket URL of the backend's event stream for ``token``."""
        return f"{self.stack.url('backend', APP_PORT, scheme='ws')}/events?token={token}"

    @contextmanager
    def events(self, token: str) -> Iterator[ClientConnection]:
        """The backend's event socket for ``token``, once its subscription is live.

        The backend says ``{"type": "subscribed"}`` when every later change will reach the
        socket, so waiting for that message replaces any sleep before the first change.
        """
        with connect(self.events_url(token), open_timeout=TIMEOUT_S, close_timeout=TIMEOUT_S) as socket:
            hello = next_event(socket)
            assert hello["type"] == "subscribed", hello
            yield socket


def next_event(socket: ClientConnection, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """The next JSON message on ``socket``, waiting at most ``timeout`` seconds for it."""
    event: dict[str, Any] = json.loads(socket.recv(timeout=timeout))
    return event
