"""API keys: generation, hashing and constant-time verification.

Only sha256 digests are kept in memory; a presented key is hashed and compared with
``hmac.compare_digest`` against *every* stored digest, so timing reveals neither which key
matched nor how much of it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from lollms_server.config import ApiKeyEntry

__all__ = ["KEY_PREFIX", "KeyStore", "generate_key", "hash_key"]

KEY_PREFIX = "lollms_"


def generate_key() -> str:
    """A new random key (256 bits of entropy), recognisable by its prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _StoredKey:
    name: str
    digest: bytes


class KeyStore:
    """The set of accepted keys, by name, held as digests."""

    def __init__(self, entries: Iterable[ApiKeyEntry] = ()) -> None:
        keys: list[_StoredKey] = []
        for entry in entries:
            hexdigest = entry.sha256 or hash_key(entry.key.get_secret_value())  # type: ignore[union-attr]
            keys.append(_StoredKey(entry.name, bytes.fromhex(hexdigest)))
        self._keys = tuple(keys)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def names(self) -> list[str]:
        return [k.name for k in self._keys]

    def verify(self, presented: str | None) -> str | None:
        """Return the name of the matching key, or None. Constant time in the key's content."""
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        matched: str | None = None
        for stored in self._keys:
            # No early exit: every digest is compared whatever the outcome.
            if hmac.compare_digest(digest, stored.digest):
                matched = stored.name
        return matched
