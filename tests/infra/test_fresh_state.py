"""Per-test fresh state against the real infra services (PostgreSQL + Redis, no app).

Run through a berth with only the infra compose file, e.g.
``DOCKYARD_COMPOSE_FILES=compose/infra.yml dockyard run -- pytest tests/infra``.
The tests run in file order: each writes, the next one checks that nothing of it is left.
"""

from __future__ import annotations

import psycopg
import pytest
import redis

from dockyard.errors import DockyardError
from dockyard.stack.fresh import FreshState
from dockyard.stack.stack import Stack

pytestmark = pytest.mark.docker


def _rows(fresh: FreshState) -> list[str]:
    with psycopg.connect(fresh.dsn) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS scratch (value text)")
        return [row[0] for row in conn.execute("SELECT value FROM scratch ORDER BY value")]


def test_first_test_writes_rows_and_keys(dockyard_fresh: FreshState) -> None:
    assert _rows(dockyard_fresh) == []
    with psycopg.connect(dockyard_fresh.dsn) as conn:
        conn.execute("INSERT INTO scratch VALUES ('left-by-first')")
    client = redis.Redis.from_url(dockyard_fresh.redis_url)
    client.set("left-by-first", "1")
    assert client.dbsize() == 1
    client.close()
    assert _rows(dockyard_fresh) == ["left-by-first"]


def test_next_test_sees_none_of_it(dockyard_fresh: FreshState) -> None:
    assert _rows(dockyard_fresh) == []
    client = redis.Redis.from_url(dockyard_fresh.redis_url)
    assert client.get("left-by-first") is None
    assert client.dbsize() == 0
    client.close()


def test_schema_from_before_the_snapshot_survives(dockyard_fresh: FreshState) -> None:
    """Tables that existed at snapshot time (the migrations) are in every fresh database."""
    with psycopg.connect(dockyard_fresh.dsn) as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert dockyard_fresh.template in names


@pytest.mark.parametrize("round_", range(40))
def test_reset_is_cheap(dockyard_fresh: FreshState, round_: int) -> None:
    """Many resets, so the end-of-run summary reports a meaningful median."""
    with psycopg.connect(dockyard_fresh.dsn) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS scratch (value text)")
        assert conn.execute("SELECT count(*) FROM scratch").fetchone() == (0,)
        conn.execute("INSERT INTO scratch VALUES (%s)", (f"round-{round_}",))


def test_workers_sharing_the_stack_get_redis_databases_of_their_own(dockyard_stack: Stack) -> None:
    """gw0 and gw14 never flush each other's keys; gw15 (database 16 of Redis's 16) is refused, naming the limit."""
    workers = [FreshState(dockyard_stack, worker=name) for name in ("gw0", "gw14", "gw15")]
    first, last, past = workers
    try:
        first.snapshot()
        last.snapshot()
        assert first.redis_db != last.redis_db
        kept = redis.Redis.from_url(last.redis_url)
        kept.set("of-gw14", "1")
        first.reset()
        assert kept.get("of-gw14") == b"1"
        kept.close()
        with pytest.raises(DockyardError, match=r"gw15 needs Redis database 16 .* which has 16 \(0-15\)"):
            past.snapshot()
    finally:
        for worker in workers:
            worker.close()


def _databases(fresh: FreshState) -> set[str]:
    with psycopg.connect(fresh.dsn) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def test_a_spare_left_by_a_dead_process_is_never_used_and_none_outlives_close(dockyard_stack: Stack) -> None:
    """Resets rename a copy made while the test ran; a stale one (other rows) is dropped first."""
    fresh = FreshState(dockyard_stack, worker="gw7")
    assert fresh.postgres is not None
    try:
        fresh.snapshot()
        fresh.close()  # as a process that ends: its spare goes
        assert fresh.spare not in _databases(FreshState(dockyard_stack))
        with psycopg.connect(fresh.postgres.dsn("postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{fresh.spare}"')  # what a killed process could leave
        with psycopg.connect(fresh.postgres.dsn(fresh.spare)) as conn:
            conn.execute("CREATE TABLE scratch (value text)")
            conn.execute("INSERT INTO scratch VALUES ('stale')")
        again = FreshState(dockyard_stack, worker="gw7")
        try:
            again.snapshot()
            for _ in range(3):
                with psycopg.connect(again.dsn) as conn:
                    conn.execute("CREATE TABLE IF NOT EXISTS scratch (value text)")
                    conn.execute("INSERT INTO scratch VALUES ('written')")
                again.reset()
                assert _rows(again) == []
            assert again.ahead == 3  # the stale spare was dropped, so copies made ahead served every reset
        finally:
            again.close()
        assert again.spare not in _databases(again)
    finally:
        fresh.close()
