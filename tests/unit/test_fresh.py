"""Fresh state's Redis side for workers sharing a stack: a database each, or a clear error. No Docker.

A fake ``redis`` module stands in for redis-py and the server: it has ``databases`` numbered
databases and answers ``CONFIG GET databases`` unless told CONFIG is disabled.
"""

from __future__ import annotations

import sys
import types
from typing import Any, cast

import pytest

from dockyard.errors import DockyardError
from dockyard.stack.fresh import FreshState
from dockyard.stack.stack import Stack


class ResponseError(Exception):
    """redis-py's error reply."""


class FakeServer:
    def __init__(self, databases: int = 16, *, config: bool = True) -> None:
        self.data: list[dict[str, str]] = [{} for _ in range(databases)]
        self.config = config

    def module(self) -> types.ModuleType:
        server = self

        class Redis:
            def __init__(self, host: str, port: int, db: int = 0, socket_timeout: float = 0) -> None:
                assert (host, port) == ("127.0.0.1", 26379)
                self.db = db

            def _selected(self) -> dict[str, str]:
                if self.db >= len(server.data):
                    raise ResponseError("DB index is out of range")
                return server.data[self.db]

            def config_get(self, name: str) -> dict[str, str]:
                if not server.config:
                    raise ResponseError("unknown command 'CONFIG'")
                self._selected()
                return {name: str(len(server.data))}

            def flushdb(self) -> None:
                self._selected().clear()

            def flushall(self) -> None:
                for db in server.data:
                    db.clear()

            def close(self) -> None:
                pass

        module = types.ModuleType("redis")
        module.Redis = Redis  # type: ignore[attr-defined]
        module.ResponseError = ResponseError  # type: ignore[attr-defined]
        return module


class FakeModel:
    services: dict[str, Any] = {"cache": {"ports": [{"target": 6379}]}}  # noqa: RUF012 - read only

    def environment(self, _name: str) -> dict[str, str]:
        return {}


class FakeStack:
    project = "demo-20000"
    model = FakeModel()

    def address(self, _service: str, _port: int) -> tuple[str, int]:
        return ("127.0.0.1", 26379)


def fresh(server: FakeServer, monkeypatch: pytest.MonkeyPatch, worker: str | None) -> FreshState:
    monkeypatch.setitem(sys.modules, "redis", server.module())
    return FreshState(cast("Stack", FakeStack()), worker=worker)


def test_any_number_of_workers_get_databases_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer(databases=64)
    workers = [fresh(server, monkeypatch, f"gw{n}") for n in range(40)]

    assert len({w.redis_db for w in workers}) == 40
    assert 0 not in {w.redis_db for w in workers}  # database 0 stays the stack's own
    for w in workers:
        w.reset()
        server.data[w.redis_db]["mine"] = str(w.worker)
    workers[0].reset()
    assert server.data[workers[15].redis_db] == {"mine": "gw15"}  # gw0's reset leaves gw15's keys
    assert server.data[workers[0].redis_db] == {}
    assert workers[15].redis_url.endswith(f"/{workers[15].redis_db}")


def test_a_worker_past_the_servers_databases_is_told_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer(databases=16)
    fresh(server, monkeypatch, "gw14").reset()  # database 15, the last of 16

    with pytest.raises(DockyardError) as info:
        fresh(server, monkeypatch, "gw15").reset()

    text = str(info.value)
    assert "gw15 needs Redis database 16" in text
    assert "which has 16 (0-15)" in text
    assert "at most 15 workers (-n 15)" in text
    assert "--databases" in text


def test_without_config_the_servers_select_says_it(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer(databases=16, config=False)
    fresh(server, monkeypatch, "gw3").reset()

    with pytest.raises(DockyardError, match="gw20 needs Redis database 21"):
        fresh(server, monkeypatch, "gw20").reset()


def test_a_session_with_its_own_stack_flushes_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer(databases=2)
    server.data[1]["left"] = "over"
    state = fresh(server, monkeypatch, None)

    state.reset()

    assert state.redis_db == 0
    assert server.data == [{}, {}]


def test_a_worker_without_a_number_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DockyardError, match="worker 'main' has no number"):
        fresh(FakeServer(), monkeypatch, "main")
