"""The backend: a per-user notes API with live change events.

    POST   /notes          {title, body}  -> 201 note      (event note.created)
    GET    /notes                         -> 200 [note, ...]
    GET    /notes/{id}                    -> 200 note      (404 not_found)
    PUT    /notes/{id}     {title, body}  -> 200 note      (event note.updated)
    DELETE /notes/{id}                    -> 204           (event note.deleted)
    WS     /events?token=...              -> the caller's events as JSON text messages
    GET    /health                        -> 200 / 503: postgres and redis, auth reported

Every call needs ``Authorization: Bearer <token>``, checked by the auth service (AUTH_URL).
Notes live in PostgreSQL (the ``notes`` table, created at startup); changes go out on Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.exceptions import RedisError

from backend import events, notes
from backend.auth_client import AuthClient, User
from backend.config import Settings
from backend.notes import Note
from common.database import database_status, install_database_error_handler, open_pool
from common.errors import ApiError, install_error_handlers

# WebSocket close codes: 4000-4999 are free for applications; 4401 mirrors HTTP 401.
# 1013 is the standard "try again later".
WS_INVALID_TOKEN = 4401
WS_TRY_AGAIN_LATER = 1013

_HEALTH_TIMEOUT_S = 2.0

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Connect to PostgreSQL, Redis and auth before serving; disconnect on shutdown."""
    settings = Settings.from_env()
    app.state.pool = await open_pool(notes.SCHEMA)
    # No socket_timeout: pub/sub connections legitimately wait a long time for the next event.
    app.state.redis = Redis.from_url(settings.redis_url, decode_responses=True, socket_connect_timeout=2)
    app.state.auth = AuthClient(settings.auth_url)
    try:
        yield
    finally:
        await app.state.auth.close()
        await app.state.redis.close()
        await app.state.pool.close()


app = FastAPI(title="dockyard demo: backend")
# FastAPI 0.92 (Debian bookworm) has no lifespan= argument yet; its router does.
app.router.lifespan_context = lifespan
install_error_handlers(app)
install_database_error_handler(app)


class NoteIn(BaseModel):
    """Body of POST /notes and PUT /notes/{id}."""

    title: str = Field(..., min_length=1, max_length=200)
    body: str = Field("", max_length=10_000)


NoteId = Path(..., gt=0, description="the note's id")


async def current_user(request: Request, authorization: str | None = Header(default=None)) -> User:
    """The caller, as auth vouches for them (401 invalid_token, 503 auth_unavailable)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "invalid_token",
            "expected an 'Authorization: Bearer <token>' header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    auth: AuthClient = request.app.state.auth
    return await auth.verify(token.strip())


def _not_found(note_id: int) -> ApiError:
    return ApiError(404, "not_found", f"note {note_id} does not exist")


@app.post("/notes", status_code=201, response_model=Note)
async def create_note(note_in: NoteIn, request: Request, user: User = Depends(current_user)) -> Note:
    """Create a note for the caller."""
    async with request.app.state.pool.connection() as conn:
        note = await notes.create(conn, user.id, note_in.title, note_in.body)
    # Published after the commit, so a subscriber that reacts with a GET sees the change.
    await events.publish(request.app.state.redis, user.id, "note.created", note)
    return note


@app.get("/notes", response_model=list[Note])
async def list_notes(request: Request, user: User = Depends(current_user)) -> list[Note]:
    """All of the caller's notes, oldest first."""
    async with request.app.state.pool.connection() as conn:
        return await notes.list_all(conn, user.id)


@app.get("/notes/{note_id}", response_model=Note)
async def get_note(request: Request, note_id: int = NoteId, user: User = Depends(current_user)) -> Note:
    """One of the caller's notes."""
    async with request.app.state.pool.connection() as conn:
        note = await notes.get(conn, user.id, note_id)
    if note is None:
        raise _not_found(note_id)
    return note


@app.put("/notes/{note_id}", response_model=Note)
async def update_note(
    note_in: NoteIn, request: Request, note_id: int = NoteId, user: User = Depends(current_user)
) -> Note:
    """Replace the title and body of one of the caller's notes."""
    async with request.app.state.pool.connection() as conn:
        note = await notes.update(conn, user.id, note_id, note_in.title, note_in.body)
    if note is None:
        raise _not_found(note_id)
    await events.publish(request.app.state.redis, user.id, "note.updated", note)
    return note


@app.delete("/notes/{note_id}", status_code=204, response_class=Response)
async def delete_note(request: Request, note_id: int = NoteId, user: User = Depends(current_user)) -> Response:
    """Delete one of the caller's notes."""
    async with request.app.state.pool.connection() as conn:
        deleted = await notes.delete(conn, user.id, note_id)
    if not deleted:
        raise _not_found(note_id)
    await events.publish(request.app.state.redis, user.id, "note.deleted", {"id": note_id})
    return Response(status_code=204)


@app.websocket("/events")
async def note_events(websocket: WebSocket, token: str = Query(default="")) -> None:
    """Stream the token holder's note events.

    Closes with 4401 on a bad token, and with 1013 (try again later) when auth or Redis is down.
    """
    await websocket.accept()
    try:
        user = await websocket.app.state.auth.verify(token)
    except ApiError as exc:
        code = WS_INVALID_TOKEN if exc.status == 401 else WS_TRY_AGAIN_LATER
        # The close reason is limited to 123 bytes.
        await websocket.close(code=code, reason=exc.code)
        return
    try:
        await events.stream(websocket, websocket.app.state.redis, user.id)
    except RedisError:
        log.warning("event stream of user %s lost Redis", user.id, exc_info=True)
        await websocket.close(code=WS_TRY_AGAIN_LATER, reason="events_unavailable")


@app.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when PostgreSQL and Redis answer, else 503; auth is reported but does not count.

    Auth is left out of the verdict on purpose: the backend still runs without it (and says
    so with 503 auth_unavailable), and restarting it would not bring auth back.
    """
    database, redis, auth = await asyncio.gather(
        database_status(request.app.state.pool),
        _redis_status(request.app.state.redis),
        request.app.state.auth.status(),
    )
    healthy = database == "ok" and redis == "ok"
    body = {
        "status": "ok" if healthy else "unavailable",
        "service": "backend",
        "checks": {"database": database, "redis": redis, "auth": auth},
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


async def _redis_status(redis: Redis) -> str:
    try:
        await asyncio.wait_for(redis.ping(), _HEALTH_TIMEOUT_S)
    except (RedisError, OSError, TimeoutError) as exc:
        return f"unavailable: {type(exc).__name__}"
    return "ok"
