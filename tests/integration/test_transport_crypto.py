"""The pure parts of the peer transport: handshake keys, frame cipher, backoff, penalties.

No event loop and no sockets; they sit next to the transport's integration tests
because they test the same package.
"""

from __future__ import annotations

import random

import msgspec
import nacl.signing
import pytest

from node.net.backoff import Backoff
from node.net.cipher import FrameDecryptError, FrameOpener, FrameSealer, frame_nonce
from node.net.codes import CloseCode, LinkError, close_message
from node.net.handshake import (
    MAX_HELLO_BYTES,
    Ephemeral,
    Hello,
    decode_hello,
    derive_session,
    encode_hello,
    is_arbiter,
    make_hello,
    sign_transcript,
    verify_transcript,
)
from node.net.penalties import PenaltyBook


def _pair(
    chain: str = "c",
) -> tuple[nacl.signing.SigningKey, Ephemeral, Hello, nacl.signing.SigningKey, Ephemeral, Hello]:
    ka, kb = nacl.signing.SigningKey.generate(), nacl.signing.SigningKey.generate()
    ea, eb = Ephemeral.generate(), Ephemeral.generate()
    return ka, ea, make_hello(ka, chain, ea), kb, eb, make_hello(kb, chain, eb)


def test_both_sides_derive_matching_direction_keys() -> None:
    _ka, ea, ha, _kb, eb, hb = _pair()
    sa = derive_session(ha, ea, hb)
    sb = derive_session(hb, eb, ha)
    assert sa.transcript == sb.transcript
    assert sa.send_key == sb.recv_key and sa.recv_key == sb.send_key
    assert sa.send_key != sa.recv_key
    sealer, opener = sa.sealer(), sb.opener()
    assert opener.open(sealer.seal(b"hello")) == b"hello"


def test_a_swapped_ephemeral_key_changes_everything() -> None:
    _ka, ea, ha, _kb, eb, hb = _pair()
    mallory = Ephemeral.generate()
    forged = Hello(hb.version, hb.chain_id, hb.genesis_hash, hb.node_key, mallory.public)
    sa = derive_session(ha, ea, forged)  # a talks to mallory believing it is b
    sb = derive_session(hb, eb, ha)
    assert sa.transcript != sb.transcript and sa.send_key != sb.recv_key


def test_transcript_signature_binds_key_and_session() -> None:
    ka, ea, ha, kb, _eb, hb = _pair()
    sa = derive_session(ha, ea, hb)
    sig = sign_transcript(ka, sa.transcript)
    assert verify_transcript(bytes(ka.verify_key), sa.transcript, sig)
    assert not verify_transcript(bytes(kb.verify_key), sa.transcript, sig)
    other = derive_session(ha, ea, make_hello(kb, "c", Ephemeral.generate()))
    assert not verify_transcript(bytes(ka.verify_key), other.transcript, sig)
    assert not verify_transcript(bytes(ka.verify_key), sa.transcript, sig[:-1])


def test_reflected_or_low_order_ephemeral_keys_are_refused() -> None:
    _ka, ea, ha, *_ = _pair()
    with pytest.raises(LinkError) as reflected:
        derive_session(ha, ea, ha)
    assert reflected.value.code == CloseCode.PROTOCOL
    zero = Hello(ha.version, ha.chain_id, ha.genesis_hash, bytes(32), bytes(32))
    with pytest.raises(LinkError, match="invalid ephemeral key"):
        derive_session(ha, ea, zero)


def test_exactly_one_side_is_the_arbiter() -> None:
    a, b = bytes(32), b"\x01" + bytes(31)
    assert is_arbiter(a, b) and not is_arbiter(b, a)


def test_hello_round_trip_and_malformed_hellos() -> None:
    _ka, _ea, ha, *_ = _pair()
    assert decode_hello(encode_hello(ha)) == ha
    bad = [
        b"",
        b"\xff" * 10,
        msgspec.msgpack.encode([1, "c", b"short", bytes(32)]),
        msgspec.msgpack.encode([1, "c", bytes(32)]),
        msgspec.msgpack.encode([1, 7, bytes(32), bytes(32)]),
        msgspec.msgpack.encode([1, "x" * 200, bytes(32), bytes(32)]),
        bytes(MAX_HELLO_BYTES + 1),
    ]
    for data in bad:
        with pytest.raises(LinkError) as exc:
            decode_hello(data)
        assert exc.value.code == CloseCode.PROTOCOL


def test_frames_open_only_in_order_and_unaltered() -> None:
    key = bytes(range(32))
    sealer, opener = FrameSealer(key), FrameOpener(key)
    frames = [sealer.seal(f"frame {i}".encode()) for i in range(3)]
    assert len(frames[0]) == len(b"frame 0") + 16  # MAC only, the nonce is implicit
    assert opener.open(frames[0]) == b"frame 0"
    with pytest.raises(FrameDecryptError):
        opener.open(frames[0])  # replay
    with pytest.raises(FrameDecryptError):
        opener.open(frames[2])  # skipped one
    tampered = bytearray(frames[1])
    tampered[5] ^= 0x80
    with pytest.raises(FrameDecryptError):
        opener.open(bytes(tampered))
    with pytest.raises(FrameDecryptError):
        opener.open(b"\x00" * 3)  # shorter than a MAC
    assert opener.open(frames[1]) == b"frame 1" and opener.counter == 2


def test_nonces_are_distinct_and_the_counter_never_wraps() -> None:
    assert len({frame_nonce(i) for i in range(1000)}) == 1000
    assert len(frame_nonce(0)) == 24
    with pytest.raises(OverflowError):
        frame_nonce(2**64)


def test_backoff_grows_to_the_cap_with_jitter_and_replays_by_seed() -> None:
    b = Backoff(base=0.5, cap=8.0, rng=random.Random(7))
    for attempt in range(12):
        ceiling = min(8.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= b.delay(attempt) <= ceiling
    assert b.delay(10_000) <= 8.0
    one, two = Backoff(0.5, 8.0, random.Random(3)), Backoff(0.5, 8.0, random.Random(3))
    first = [one.delay(5) for _ in range(6)]
    assert first == [two.delay(5) for _ in range(6)] and len(set(first)) == 6
    with pytest.raises(ValueError):
        Backoff(base=0, cap=1)


def test_penalties_decay_ban_and_expire() -> None:
    now = [0.0]
    book = PenaltyBook(threshold=5, ban_seconds=100, decay_seconds=10, clock=lambda: now[0])
    peer = b"p" * 32
    assert not book.add(peer, 3)
    now[0] = 25.0  # two whole decay periods
    assert book.score(peer) == 1
    assert not book.add(peer, 3)
    assert book.add(peer, 1)  # 1 + 3 + 1 = 5: banned
    assert book.is_banned(peer) and book.banned_until(peer) == 125.0
    assert book.count(peer) == 3 and book.score(peer) == 0
    now[0] = 125.0
    assert not book.is_banned(peer) and book.banned_until(peer) is None


def test_close_codes_and_messages() -> None:
    assert CloseCode.describe(4003) == "unknown_key"
    assert CloseCode.describe(4999) == "4999" and CloseCode.describe(None) == "none"
    message = close_message("é" * 100)
    assert len(message) <= 123 and message.decode() == "é" * 60
