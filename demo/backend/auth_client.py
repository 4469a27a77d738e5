"""Asks the auth service who holds a bearer token.

The backend never checks tokens itself: auth owns the signing secret and the users. When auth
cannot answer, requests fail with 503 ``auth_unavailable`` rather than a misleading 401 or 500.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from common.errors import ApiError

# Auth answers from memory and one indexed query; anything slower counts as unavailable.
_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class User:
    """The caller, as auth's /verify describes them."""

    id: int
    username: str


class AuthClient:
    """A pooled HTTP client for the auth service."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._http = httpx.AsyncClient(base_url=base_url, timeout=_TIMEOUT_S)

    async def close(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()

    async def verify(self, token: str) -> User:
        """The user holding ``token``; ApiError 401 if auth rejects it, 503 if auth is down."""
        try:
            response = await self._http.get("/verify", headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise self._unavailable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 401:
            try:
                message = str(response.json()["error"]["message"])
            except (ValueError, KeyError, TypeError):
                message = "the token was rejected"
            raise ApiError(401, "invalid_token", message, headers={"WWW-Authenticate": "Bearer"})
        if response.status_code != 200:
            raise self._unavailable(f"/verify answered HTTP {response.status_code}")
        body = response.json()
        return User(id=int(body["user_id"]), username=str(body["username"]))

    async def status(self) -> str:
        """Auth's health in a word: "ok" when its /health answers 200, otherwise the reason."""
        try:
            response = await self._http.get("/health")
        except httpx.HTTPError as exc:
            return f"unavailable: {type(exc).__name__}"
        return "ok" if response.status_code == 200 else f"unavailable: HTTP {response.status_code}"

    def _unavailable(self, reason: str) -> ApiError:
        return ApiError(
            503,
            "auth_unavailable",
            f"the auth service at {self.base_url} is unavailable, so the request cannot be"
            f" authenticated; try again later ({reason})",
        )
