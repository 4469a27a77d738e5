"""The auth service: register, log in, verify bearer tokens.

    POST /register  {username, password}  -> 201 {id, username}   (409 username_taken)
    POST /login     {username, password}  -> 200 {token, token_type, expires_in}
    GET  /verify    Authorization: Bearer -> 200 {user_id, username}  (401 invalid_token)
    GET  /health                          -> 200 / 503 with the database's status

Users live in PostgreSQL, in the ``users`` table this service creates at startup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from auth.config import Settings
from auth.passwords import DUMMY_HASH, hash_password, verify_password
from auth.tokens import issue_token, read_token
from common.database import database_status, install_database_error_handler, open_pool
from common.errors import ApiError, install_error_handlers

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
)
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Read settings and open the database before serving; close it on shutdown."""
    app.state.settings = Settings.from_env()
    app.state.pool = await open_pool(SCHEMA)
    try:
        yield
    finally:
        await app.state.pool.close()


app = FastAPI(title="dockyard demo: auth")
# FastAPI 0.92 (Debian bookworm) has no lifespan= argument yet; its router does.
app.router.lifespan_context = lifespan
install_error_handlers(app)
install_database_error_handler(app)


class Credentials(BaseModel):
    """Body of /register and /login."""

    username: str = Field(..., min_length=3, max_length=64, regex=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(..., min_length=8, max_length=256)


class User(BaseModel):
    """A registered user, as /register returns it."""

    id: int
    username: str


class Token(BaseModel):
    """What /login returns."""

    token: str
    token_type: str = "bearer"  # noqa: S105 -- the token type, not a password
    expires_in: int


class Identity(BaseModel):
    """What /verify returns: who holds the token."""

    user_id: int
    username: str


def _invalid_token(message: str) -> ApiError:
    return ApiError(401, "invalid_token", message, headers={"WWW-Authenticate": "Bearer"})


@app.post("/register", status_code=201, response_model=User)
async def register(credentials: Credentials, request: Request) -> User:
    """Create an account; the username must not be taken."""
    # scrypt is deliberately slow: keep it off the event loop.
    password_hash = await run_in_threadpool(hash_password, credentials.password)
    async with request.app.state.pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO users (username, password_hash) VALUES (%s, %s)"
            " ON CONFLICT (username) DO NOTHING RETURNING id",
            (credentials.username, password_hash),
        )
        row = await cursor.fetchone()
    if row is None:
        raise ApiError(409, "username_taken", f"username {credentials.username!r} is taken")
    return User(id=row[0], username=credentials.username)


@app.post("/login", response_model=Token)
async def login(credentials: Credentials, request: Request) -> Token:
    """Exchange a username and password for a bearer token."""
    async with request.app.state.pool.connection() as conn:
        cursor = await conn.execute("SELECT id, password_hash FROM users WHERE username = %s", (credentials.username,))
        row = await cursor.fetchone()
    user_id, stored = row if row is not None else (None, DUMMY_HASH)
    password_ok = await run_in_threadpool(verify_password, credentials.password, stored)
    if user_id is None or not password_ok:
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    settings: Settings = request.app.state.settings
    token = issue_token(user_id, credentials.username, settings.token_secret, settings.token_ttl_seconds)
    return Token(token=token, expires_in=settings.token_ttl_seconds)


@app.get("/verify", response_model=Identity)
async def verify(request: Request, authorization: str | None = Header(default=None)) -> Identity:
    """Who holds this bearer token; 401 if it is missing, forged, expired or its user is gone."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _invalid_token("expected an 'Authorization: Bearer <token>' header")
    claims = read_token(token.strip(), request.app.state.settings.token_secret)
    if claims is None:
        raise _invalid_token("the token is malformed, forged or expired")
    async with request.app.state.pool.connection() as conn:
        cursor = await conn.execute("SELECT username FROM users WHERE id = %s", (claims.user_id,))
        row = await cursor.fetchone()
    if row is None:
        raise _invalid_token("the token's user no longer exists")
    return Identity(user_id=claims.user_id, username=row[0])


@app.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when the database answers, 503 otherwise; the body says which check failed."""
    database = await database_status(request.app.state.pool)
    healthy = database == "ok"
    body = {"status": "ok" if healthy else "unavailable", "service": "auth", "checks": {"database": database}}
    return JSONResponse(body, status_code=200 if healthy else 503)
