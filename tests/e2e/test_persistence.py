"""Persistence: notes go through a full CRUD cycle, stay private, and survive a restart."""

from __future__ import annotations

import pytest

from dockyard import Stack

from .demo_api import DemoApi, bearer
from .factories import AccountFactory, NoteDraftFactory

pytestmark = pytest.mark.e2e


def test_a_note_goes_through_create_read_update_delete(api: DemoApi, token: str) -> None:
    auth = bearer(token)
    draft, revision = NoteDraftFactory.build(), NoteDraftFactory.build()

    created = api.backend.post("/notes", json=draft.json(), headers=auth)
    assert created.status_code == 201, created.text
    note = created.json()
    assert (note["title"], note["body"]) == (draft.title, draft.body)
    assert api.backend.get(f"/notes/{note['id']}", headers=auth).json() == note
    assert api.backend.get("/notes", headers=auth).json() == [note]

    updated = api.backend.put(f"/notes/{note['id']}", json=revision.json(), headers=auth)
    assert updated.status_code == 200, updated.text
    assert (updated.json()["title"], updated.json()["body"]) == (revision.title, revision.body)
    assert updated.json()["created_at"] == note["created_at"]
    assert api.backend.get(f"/notes/{note['id']}", headers=auth).json() == updated.json()

    deleted = api.backend.delete(f"/notes/{note['id']}", headers=auth)
    assert deleted.status_code == 204, deleted.text
    gone = api.backend.get(f"/notes/{note['id']}", headers=auth)
    assert gone.status_code == 404, gone.text
    assert gone.json()["error"]["code"] == "not_found"
    assert api.backend.get("/notes", headers=auth).json() == []


def test_notes_are_private_to_their_owner(api: DemoApi, token: str) -> None:
    note = api.backend.post("/notes", json=NoteDraftFactory.build().json(), headers=bearer(token)).json()
    stranger = bearer(api.sign_up(AccountFactory.build()))

    # Someone else's note behaves exactly like one that does not exist.
    assert api.backend.get("/notes", headers=stranger).json() == []
    assert api.backend.get(f"/notes/{note['id']}", headers=stranger).status_code == 404
    put = api.backend.put(f"/notes/{note['id']}", json=NoteDraftFactory.build().json(), headers=stranger)
    assert put.status_code == 404
    assert api.backend.delete(f"/notes/{note['id']}", headers=stranger).status_code == 404
    # ... and the owner's note is untouched.
    assert api.backend.get(f"/notes/{note['id']}", headers=bearer(token)).json() == note


def test_notes_survive_a_backend_restart(dockyard_stack: Stack, api: DemoApi, token: str) -> None:
    auth = bearer(token)
    drafts = NoteDraftFactory.build_batch(3)
    before = [api.backend.post("/notes", json=draft.json(), headers=auth).json() for draft in drafts]

    dockyard_stack.restart("backend")  # returns once the backend is healthy again

    # The same token still works (auth issued it, not the backend) and the notes are all there.
    after = api.backend.get("/notes", headers=auth)
    assert after.status_code == 200, after.text
    assert after.json() == before
