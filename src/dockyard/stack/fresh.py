"""Per-test fresh state in milliseconds: PostgreSQL from a template, Redis flushed.

Restarting containers between tests costs seconds; copying a database costs milliseconds.
After the stack is healthy (its services have run their migrations), the database is
snapshotted once as ``<db>_dockyard_template``; before each test it is dropped and replaced
by a copy of that template, and Redis is flushed. The copy for the next test is made while
this one runs (``<db>_dockyard_spare``, on a connection of its own), so a reset is a drop and
a rename (~4 ms), not a drop and a copy (~11 ms); a spare exists only inside one process's
session and is dropped when it closes.

The services are found in the compose config, with no configuration: PostgreSQL is the
service publishing 5432 (user, password and database from its ``POSTGRES_*`` environment),
Redis the one publishing 6379. With ``worker`` set (xdist workers sharing one stack), each
worker gets its own database cloned from the template and its own Redis database: ``gwN``
gets number N + 1 (0 stays the stack's own). A Redis server has a fixed number of databases
(16 unless ``--databases`` says otherwise); a worker past them is an error saying so, never
a database shared with another worker.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.stack.stack import Stack

_NAME_MAX = 63  # bytes of a PostgreSQL identifier
_TEMPLATE_LOCK = 0x646F636B  # pg advisory lock id ("dock"): one worker creates the template


@dataclass(frozen=True)
class Postgres:
    """Where the stack's PostgreSQL is, as this process reaches it (``Stack.address``)."""

    host: str
    port: int
    user: str
    password: str
    database: str

    def dsn(self, database: str | None = None) -> str:
        """A libpq connection string for ``database`` (default: the service's own)."""
        return (
            f"host={self.host} port={self.port} user={self.user} password={self.password} "
            f"dbname={database or self.database} connect_timeout=5"
        )


def _find(stack: Stack) -> tuple[Postgres | None, tuple[str, int] | None]:
    postgres = redis = None
    for name, svc in stack.model.services.items():
        targets = {int(p["target"]) for p in svc.get("ports", [])}
        if 5432 in targets and postgres is None:
            env = stack.model.environment(name)
            user = str(env.get("POSTGRES_USER") or "postgres")
            host, port = stack.address(name, 5432)
            postgres = Postgres(
                host=host,
                port=port,
                user=user,
                password=str(env.get("POSTGRES_PASSWORD") or ""),
                database=str(env.get("POSTGRES_DB") or user),
            )
        if 6379 in targets and redis is None:
            redis = stack.address(name, 6379)
    return postgres, redis


def _redis_database(worker: str | None) -> int:
    """The Redis database of ``worker``: 0 for a stack of its own, N + 1 for xdist worker ``gwN``."""
    if not worker:
        return 0
    number = re.search(r"\d+$", worker)
    if number is None:
        raise DockyardError(
            f"worker {worker!r} has no number to choose its Redis database by",
            remedy="name workers as pytest-xdist does (gw0, gw1, ...)",
        )
    return int(number.group()) + 1


