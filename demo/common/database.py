"""The PostgreSQL connection pool both services use.

Connection settings come from ``DATABASE_URL`` when it is set, and otherwise from libpq's own
``PG*`` variables (PGHOST, PGUSER, PGPASSWORD, PGDATABASE, ...), which psycopg reads itself.
"""

from __future__ import annotations

import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg import OperationalError
from psycopg_pool import AsyncConnectionPool

from common.errors import error_response

# A health check or request should fail fast rather than queue behind a dead database.
_CONNECT_TIMEOUT_S = 2
# How long a starting service waits for the database before it gives up and exits.
_STARTUP_TIMEOUT_S = 30.0


def conninfo_from_env() -> str:
    """``DATABASE_URL``, or "" so that libpq falls back to the PG* variables."""
    return os.environ.get("DATABASE_URL", "")


async def open_pool(schema: str) -> AsyncConnectionPool:
    """Open a small pool, waiting for the database, and make sure ``schema`` exists.

    ``schema`` is idempotent DDL (``CREATE TABLE IF NOT EXISTS ...``): each service creates
    the tables it owns when it starts.
    """
    pool = AsyncConnectionPool(
        conninfo_from_env(),
        min_size=1,
        max_size=5,
        timeout=_CONNECT_TIMEOUT_S,
        kwargs={"connect_timeout": _CONNECT_TIMEOUT_S},
        open=False,
    )
    # wait=True: a service that cannot reach its database fails its start, loudly.
    await pool.open(wait=True, timeout=_STARTUP_TIMEOUT_S)
    try:
        async with pool.connection() as conn:
            await conn.execute(schema)
    except BaseException:
        await pool.close()
        raise
    return pool


async def database_status(pool: AsyncConnectionPool) -> str:
    """The database's health in a word: "ok" if a trivial query succeeds, otherwise the reason."""
    try:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 -- a health check reports any failure, never raises
        return f"unavailable: {type(exc).__name__}"
    return "ok"


def install_database_error_handler(app: FastAPI) -> None:
    """Answer 503 ``database_unavailable`` when a request cannot reach PostgreSQL."""

    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        message = f"the database is unavailable ({type(exc).__name__})"
        return error_response(503, "database_unavailable", message)

    # Covers psycopg_pool.PoolTimeout too, which subclasses OperationalError.
    app.add_exception_handler(OperationalError, _unavailable)
