"""Fixtures of the demo journeys; the stack itself comes from dockyard's pytest plugin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dockyard import Stack

from .demo_api import DemoApi
from .models import Account


@pytest.fixture
def api(dockyard_stack: Stack) -> Iterator[DemoApi]:
    """Clients for the auth service and the backend of this session's stack."""
    with DemoApi(dockyard_stack) as demo:
        yield demo


@pytest.fixture
def account() -> Account:
    """A new account, not registered yet."""
    from .factories import AccountFactory  # noqa: PLC0415 - Faker (~0.35 s) only for tests that make accounts

    return AccountFactory.build()


@pytest.fixture
def token(api: DemoApi, account: Account) -> str:
    """A bearer token of ``account``, registered and logged in."""
    return api.sign_up(account)
