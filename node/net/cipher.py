"""Authenticated encryption of the frames of one link direction.

Each direction of a link has its own 32-byte key (see ``handshake``) and its own
64-bit frame counter. Frame *n* is sealed with XSalsa20-Poly1305 (PyNaCl's
``SecretBox``) under the 24-byte nonce ``n`` (8 bytes little-endian, then 16
zero bytes). The nonce is implicit: both sides count frames, so it is never
sent, and a replayed, dropped, reordered or altered frame fails to open. A
counter never wraps: the sealer refuses to go on after 2**64 - 1 frames.
"""

from __future__ import annotations

import nacl.exceptions
import nacl.secret

KEY_BYTES = nacl.secret.SecretBox.KEY_SIZE
NONCE_BYTES = nacl.secret.SecretBox.NONCE_SIZE
MAC_BYTES = nacl.secret.SecretBox.MACBYTES
_MAX_COUNTER = 2**64 - 1
_NONCE_PAD = bytes(NONCE_BYTES - 8)


class FrameDecryptError(Exception):
    """A frame failed authentication: the stream is corrupted or under attack."""


def frame_nonce(counter: int) -> bytes:
    """The nonce of frame number ``counter`` of one direction."""
    if not 0 <= counter <= _MAX_COUNTER:
        raise OverflowError("frame counter exhausted")
    return counter.to_bytes(8, "little") + _NONCE_PAD


class FrameSealer:
    """Seals the outgoing frames of one direction, in order."""

    __slots__ = ("_box", "_counter")

    def __init__(self, key: bytes) -> None:
        self._box = nacl.secret.SecretBox(key)
        self._counter = 0

    @property
    def counter(self) -> int:
        """The number of the next frame."""
        return self._counter

    def seal(self, plaintext: bytes) -> bytes:
        """Ciphertext of the next frame (MAC + encrypted bytes; the nonce is implicit)."""
        nonce = frame_nonce(self._counter)
        self._counter += 1
        return self._box.encrypt(plaintext, nonce).ciphertext


class FrameOpener:
    """Opens the incoming frames of one direction, in order."""

    __slots__ = ("_box", "_counter")

    def __init__(self, key: bytes) -> None:
        self._box = nacl.secret.SecretBox(key)
        self._counter = 0

    @property
    def counter(self) -> int:
        """The number of the next expected frame."""
        return self._counter

    def open(self, ciphertext: bytes) -> bytes:
        """Plaintext of the next frame; ``FrameDecryptError`` if it does not authenticate."""
        nonce = frame_nonce(self._counter)
        try:
            plaintext = self._box.decrypt(ciphertext, nonce)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise FrameDecryptError(f"frame {self._counter} failed to authenticate") from exc
        self._counter += 1
        return plaintext
