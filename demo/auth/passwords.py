"""Password hashing with the standard library's scrypt.

Stored form: ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (salt and hash base64), so the cost
parameters travel with each hash and can be raised later without breaking old accounts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# 2**14 is the interactive-login cost recommended by the scrypt paper (16 MiB, ~50 ms).
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r, dklen=_KEY_BYTES)


def hash_password(password: str) -> str:
    """A new salted hash of ``password`` in the stored form."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, _N, _R, _P)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(key).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    return hmac.compare_digest(candidate, base64.b64decode(key))


# Checked against when a username does not exist, so that a login for an unknown user takes as
# long as one with a wrong password and response times do not reveal which usernames exist.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
