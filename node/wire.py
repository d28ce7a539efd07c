"""Frames exchanged between peers over the encrypted transport.

One frame is a msgspec tagged union encoded as msgpack. Decoding is strict:
a frame that does not decode into exactly one of these types is malformed,
dropped, and counted against the peer by the caller; it never raises past
``decode_frame``'s ``FrameError``.

- ``ConsensusFrame``: one consensus message (PRE-PREPARE, PREPARE, ...).
- ``TxsFrame``: gossiped transactions (canonical wire bytes), batched.
- ``StatusFrame``: the sender's committed height and view (sync hints).
- ``GetBlocksFrame`` / ``BlocksFrame``: block sync, a height range and the
  stored blocks of it (each carries its commit certificate).
"""

from __future__ import annotations

import msgspec

from consensus.messages import Message


class FrameError(ValueError):
    """A frame that is not one of ours, or breaks a limit."""


class ConsensusFrame(msgspec.Struct, frozen=True, array_like=True, tag="c"):
    message: Message


class TxsFrame(msgspec.Struct, frozen=True, array_like=True, tag="t"):
    txs: list[bytes]


class StatusFrame(msgspec.Struct, frozen=True, array_like=True, tag="s"):
    height: int
    view: int


class GetBlocksFrame(msgspec.Struct, frozen=True, array_like=True, tag="gb"):
    start: int
    count: int


class BlocksFrame(msgspec.Struct, frozen=True, array_like=True, tag="b"):
    blocks: list[bytes]


Frame = ConsensusFrame | TxsFrame | StatusFrame | GetBlocksFrame | BlocksFrame

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Frame] = msgspec.msgpack.Decoder(Frame)


def encode_frame(frame: Frame) -> bytes:
    return _encoder.encode(frame)


def decode_frame(data: bytes) -> Frame:
    try:
        frame = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"malformed frame: {exc}") from None
    if isinstance(frame, GetBlocksFrame) and (frame.start < 1 or not 1 <= frame.count <= 1000):
        raise FrameError("malformed frame: block range out of bounds")
    if isinstance(frame, StatusFrame) and (frame.height < 0 or frame.view < 0):
        raise FrameError("malformed frame: negative height or view")
    return frame
