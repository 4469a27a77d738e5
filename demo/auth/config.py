"""Settings of the auth service, read from the environment once, at startup."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """Auth service settings (the database comes from DATABASE_URL or PG*, see common)."""

    token_secret: bytes
    token_ttl_seconds: int

    @classmethod
    def from_env(cls) -> Settings:
        """Read TOKEN_SECRET (required) and TOKEN_TTL_SECONDS (default one hour)."""
        secret = os.environ.get("TOKEN_SECRET", "")
        if not secret:
            # No default on purpose: a built-in secret would be shared by every deployment.
            raise RuntimeError("TOKEN_SECRET is not set: give the auth service a signing secret")
        ttl = int(os.environ.get("TOKEN_TTL_SECONDS", "3600"))
        return cls(token_secret=secret.encode(), token_ttl_seconds=ttl)
