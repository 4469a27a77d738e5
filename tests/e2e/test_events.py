"""Live events: a WebSocket subscriber sees the changes another client makes over HTTP."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .demo_api import TIMEOUT_S, DemoApi, bearer, next_event
from .factories import AccountFactory, NoteDraftFactory

pytestmark = pytest.mark.e2e

# The backend's close code for a rejected token (4000-4999 are the application's own).
WS_INVALID_TOKEN = 4401


def test_a_subscriber_sees_created_updated_deleted(api: DemoApi, token: str) -> None:
    auth = bearer(token)
    with api.events(token) as socket:
        # Each change is made by the HTTP client, then awaited on the socket.
        note = api.backend.post("/notes", json=NoteDraftFactory.build().json(), headers=auth).json()
        assert next_event(socket) == {"type": "note.created", "note": note}

        updated = api.backend.put(f"/notes/{note['id']}", json=NoteDraftFactory.build().json(), headers=auth)
        assert next_event(socket) == {"type": "note.updated", "note": updated.json()}

        api.backend.delete(f"/notes/{note['id']}", headers=auth)
        assert next_event(socket) == {"type": "note.deleted", "note": {"id": note["id"]}}


def test_subscribers_only_see_their_own_events(api: DemoApi, token: str) -> None:
    other_token = api.sign_up(AccountFactory.build())
    with api.events(token) as mine, api.events(other_token) as theirs:
        my_note = api.backend.post("/notes", json=NoteDraftFactory.build().json(), headers=bearer(token))
        their_note = api.backend.post("/notes", json=NoteDraftFactory.build().json(), headers=bearer(other_token))

        # My change was published first: had it leaked to the other socket, it would come
        # before their own event there. No waiting for an absence needed.
        assert next_event(theirs) == {"type": "note.created", "note": their_note.json()}
        assert next_event(mine) == {"type": "note.created", "note": my_note.json()}


def test_a_bad_token_closes_the_event_socket(api: DemoApi) -> None:
    with (
        connect(api.events_url("not-a-token"), open_timeout=TIMEOUT_S) as socket,
        pytest.raises(ConnectionClosed) as closed,
    ):
        socket.recv(timeout=TIMEOUT_S)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == WS_INVALID_TOKEN
