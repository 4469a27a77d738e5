"""Fresh state per test: dockyard's reset against recreating the database container.

In one berth of the infra stack (PostgreSQL + Redis): A is ``FreshState.reset()``, what the
``dockyard_fresh`` fixture runs before each test (the database dropped and created again from
its template, Redis flushed); B is ``docker compose up -d --force-recreate --no-deps --wait
postgres`` in the same berth. The database first gets three tables of 1,000 rows (as
migrations would), and before every reset a "test" writes rows and keys (untimed), so each
reset has something to undo. In process: a pytest run per sample would time pytest.
"""

from __future__ import annotations

import os
from typing import Any

from bench import ROOT, BenchError
from bench.host import INFRA_FILES, compose_cmd, compose_env, resources
from bench.procs import run
from bench.samples import Bench

UP_TIMEOUT = 300.0


def _seed(fresh: Any) -> None:
    """Give the database something to copy: a few tables, a few thousand rows, like migrations would."""
    import psycopg  # noqa: PLC0415 - only this measurement talks to PostgreSQL

    with psycopg.connect(fresh.dsn, autocommit=True) as conn:
        for table in ("accounts", "notes", "events"):
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id serial PRIMARY KEY, body text, at timestamptz)")
            rows = "SELECT md5(i::text), now() FROM generate_series(1, 1000) i"
            conn.execute(f"INSERT INTO {table} (body, at) {rows}")
            conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_body ON {table} (body)")


def _dirty(fresh: Any) -> None:
    """What a test leaves behind (untimed): rows and keys the next reset has to undo."""
    import psycopg  # noqa: PLC0415 - only this measurement talks to PostgreSQL
    import redis  # noqa: PLC0415 - and to Redis

    with psycopg.connect(fresh.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO notes (body, at) SELECT 'left by a test', now() FROM generate_series(1, 50)")
    client = redis.Redis.from_url(fresh.redis_url, socket_timeout=5)
    try:
        client.mset({f"session:{i}": "x" * 64 for i in range(50)})
    finally:
        client.close()


def measure_fresh(bench: Bench, round_: int) -> None:
    """Resets from the template (A) and recreating postgres (B), interleaved, in one berth."""
    from dockyard import FreshState, Stack, acquire_berth, load_settings  # noqa: PLC0415 - measured in process

    settings = load_settings(ROOT, env={**os.environ, "DOCKYARD_COMPOSE_FILES": ",".join(INFRA_FILES)})
    resets = 5 if bench.quick else 10
    steps = ["reset", "recreate", "reset", "recreate"]
    if round_ % 2:
        steps = steps[1:] + steps[:1]  # recreate first in odd rounds
    with acquire_berth(settings, with_ports=False) as berth:
        stack = Stack(settings, berth)
        fresh: Any = None
        try:
            stack.up(build=False)
            for step in steps:
                if step == "reset":
                    if fresh is None:
                        fresh = FreshState(stack)
                        _seed(fresh)
                        fresh.snapshot()
                    for _ in range(resets):
                        _dirty(fresh)
                        bench.add("fresh.reset", fresh.reset() * 1000)
                else:
                    if fresh is not None:
                        fresh.close()  # its connection dies with the container
                        fresh = None
                    files = [*settings.compose_files, stack.override_path]
                    args = ("up", "-d", "--force-recreate", "--no-deps", "--wait", "--no-build", "--pull", "never")
                    cmd = compose_cmd(stack.project, files, *args, "postgres")
                    proc = run(cmd, timeout=UP_TIMEOUT, env=compose_env()).check()
                    bench.add_proc("fresh.recreate", proc, scale=1000)
        finally:
            if fresh is not None:
                fresh.close()
            stack.down()
        if left := resources(f"dockyard.lease={berth.record.lease_id}"):
            raise BenchError(f"infra stack down left {left}")
