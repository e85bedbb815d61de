"""Endpoint keys: two random keys per endpoint in a 0600 file, checked in constant time.

Two keys (``primary``, ``secondary``) let clients rotate without downtime: move clients to
the secondary, regenerate the primary. The gateway rereads the file when it changes, so a
regenerated key works (and the old one stops working) on the next request.

>>> store = KeyStore(path)
>>> store.check("Bearer " + read_keys(path)["primary"])
True
"""

from __future__ import annotations

import hmac
import json
import secrets
from pathlib import Path

from chattune.workspace import write_atomic

KEY_TYPES = ("primary", "secondary")


def new_key() -> str:
    """A fresh random key (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def write_keys(path: Path, keys: dict[str, str]) -> None:
    """Save keys readable by the owner only (0600)."""
    write_atomic(path, json.dumps(keys, indent=2), mode=0o600)
    path.chmod(0o600)


def read_keys(path: Path) -> dict[str, str]:
    """``{"primary": ..., "secondary": ...}`` from a keys file."""
    return json.loads(path.read_text())


def key_matches(presented: str, keys: list[str]) -> bool:
    """True when ``presented`` equals one of ``keys``; compares every key, in constant time."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(presented.encode(), key.encode())
    return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class KeyStore:
    """The endpoint's keys file, reread when its modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._keys: list[str] = []

    def keys(self) -> list[str]:
        """The current keys (none when the file is missing: nothing authenticates)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []  # no keys file: nothing authenticates
        stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp != self._stamp:
            stored = read_keys(self.path)
            self._keys = [stored[k] for k in KEY_TYPES if stored.get(k)]
            self._stamp = stamp
        return self._keys

    def check(self, authorization: str | None) -> bool:
        """True when an ``Authorization`` header carries one of the keys."""
        token = bearer_token(authorization)
        return token is not None and key_matches(token, self.keys())
