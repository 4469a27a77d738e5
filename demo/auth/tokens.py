"""Bearer tokens: an HMAC-SHA256-signed, expiring JSON payload.

Form: ``<payload>.<signature>``, both base64url without padding. The payload holds the user id,
the username and the expiry time. Only the auth service knows the secret, so other services
ask auth's ``/verify`` instead of checking tokens themselves.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Claims:
    """What a valid token says about its holder."""

    user_id: int
    username: str
    expires_at: int


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: str, secret: bytes) -> str:
    return _b64encode(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


def issue_token(user_id: int, username: str, secret: bytes, ttl_seconds: int) -> str:
    """A token for this user that expires ``ttl_seconds`` from now."""
    claims = {"sub": user_id, "name": username, "exp": int(time.time()) + ttl_seconds}
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    return f"{payload}.{_sign(payload, secret)}"


def read_token(token: str, secret: bytes) -> Claims | None:
    """The claims of ``token``, or None if it is malformed, forged or expired."""
    payload, _, signature = token.partition(".")
    if not payload or not hmac.compare_digest(signature, _sign(payload, secret)):
        return None
    try:
        claims = json.loads(_b64decode(payload))
        result = Claims(int(claims["sub"]), str(claims["name"]), int(claims["exp"]))
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
    return result if result.expires_at > time.time() else None