class FreshState:
    """Resets a stack's PostgreSQL and Redis to the snapshot taken after start-up."""

    def __init__(self, stack: Stack, worker: str | None = None, *, redis_db_only: bool = False) -> None:
        """``redis_db_only``: flush only this process's Redis database, never the others (a shared stack)."""
        self.stack = stack
        self.postgres, self.redis_address = _find(stack)
        if self.postgres is None and self.redis_address is None:
            raise DockyardError(
                f"no PostgreSQL (5432) or Redis (6379) service is published by {stack.project}",
                remedy="fresh state works on a service publishing 5432 and/or 6379",
            )
        self.worker = worker
        self.redis_db_only = redis_db_only or worker is not None
        self.timings: list[float] = []
        # Kept open between resets: a new authenticated connection costs as much as the copy.
        self._conn: Any = None
        self._redis: Any = None
        base = self.postgres.database if self.postgres else ""
        self.template = f"{base}_dockyard_template"
        # Shared stack: a database per worker; own stack: the service's database itself.
        self.database = f"{base}_{re.sub(r'[^a-z0-9_]', '_', worker.lower())}" if worker else base
        self.spare = f"{self.database}_dockyard_spare"
        # PostgreSQL cuts names at 63 bytes: a cut spare name could be the cut template's.
        self._spares = len(self.spare.encode()) <= _NAME_MAX and len(self.template.encode()) <= _NAME_MAX
        self._spare_conn: Any = None
        self._spare_pool: ThreadPoolExecutor | None = None
        self._spare_made: Future[None] | None = None  # the copy for the next reset, being made
        self.ahead = 0  # resets served by a copy made while the test before ran
        self.redis_db = _redis_database(worker) if self.redis_address is not None else 0

    @property
    def dsn(self) -> str:
        """Connection string of this test's database."""
        if self.postgres is None:
            raise DockyardError(f"{self.stack.project} publishes no PostgreSQL (5432)")
        return self.postgres.dsn(self.database)

    @property
    def redis_url(self) -> str:
        """URL of this test's Redis database."""
        if self.redis_address is None:
            raise DockyardError(f"{self.stack.project} publishes no Redis (6379)")
        host, port = self.redis_address
        return f"redis://{host}:{port}/{self.redis_db}"

    def _admin(self) -> Any:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            import psycopg  # noqa: PLC0415 - optional: only projects with PostgreSQL need it
        except ImportError:
            raise DockyardError(
                "fresh state for PostgreSQL needs psycopg", remedy="pip install 'psycopg[binary]'"
            ) from None
        assert self.postgres is not None  # noqa: S101 - callers check; narrows the type
        self._conn = psycopg.connect(self.postgres.dsn("postgres"), autocommit=True)
        return self._conn

    def close(self) -> None:
        """Drop the spare copy and close the connections kept between resets."""
        if self._spare_made is not None:
            with contextlib.suppress(Exception):  # closing: the stack may be gone already
                self._take_spare()
                self._admin().execute(f'DROP DATABASE IF EXISTS "{self.spare}"')
        if self._spare_pool is not None:
            self._spare_pool.shutdown(wait=True)
            self._spare_pool = None
        for client in (self._conn, self._spare_conn, self._redis):
            if client is not None:
                client.close()
        self._conn = self._spare_conn = self._redis = None

    def _make_spare(self) -> None:
        """On the spare connection: a copy of the template, for the next reset."""
        if self._spare_conn is None or self._spare_conn.closed:
            import psycopg  # noqa: PLC0415 - optional: only projects with PostgreSQL need it

            assert self.postgres is not None  # noqa: S101 - reset() checks; narrows the type
            self._spare_conn = psycopg.connect(self.postgres.dsn("postgres"), autocommit=True)
        self._spare_conn.execute(f'DROP DATABASE IF EXISTS "{self.spare}"')  # a killed process may have left one
        self._spare_conn.execute(f'CREATE DATABASE "{self.spare}" TEMPLATE "{self.template}" STRATEGY FILE_COPY')

    def _take_spare(self) -> bool:
        """Wait for the spare being made; whether there is one."""
        made, self._spare_made = self._spare_made, None
        if made is None:
            return False
        try:
            made.result()
        except Exception:  # noqa: BLE001 - a failed copy is made again, in the foreground
            return False
        return True

    def snapshot(self) -> None:
        """Take the template once (after migrations), and make this worker's database."""
        if self.postgres is None:
            return
        conn = self._admin()
        conn.execute("SELECT pg_advisory_lock(%s)", (_TEMPLATE_LOCK,))
        try:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.template,)).fetchone()
            if not exists:
                # The source must have no other sessions while it is copied.
                self._terminate(conn, self.postgres.database)
                conn.execute(f'CREATE DATABASE "{self.template}" TEMPLATE "{self.postgres.database}"')
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_TEMPLATE_LOCK,))
        self.reset()
        self.timings.clear()

    def preserve(self, name: str) -> str | None:
        """Copy this test's database as ``name`` (its rows, for debugging a failure); the copy's DSN.

        None without PostgreSQL. The database's other sessions are ended first, as a copy needs.
        """
        if self.postgres is None:
            return None
        conn = self._admin()
        self._terminate(conn, self.database)
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.database}" STRATEGY FILE_COPY')
        return self.postgres.dsn(name)

    def drop_template(self) -> None:
        """Drop the template (and this process's copy of it), so that the next :meth:`snapshot` takes it anew."""
        if self.postgres is not None:
            self._take_spare()
            self._admin().execute(f'DROP DATABASE IF EXISTS "{self.spare}"')
            self._admin().execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')

    @staticmethod
    def _terminate(conn: Any, database: str) -> None:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )

    def reset(self) -> float:
        """Restore the database from the template and flush Redis; seconds it took."""
        started = time.perf_counter()
        if self.postgres is not None:
            conn = self._admin()
            spare = self._take_spare()
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            if spare:
                conn.execute(f'ALTER DATABASE "{self.spare}" RENAME TO "{self.database}"')
                self.ahead += 1
            else:
                # FILE_COPY copies the few files of a small database at once; the default
                # WAL_LOG strategy writes every block through the WAL, several times slower here.
                conn.execute(f'CREATE DATABASE "{self.database}" TEMPLATE "{self.template}" STRATEGY FILE_COPY')
            if self._spares:
                if self._spare_pool is None:
                    self._spare_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dockyard-spare")
                self._spare_made = self._spare_pool.submit(self._make_spare)
        if self.redis_address is not None:
            self._flush_redis()
        elapsed = time.perf_counter() - started
        self.timings.append(elapsed)
        return elapsed

    def _flush_redis(self) -> None:
        try:
            import redis  # noqa: PLC0415 - optional: only projects with Redis need it
        except ImportError:
            raise DockyardError("fresh state for Redis needs redis-py", remedy="pip install redis") from None
        if self._redis is None:
            assert self.redis_address is not None  # noqa: S101 - reset() checks; narrows the type
            host, port = self.redis_address
            if self.redis_db:
                self._check_databases(redis.Redis(host=host, port=port, socket_timeout=5))
            self._redis = redis.Redis(host=host, port=port, db=self.redis_db, socket_timeout=5)
        if not self.worker and not self.redis_db_only:
            self._redis.flushall()
            return
        try:
            self._redis.flushdb()
        except redis.ResponseError as exc:
            # Only where CONFIG is disabled (a managed Redis) does the server's SELECT find out.
            if "DB index" not in str(exc):
                raise
            raise self._too_few(None) from exc

    def _check_databases(self, admin: Any) -> None:
        """Fail unless the server has this worker's database (``CONFIG GET databases``)."""
        import redis  # noqa: PLC0415 - optional: only projects with Redis need it

        try:
            limit = int(admin.config_get("databases")["databases"])
        except (redis.ResponseError, KeyError, ValueError):
            return  # CONFIG renamed or disabled: SELECT will tell, on the first flush
        finally:
            admin.close()
        if self.redis_db >= limit:
            raise self._too_few(limit)

    def _too_few(self, limit: int | None) -> DockyardError:
        assert self.redis_address is not None  # noqa: S101 - only called with Redis; narrows the type
        host, port = self.redis_address
        has = f"which has {limit} (0-{limit - 1})" if limit is not None else "which has fewer"
        workers = f"at most {limit - 1} workers (-n {limit - 1})" if limit is not None else "fewer workers"
        return DockyardError(
            f"xdist worker {self.worker} needs Redis database {self.redis_db} of {self.stack.project}'s "
            f"Redis at {host}:{port}, {has}: each worker sharing the stack has one of its own, after database 0",
            remedy=f"share the stack between {workers}, or give the Redis service more databases "
            "(`redis-server --databases <workers + 1>` in its command)",
        )

    def summary(self) -> str:
        """Median and worst reset time, for the end of the run."""
        if not self.timings:
            return "no fresh-state resets"
        median = statistics.median(self.timings) * 1000
        return f"{len(self.timings)} fresh-state resets, median {median:.1f} ms, max {max(self.timings) * 1000:.1f} ms"
