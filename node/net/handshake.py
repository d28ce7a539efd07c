"""The cryptography of the link handshake: hellos, session keys, transcript signatures.

Station-to-station, in the style of CometBFT's SecretConnection:

1. Each side sends, in clear, a *hello*: protocol version, chain id, genesis
   hash (SHA-256 of the genesis document, ``node.setup.genesis.genesis_hash``), its Ed25519
   node public key (its node id, as listed in genesis) and a fresh X25519
   ephemeral public key.
2. Each side computes the X25519 shared secret of its ephemeral secret and the
   other's ephemeral public key, and the *transcript hash*: BLAKE2b-256
   (personalised) over the version, the chain id, the genesis hash, both ephemeral keys in sorted
   order and the two node keys in the same order (each node key next to its
   owner's ephemeral key). Both sides get the same transcript; a
   man-in-the-middle who swaps any key gets a different one.
3. Two direction keys come from keyed, personalised BLAKE2b over the transcript
   (key = shared secret): one for "lower ephemeral key -> higher", one for the
   other way. Each side seals with one and opens with the other (``cipher``).
4. Each side sends, encrypted as frame 0 of its direction, its Ed25519
   signature over the transcript. The receiver checks it against the node key
   the other side claimed in its hello. Only the holder of that node key can
   produce it, and only for this session's ephemeral keys, so a signature cannot
   be replayed into another session.
5. The side with the lower node key is the *arbiter* of the pair: it decides
   whether this link is the one the two nodes use (see ``transport``) and, if
   so, sends ``KEEP`` as frame 1 of its direction; otherwise it closes the link
   with ``CloseCode.DUPLICATE``. The other side writes nothing on a link before
   its ``KEEP``, so both sides always use the same single link and no frame is
   lost to two nodes dialing each other at once.

This module is pure (no IO); ``session`` drives it over a websocket.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import msgspec
import nacl.bindings
import nacl.exceptions
import nacl.signing

from node.net.cipher import FrameOpener, FrameSealer
from node.net.codes import CloseCode, LinkError

PROTOCOL_VERSION = 2  # 2: the hello carries the genesis hash
GENESIS_HASH_BYTES = 32
KEY_BYTES = 32
SIGNATURE_BYTES = 64
MAX_CHAIN_ID_BYTES = 128
MAX_HELLO_BYTES = 512

_TRANSCRIPT_PERSON = b"hygeia-p2p-ts-v1"
_KEY_PERSON = b"hygeia-p2p-kdf-1"
_AUTH_CONTEXT = b"hygeia-p2p-auth-v1"
_LOW_TO_HIGH = b"low->high"
KEEP = b"\x01"  # the arbiter's verdict: use this link
_HIGH_TO_LOW = b"high->low"


class Hello(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """The clear-text opening message of each side."""

    version: int
    chain_id: str
    genesis_hash: bytes
    node_key: bytes
    eph_key: bytes


_hello_decoder = msgspec.msgpack.Decoder(Hello)
_hello_encoder = msgspec.msgpack.Encoder()


def encode_hello(hello: Hello) -> bytes:
    """The wire bytes of a hello (msgpack array)."""
    return _hello_encoder.encode(hello)


def decode_hello(data: bytes) -> Hello:
    """Parse and shape-check a hello; ``LinkError(PROTOCOL)`` if it is malformed."""
    if len(data) > MAX_HELLO_BYTES:
        raise LinkError(CloseCode.PROTOCOL, f"hello of {len(data)} bytes is too long")
    try:
        hello = _hello_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise LinkError(CloseCode.PROTOCOL, f"malformed hello: {exc}") from exc
    if len(hello.node_key) != KEY_BYTES or len(hello.eph_key) != KEY_BYTES:
        raise LinkError(CloseCode.PROTOCOL, "hello keys must be 32 bytes")
    if len(hello.genesis_hash) != GENESIS_HASH_BYTES:
        raise LinkError(CloseCode.PROTOCOL, "hello genesis hash must be 32 bytes")
    if len(hello.chain_id.encode(errors="replace")) > MAX_CHAIN_ID_BYTES:
        raise LinkError(CloseCode.PROTOCOL, "hello chain id is too long")
    return hello


@dataclass(frozen=True, slots=True)
class Ephemeral:
    """A fresh X25519 key pair for one handshake; never reused."""

    secret: bytes
    public: bytes

    @classmethod
    def generate(cls) -> Ephemeral:
        """A new random key pair."""
        secret = os.urandom(nacl.bindings.crypto_scalarmult_SCALARBYTES)
        return cls(secret, nacl.bindings.crypto_scalarmult_base(secret))


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """What both sides agree on after exchanging hellos."""

    transcript: bytes
    send_key: bytes
    recv_key: bytes

    def sealer(self) -> FrameSealer:
        """The cipher of the outgoing direction."""
        return FrameSealer(self.send_key)

    def opener(self) -> FrameOpener:
        """The cipher of the incoming direction."""
        return FrameOpener(self.recv_key)


def make_hello(
    node_key: nacl.signing.SigningKey,
    chain_id: str,
    eph: Ephemeral,
    genesis_hash: bytes = bytes(GENESIS_HASH_BYTES),
) -> Hello:
    """This side's hello."""
    return Hello(PROTOCOL_VERSION, chain_id, genesis_hash, bytes(node_key.verify_key), eph.public)


