"""Sealing a fetch answer to a member's key, and opening it.

A custodian's node answers a fetch with the document sealed to the requesting
member: a libsodium sealed box (``crypto_box_seal``: an ephemeral X25519 key,
XSalsa20-Poly1305) to the X25519 public key derived from the member's Ed25519
public key (``crypto_sign_ed25519_pk_to_curve25519``). Only the holder of the
member's Ed25519 secret key can open it, with the X25519 secret key derived from it
(``crypto_sign_ed25519_sk_to_curve25519``). The box is anonymous: it says nothing
about who sealed it, so the requester trusts the content only once it matches the
commitment anchored on chain (``node.exchange.payload``).

Every failure, a public key that is not a point of the curve, a box that is
truncated, altered or sealed to another key, is a ``SealingError``.
"""

from __future__ import annotations

from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

__all__ = [
    "SEAL_OVERHEAD",
    "SealingError",
    "member_box_key",
    "open_sealed",
    "seal_to_member",
]

SEAL_OVERHEAD: Final = nacl.bindings.crypto_box_SEALBYTES  # 48: ephemeral key and MAC


class SealingError(ValueError):
    """A key that cannot seal or open, or a sealed box that does not open."""


def member_box_key(member_public_key: bytes) -> bytes:
    """The X25519 public key (32 bytes) of a member's Ed25519 public key."""
    if len(member_public_key) != 32:
        raise SealingError(f"an Ed25519 public key is 32 bytes, got {len(member_public_key)}")
    try:
        return nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(bytes(member_public_key))
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise SealingError("not a valid Ed25519 public key (not a point of the curve)") from None


def seal_to_member(member_public_key: bytes, plaintext: bytes) -> bytes:
    """``plaintext`` sealed to the member whose Ed25519 public key is given."""
    box = nacl.public.SealedBox(nacl.public.PublicKey(member_box_key(member_public_key)))
    return bytes(box.encrypt(bytes(plaintext)))


def open_sealed(member_signing_key: nacl.signing.SigningKey, sealed: bytes) -> bytes:
    """The plaintext of a box sealed to ``member_signing_key``'s public key."""
    if len(sealed) < SEAL_OVERHEAD:
        raise SealingError(
            f"a sealed box is at least {SEAL_OVERHEAD} bytes, got {len(sealed)}: truncated"
        )
    try:
        private = member_signing_key.to_curve25519_private_key()
        return bytes(nacl.public.SealedBox(private).decrypt(bytes(sealed)))
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise SealingError(
            "the sealed box does not open with this key: sealed to another member, "
            "or altered or truncated on the way"
        ) from None
