from __future__ import annotations

import hmac

import pytest

from lollms_server.config import ApiKeyEntry
from lollms_server.security import keys as keys_module
from lollms_server.security.keys import KeyStore, generate_key, hash_key


def test_generated_keys_are_unique_and_long() -> None:
    a, b = generate_key(), generate_key()
    assert a != b
    assert len(a) >= 40


def test_verify_by_plain_key_and_by_hash() -> None:
    k1, k2 = generate_key(), generate_key()
    store = KeyStore(
        [
            ApiKeyEntry(name="plain", key=k1),
            ApiKeyEntry(name="hashed", sha256=hash_key(k2)),
        ]
    )
    assert store.verify(k1) == "plain"
    assert store.verify(k2) == "hashed"
    assert store.verify(k1 + "x") is None
    assert store.verify("") is None
    assert store.verify(None) is None
    assert store.names == ["plain", "hashed"]


def test_every_stored_digest_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant time: a match on the first key still compares against all the others."""
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    keys = [generate_key() for _ in range(5)]
    store = KeyStore([ApiKeyEntry(name=f"k{i}", key=k) for i, k in enumerate(keys)])
    monkeypatch.setattr(keys_module.hmac, "compare_digest", counting)
    assert store.verify(keys[0]) == "k0"
    assert len(calls) == 5
    calls.clear()
    assert store.verify("wrong") is None
    assert len(calls) == 5


def test_store_keeps_no_plain_key() -> None:
    key = generate_key()
    store = KeyStore([ApiKeyEntry(name="a", key=key)])
    assert key not in repr(vars(store))
