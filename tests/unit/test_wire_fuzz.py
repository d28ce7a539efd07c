"""Fuzzing the decoders peers reach: frames after the handshake (``node.net.wire.decode_frame``)
and the hello of the handshake (``node.net.handshake.decode_hello``). Whatever the
bytes, the answer is a value or the decoder's own clean error, never another
exception (issue 11)."""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.messages import Commit, NewViewRequest, Prepare
from node.net.codes import LinkError
from node.net.handshake import Ephemeral, decode_hello, encode_hello, make_hello
from node.net.wire import (
    BlocksFrame,
    ConsensusFrame,
    FrameError,
    GetBlocksFrame,
    StatusFrame,
    TxsFrame,
    decode_frame,
    encode_frame,
)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# msgpack-encodable values of every kind, nested: what a hostile peer can shape
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True)
    | st.binary(max_size=80)
    | st.text(max_size=40)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.text(max_size=8) | st.integers(0, 9), inner, max_size=4)
    ),
    max_leaves=30,
)
_tags = st.sampled_from(["c", "t", "s", "gb", "b", "x", ""])


def _valid_frames() -> list[bytes]:
    h32 = bytes(range(32))
    return [
        encode_frame(StatusFrame(5, 1)),
        encode_frame(GetBlocksFrame(1, 64)),
        encode_frame(TxsFrame([b"tx1", b"tx2"])),
        encode_frame(BlocksFrame([b"\x00" * 40])),
        encode_frame(ConsensusFrame(Prepare(0, 3, h32, 1, bytes(64)))),
        encode_frame(ConsensusFrame(Commit(2, 7, h32, 3, bytes(64)))),
        encode_frame(ConsensusFrame(NewViewRequest(0, 0, b""))),
    ]


def _frame_is_clean(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_frame(data)


def _hello_is_clean(data: bytes) -> None:
    with contextlib.suppress(LinkError):
        decode_hello(data)


@FUZZ
@given(st.binary(max_size=512))
def test_any_bytes_decode_to_a_frame_or_a_frame_error(data: bytes) -> None:
    _frame_is_clean(data)


@FUZZ
@given(_tags, st.lists(_values, max_size=5))
def test_tagged_arrays_of_any_shape_decode_cleanly(tag: str, fields: list[Any]) -> None:
    _frame_is_clean(msgspec.msgpack.encode([tag, *fields]))


@FUZZ
@given(st.sampled_from(_valid_frames()), st.data())
def test_mutated_valid_frames_decode_cleanly(frame: bytes, data: st.DataObject) -> None:
    mutated = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    _frame_is_clean(bytes(mutated[:cut]) if data.draw(st.booleans()) else bytes(mutated))


@FUZZ
@given(st.binary(max_size=600))
def test_any_bytes_decode_to_a_hello_or_a_link_error(data: bytes) -> None:
    _hello_is_clean(data)


@FUZZ
@given(st.lists(_values, max_size=7))
def test_hello_arrays_of_any_shape_decode_cleanly(fields: list[Any]) -> None:
    _hello_is_clean(msgspec.msgpack.encode(fields))


@FUZZ
@given(st.data())
def test_mutated_valid_hellos_decode_cleanly(data: st.DataObject) -> None:
    import nacl.signing

    hello = encode_hello(
        make_hello(nacl.signing.SigningKey(bytes(32)), "chain", Ephemeral.generate(), bytes(32))
    )
    mutated = bytearray(hello)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] = data.draw(st.integers(0, 255))
    _hello_is_clean(bytes(mutated))


_message_tags = st.sampled_from(
    [
        "pp",
        "prepare",
        "commit",
        "checkpoint",
        "view_change",
        "new_view",
        "nv_request",
        "status",
        "payload_req",
        "payload",
        "nope",
    ]
)
_fieldish = (
    st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.binary(max_size=70)
    | st.lists(st.binary(max_size=40) | st.integers(0, 9), max_size=4)
    | _values
)


@FUZZ
@given(_message_tags, st.lists(_fieldish, max_size=9))
def test_consensus_frames_of_any_message_shape_decode_cleanly(tag: str, fields: list[Any]) -> None:
    _frame_is_clean(msgspec.msgpack.encode(["c", [tag, *fields]]))
