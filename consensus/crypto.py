"""Signing and verification as seen by the replica: injected, never imported.

The replica signs its own messages through a ``Signer`` and checks everyone
else's through a ``Verifier``; both work on the canonical signing bytes of
``messages.py``. The daemon passes Ed25519 (PyNaCl) implementations; the
simulator may pass a cheap keyed-hash stand-in so that large clusters run fast.
"""

from __future__ import annotations

import hashlib
from typing import Protocol


class Signer(Protocol):
    def sign(self, data: bytes) -> bytes: ...


class Verifier(Protocol):
    def verify(self, validator: int, data: bytes, sig: bytes) -> bool:
        """True when ``sig`` is ``validator``'s signature over ``data``."""
        ...


class PayloadRules(Protocol):
    """What the replica needs to know about the opaque transactions it orders."""

    def payload_root(self, payload: tuple[bytes, ...]) -> bytes:
        """The Merkle root a proposal commits to for this payload."""
        ...

    def request_id(self, request: bytes) -> bytes:
        """The identity of one request (a transaction hash)."""
        ...

    def payload_valid(self, payload: tuple[bytes, ...]) -> bool:
        """False when a proposed payload holds a request no honest primary would propose."""
        ...


class CachingVerifier:
    """A ``Verifier`` that remembers signatures that checked out.

    A replayed message, or a certificate seen again inside a VIEW-CHANGE or
    NEW-VIEW, then costs a hash and a dict lookup instead of a signature
    check. Only successes are kept (a flood of bad signatures cannot evict
    good ones faster than the daemon disconnects its sender), at most
    ``size`` of them, the oldest forgotten first. The key binds the validator,
    the SHA-256 of the signed bytes and the signature.
    """

    def __init__(self, inner: Verifier, size: int = 16_384) -> None:
        self._inner = inner
        self._size = size
        self._ok: dict[tuple[int, bytes, bytes], None] = {}

    def verify(self, validator: int, data: bytes, sig: bytes) -> bool:
        key = (validator, hashlib.sha256(data).digest(), sig)
        if key in self._ok:
            return True
        if not self._inner.verify(validator, data, sig):
            return False
        self._ok[key] = None
        if len(self._ok) > self._size:
            del self._ok[next(iter(self._ok))]
        return True
