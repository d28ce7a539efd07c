"""Signers and verifiers for simulated clusters.

``KeyedHashScheme`` is the cheap stand-in: a validator's "signature" is a
16-byte BLAKE2b MAC under its secret, which every verifier of the simulation
knows. It is unforgeable by the simulated Byzantine nodes (they never read
other nodes' secrets) and costs about a microsecond. ``Ed25519Scheme`` uses the
real PyNaCl signatures for runs that want the real cost.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

import nacl.exceptions
import nacl.signing

from consensus.crypto import Verifier
from consensus.merkle import merkle_root


class KeyedHashSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=self._secret, digest_size=16).digest()


class KeyedHashVerifier:
    def __init__(self, secrets: Sequence[bytes]) -> None:
        self._secrets = list(secrets)

    def verify(self, validator: int, data: bytes, sig: bytes) -> bool:
        if not 0 <= validator < len(self._secrets):
            return False
        want = hashlib.blake2b(data, key=self._secrets[validator], digest_size=16).digest()
        return hmac.compare_digest(want, sig)


class KeyedHashScheme:
    """Deterministic per-validator secrets derived from the run's seed."""

    def __init__(self, n: int, seed: int) -> None:
        self.secrets = [hashlib.sha256(f"sim-key/{seed}/{i}".encode()).digest() for i in range(n)]

    def signer(self, i: int) -> KeyedHashSigner:
        return KeyedHashSigner(self.secrets[i])

    def verifier(self) -> KeyedHashVerifier:
        return KeyedHashVerifier(self.secrets)


class Ed25519Verifier:
    def __init__(self, public_keys: Sequence[bytes]) -> None:
        self._keys = [nacl.signing.VerifyKey(k) for k in public_keys]

    def verify(self, validator: int, data: bytes, sig: bytes) -> bool:
        if not 0 <= validator < len(self._keys):
            return False
        try:
            self._keys[validator].verify(data, sig)
        except (nacl.exceptions.BadSignatureError, ValueError):
            return False
        return True


class Ed25519Signer:
    def __init__(self, key: nacl.signing.SigningKey) -> None:
        self._key = key

    def sign(self, data: bytes) -> bytes:
        return bytes(self._key.sign(data).signature)


class Ed25519Scheme:
    """Real Ed25519 keys, seeded deterministically from the run's seed."""

    def __init__(self, n: int, seed: int) -> None:
        self.keys = [
            nacl.signing.SigningKey(hashlib.sha256(f"sim-ed25519/{seed}/{i}".encode()).digest())
            for i in range(n)
        ]

    def signer(self, i: int) -> Ed25519Signer:
        return Ed25519Signer(self.keys[i])

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier([bytes(k.verify_key) for k in self.keys])


class IndexedVerifier:
    """One epoch's ``Verifier``: validator index i is node ``nodes[i]`` of a
    verifier that knows every node by its node id."""

    __slots__ = ("_inner", "_nodes")

    def __init__(self, inner: Verifier, nodes: tuple[int, ...]) -> None:
        self._inner = inner
        self._nodes = nodes

    def verify(self, validator: int, data: bytes, sig: bytes) -> bool:
        if not 0 <= validator < len(self._nodes):
            return False
        return self._inner.verify(self._nodes[validator], data, sig)


class SimPayloadRules:
    """Simulated requests are opaque bytes; their id is their SHA-256."""

    def payload_root(self, payload: tuple[bytes, ...]) -> bytes:
        return merkle_root([hashlib.sha256(r).digest() for r in payload])

    def request_id(self, request: bytes) -> bytes:
        return hashlib.sha256(request).digest()

    def payload_valid(self, payload: tuple[bytes, ...]) -> bool:
        return all(r.startswith(b"tx:") for r in payload)
