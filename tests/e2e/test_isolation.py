"""Isolation: the same journey, with the same usernames, in two berths at the same time.

One run uses this session's stack, the other a second stack that ``running_stack()`` starts in
another berth. Both register the same username (no 409: separate databases), and each sees only
its own notes and events (separate PostgreSQL, Redis and ports).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from dockyard import Stack, running_stack

from .demo_api import DemoApi, bearer, next_event
from .factories import Account, AccountFactory

pytestmark = pytest.mark.e2e

JOURNEY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Outcome:
    """What one run of the journey saw."""

    project: str
    user: dict[str, Any]
    event: dict[str, Any]
    notes: list[dict[str, Any]]


def journey(stack: Stack, accounts: list[Account], start: threading.Barrier) -> Outcome:
    """Sign up, subscribe to events, write a note named after the stack, read everything back."""
    with DemoApi(stack) as api:
        start.wait(timeout=JOURNEY_TIMEOUT_S)  # both runs go through the same steps at once
        users = [api.register(account) for account in accounts]
        token = api.login(accounts[0])
        with api.events(token) as socket:
            note = {"title": f"written in {stack.berth.project}", "body": "isolation"}
            created = api.backend.post("/notes", json=note, headers=bearer(token))
            assert created.status_code == 201, created.text
            event = next_event(socket)
        notes = api.backend.get("/notes", headers=bearer(token)).json()
    return Outcome(project=stack.berth.project, user=users[0], event=event, notes=notes)


def test_the_same_journey_runs_in_two_berths_at_once(dockyard_stack: Stack) -> None:
    accounts = AccountFactory.build_batch(3)  # the same usernames in both stacks

    with running_stack() as other:
        assert other.berth.index != dockyard_stack.berth.index
        assert other.berth.project != dockyard_stack.berth.project
        start = threading.Barrier(2)
        with ThreadPoolExecutor(max_workers=2) as pool:
            runs = [pool.submit(journey, stack, accounts, start) for stack in (dockyard_stack, other)]
            here, there = (run.result(timeout=JOURNEY_TIMEOUT_S) for run in runs)
        other_ports = {host for ports in other.berth.ports.values() for host in ports.values()}

    ours = {host for ports in dockyard_stack.berth.ports.values() for host in ports.values()}
    assert not ours & other_ports, "the two berths share host ports"
    for outcome in (here, there):
        assert [note["title"] for note in outcome.notes] == [f"written in {outcome.project}"]
        assert outcome.event == {"type": "note.created", "note": outcome.notes[0]}
    assert here.user["username"] == there.user["username"] == accounts[0].username
