"""The stack is up and the web server can reach Redis."""

from __future__ import annotations

from collections.abc import Callable

import httpx


def test_health(service_url: Callable[..., str]) -> None:
    response = httpx.get(service_url("web", 8080) + "/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