def transcript_hash(
    version: int, chain_id: str, a: Hello, b: Hello, genesis_hash: bytes = b""
) -> bytes:
    """BLAKE2b-256 of the handshake transcript; the same whichever side computes it."""
    low, high = (a, b) if a.eph_key < b.eph_key else (b, a)
    chain = chain_id.encode()
    h = hashlib.blake2b(digest_size=32, person=_TRANSCRIPT_PERSON)
    h.update(version.to_bytes(4, "big"))
    h.update(len(chain).to_bytes(4, "big"))
    h.update(chain)
    h.update(genesis_hash)
    h.update(low.eph_key)
    h.update(high.eph_key)
    h.update(low.node_key)
    h.update(high.node_key)
    return h.digest()


def _direction_key(shared: bytes, transcript: bytes, label: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=32, key=shared, person=_KEY_PERSON)
    h.update(transcript)
    h.update(label)
    return h.digest()


def derive_session(local: Hello, eph: Ephemeral, remote: Hello) -> SessionKeys:
    """Session keys from this side's hello and ephemeral secret and the other's hello.

    The caller has already checked that both hellos agree on version, chain and genesis.
    Refuses a reflected ephemeral key (a hello echoed back) and a low-order
    point (an all-zero shared secret).
    """
    if remote.eph_key == local.eph_key:
        raise LinkError(CloseCode.PROTOCOL, "remote echoed our ephemeral key")
    try:
        shared = nacl.bindings.crypto_scalarmult(eph.secret, remote.eph_key)
    except nacl.exceptions.CryptoError as exc:  # libsodium refuses low-order points
        raise LinkError(CloseCode.PROTOCOL, "invalid ephemeral key") from exc
    if shared == bytes(len(shared)):
        raise LinkError(CloseCode.PROTOCOL, "invalid ephemeral key")
    transcript = transcript_hash(local.version, local.chain_id, local, remote, local.genesis_hash)
    low_to_high = _direction_key(shared, transcript, _LOW_TO_HIGH)
    high_to_low = _direction_key(shared, transcript, _HIGH_TO_LOW)
    if local.eph_key < remote.eph_key:
        return SessionKeys(transcript, send_key=low_to_high, recv_key=high_to_low)
    return SessionKeys(transcript, send_key=high_to_low, recv_key=low_to_high)


def is_arbiter(local_node_key: bytes, remote_node_key: bytes) -> bool:
    """Whether this side decides which link of the pair is used (the lower node key)."""
    return local_node_key < remote_node_key


def sign_transcript(node_key: nacl.signing.SigningKey, transcript: bytes) -> bytes:
    """This side's proof that it holds its node key, bound to this session."""
    return node_key.sign(_AUTH_CONTEXT + transcript).signature


def verify_transcript(node_key: bytes, transcript: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``node_key``'s signature over this session's transcript."""
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        nacl.signing.VerifyKey(node_key).verify(_AUTH_CONTEXT + transcript, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True
