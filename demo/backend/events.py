"""Change events: published on Redis, streamed to WebSocket clients.

Each user has one Redis pub/sub channel, ``notes:<user_id>``. An event is a JSON object:

    {"type": "note.created", "note": {...}}     also "note.updated"
    {"type": "note.deleted", "note": {"id": 7}}

A client of ``/events`` first receives ``{"type": "subscribed"}``: from then on the
subscription is live and every later change reaches it, so clients (and tests) wait for that
message instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import WebSocket
from fastapi.encoders import jsonable_encoder
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


def channel(user_id: int) -> str:
    """The pub/sub channel that carries one user's events."""
    return f"notes:{user_id}"


async def publish(redis: Redis, user_id: int, event_type: str, note: Any) -> None:
    """Publish one change; a Redis failure is logged, not raised."""
    message = json.dumps({"type": event_type, "note": jsonable_encoder(note)})
    try:
        await redis.publish(channel(user_id), message)
    except RedisError:
        # The change is already committed: losing its event must not fail the request.
        log.warning("could not publish %s for user %s", event_type, user_id, exc_info=True)


async def stream(websocket: WebSocket, redis: Redis, user_id: int) -> None:
    """Forward the user's events to an accepted ``websocket`` until either side goes away."""
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(channel(user_id))
        await websocket.send_json({"type": "subscribed", "channel": channel(user_id)})
        forward = asyncio.create_task(_forward(pubsub, websocket))
        closed = asyncio.create_task(_wait_for_disconnect(websocket))
        done, pending = await asyncio.wait({forward, closed}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()  # re-raise what ended the stream, if it was an error
    finally:
        # Drops the pub/sub connection, which also ends the subscription on the server.
        await pubsub.reset()


async def _forward(pubsub: PubSub, websocket: WebSocket) -> None:
    async for message in pubsub.listen():
        if message["type"] == "message":
            await websocket.send_text(message["data"])


async def _wait_for_disconnect(websocket: WebSocket) -> None:
    # Clients have nothing to say on this socket; reading is how a close is noticed.
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass
