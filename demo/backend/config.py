"""Settings of the backend, read from the environment once, at startup."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """Backend settings (the database comes from DATABASE_URL or PG*, see common)."""

    redis_url: str
    auth_url: str

    @classmethod
    def from_env(cls) -> Settings:
        """Read REDIS_URL and AUTH_URL; the defaults suit a service run on the host."""
        return cls(
            redis_url=os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
            auth_url=os.environ.get("AUTH_URL", "http://localhost:8001").rstrip("/"),
        )
