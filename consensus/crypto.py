"""Signing and verification as seen by the replica: injected, never imported.

The replica signs its own messages through a ``Signer`` and checks everyone
else's through a ``Verifier``; both work on the canonical signing bytes of
``messages.py``. The daemon passes Ed25519 (PyNaCl) implementations; the
simulator may pass a cheap keyed-hash stand-in so that large clusters run fast.
"""

from __future__ import annotations

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
