"""SQL for the ``notes`` table, which the backend owns.

Every query is scoped to one user: a note id that belongs to someone else behaves exactly like
one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import BaseModel

# No foreign key to auth's ``users``: each service owns its own tables, and user ids come from
# auth's /verify.
SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL,
    title      text NOT NULL,
    body       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS notes_user_id_idx ON notes (user_id);
"""


class Note(BaseModel):
    """A note as the API returns it."""

    id: int
    title: str
    body: str
    created_at: datetime
    updated_at: datetime


async def _one(conn: AsyncConnection[Any], query: str, params: tuple[Any, ...]) -> Note | None:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(query, params)
    row = await cursor.fetchone()
    return Note(**row) if row is not None else None


async def create(conn: AsyncConnection[Any], user_id: int, title: str, body: str) -> Note:
    """Insert a note and return it as stored."""
    note = await _one(
        conn,
        "INSERT INTO notes (user_id, title, body) VALUES (%s, %s, %s)"
        " RETURNING id, title, body, created_at, updated_at",
        (user_id, title, body),
    )
    if note is None:  # INSERT ... RETURNING always returns the row; this is for the type checker
        raise RuntimeError("INSERT INTO notes returned no row")
    return note


async def list_all(conn: AsyncConnection[Any], user_id: int) -> list[Note]:
    """All of the user's notes, oldest first."""
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        "SELECT id, title, body, created_at, updated_at FROM notes WHERE user_id = %s ORDER BY id", (user_id,)
    )
    return [Note(**row) for row in await cursor.fetchall()]


async def get(conn: AsyncConnection[Any], user_id: int, note_id: int) -> Note | None:
    """The user's note ``note_id``, or None."""
    return await _one(
        conn,
        "SELECT id, title, body, created_at, updated_at FROM notes WHERE id = %s AND user_id = %s",
        (note_id, user_id),
    )


async def update(conn: AsyncConnection[Any], user_id: int, note_id: int, title: str, body: str) -> Note | None:
    """Replace title and body of the user's note ``note_id``; None if there is none."""
    return await _one(
        conn,
        "UPDATE notes SET title = %s, body = %s, updated_at = now() WHERE id = %s AND user_id = %s"
        " RETURNING id, title, body, created_at, updated_at",
        (title, body, note_id, user_id),
    )


async def delete(conn: AsyncConnection[Any], user_id: int, note_id: int) -> bool:
    """Delete the user's note ``note_id``; False if there was none."""
    cursor = await conn.execute("DELETE FROM notes WHERE id = %s AND user_id = %s", (note_id, user_id))
    return cursor.rowcount == 1
