"""Account lifecycle: register, log in, use the token, and the ways that fails."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .demo_api import DemoApi, bearer
from .factories import Account, AccountFactory

pytestmark = pytest.mark.e2e


def test_a_new_account_can_log_in_and_use_the_backend(api: DemoApi, account: Account) -> None:
    registered = api.auth.post("/register", json=account.credentials())
    assert registered.status_code == 201, registered.text
    user = registered.json()
    assert user["username"] == account.username

    token = api.login(account)

    identity = api.auth.get("/verify", headers=bearer(token))
    assert identity.status_code == 200, identity.text
    assert identity.json() == {"user_id": user["id"], "username": account.username}
    notes = api.backend.get("/notes", headers=bearer(token))
    assert notes.status_code == 200, notes.text
    assert notes.json() == []


def test_a_taken_username_is_refused_with_409(api: DemoApi, account: Account) -> None:
    api.register(account)
    impostor = AccountFactory.build(username=account.username)

    response = api.auth.post("/register", json=impostor.credentials())

    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "username_taken"


def test_a_wrong_password_gets_no_token(api: DemoApi, account: Account) -> None:
    api.register(account)
    wrong = AccountFactory.build(username=account.username)

    response = api.auth.post("/login", json=wrong.credentials())

    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert "token" not in response.json()


def _tampered(token: str) -> str:
    """The same token with its signature's first character changed."""
    payload, signature = token.split(".")
    first = "A" if signature[0] != "A" else "B"
    return f"{payload}.{first}{signature[1:]}"


# Ways to present a spoiled token, each built from a good one.
BAD_CREDENTIALS: dict[str, Callable[[str], dict[str, str]]] = {
    "tampered": lambda token: bearer(_tampered(token)),
    "garbage": lambda _: bearer("not-a-token"),
    "wrong scheme": lambda token: {"Authorization": f"Basic {token}"},
    "missing": lambda _: {},
}


@pytest.mark.parametrize("spoil", list(BAD_CREDENTIALS.values()), ids=list(BAD_CREDENTIALS))
def test_a_bad_token_is_rejected_with_401_by_auth_and_backend(
    api: DemoApi, token: str, spoil: Callable[[str], dict[str, str]]
) -> None:
    headers = spoil(token)

    verified = api.auth.get("/verify", headers=headers)
    listed = api.backend.get("/notes", headers=headers)

    for response in (verified, listed):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "invalid_token"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    # The good token still works: rejecting a bad one changed nothing.
    assert api.backend.get("/notes", headers=bearer(token)).status_code == 200
