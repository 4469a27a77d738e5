"""Failure handling: bad input gets a structured 4xx; losing auth gets a clear 503, then heals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from dockyard import Stack

from .demo_api import DemoApi, bearer

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class BadRequest:
    """A request the demo must refuse, and how."""

    service: str
    method: str
    path: str
    body: dict[str, Any] | None
    status: int
    code: str


BAD_REQUESTS = {
    "short password": BadRequest(
        "auth", "POST", "/register", {"username": "valid-name", "password": "short"}, 422, "validation_error"
    ),
    "username with spaces": BadRequest(
        "auth", "POST", "/register", {"username": "no spaces", "password": "long-enough-1"}, 422, "validation_error"
    ),
    "empty title": BadRequest("backend", "POST", "/notes", {"title": "", "body": "x"}, 422, "validation_error"),
    "missing title": BadRequest("backend", "POST", "/notes", {"body": "x"}, 422, "validation_error"),
    "id not a number": BadRequest("backend", "GET", "/notes/first", None, 422, "validation_error"),
    "unknown note": BadRequest("backend", "GET", "/notes/987654321", None, 404, "not_found"),
    "unknown route": BadRequest("backend", "GET", "/no-such-route", None, 404, "not_found"),
    "wrong method": BadRequest("backend", "PATCH", "/notes", None, 405, "method_not_allowed"),
}


@pytest.mark.parametrize("bad", list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS))
def test_bad_input_gets_a_structured_error(api: DemoApi, token: str, bad: BadRequest) -> None:
    client = api.auth if bad.service == "auth" else api.backend

    response = client.request(bad.method, bad.path, json=bad.body, headers=bearer(token))

    assert response.status_code == bad.status, response.text
    error = response.json()["error"]
    assert error["code"] == bad.code
    assert error["message"]
    if bad.code == "validation_error":
        assert error["details"], "validation errors name the offending fields"


def test_a_body_that_is_not_json_is_a_validation_error(api: DemoApi, token: str) -> None:
    response = api.backend.post(
        "/notes", content=b"title=hello", headers={**bearer(token), "Content-Type": "application/json"}
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


def test_backend_says_auth_is_unavailable_and_recovers(dockyard_stack: Stack, api: DemoApi, token: str) -> None:
    dockyard_stack.stop("auth")
    try:
        refused = api.backend.get("/notes", headers=bearer(token))
        health = api.backend.get("/health")
    finally:
        # Whatever happened above, later tests get their auth service back.
        dockyard_stack.start("auth")  # returns once auth is healthy

    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["code"] == "auth_unavailable"
    assert "auth service" in error["message"]
    # The backend itself stays healthy and reports auth's outage instead of hiding it.
    assert health.status_code == 200, health.text
    assert health.json()["checks"]["auth"].startswith("unavailable")

    # Nothing needs restarting: the next request goes through, with the same token.
    recovered = api.backend.get("/notes", headers=bearer(token))
    assert recovered.status_code == 200, recovered.text
    assert api.backend.get("/health").json()["checks"]["auth"] == "ok"
