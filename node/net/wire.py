"""Frames exchanged between peers over the encrypted transport.

One frame is a msgspec tagged union encoded as msgpack. Decoding is strict:
a frame that does not decode into exactly one of these types is malformed,
dropped, and counted against the peer by the caller; it never raises past
``decode_frame``'s ``FrameError``.

- ``ConsensusFrame``: one consensus message (PRE-PREPARE, PREPARE, ...) and the
  epoch whose validator set names its sender (consensus/epochs.py).
- ``TxsFrame``: gossiped transactions (canonical wire bytes), batched.
- ``StatusFrame``: the sender's committed height and view (sync hints).
- ``GetBlocksFrame`` / ``BlocksFrame``: block sync, a height range and the
  stored blocks of it (each carries its commit certificate).
- ``GetSnapshotFrame`` / ``SnapshotFrame`` / ``GetChunkFrame`` / ``ChunkFrame``:
  state sync (``node/statesync/``), the newest snapshot's manifest and its chunks;
  ``GetStableFrame`` / ``StableFrame``: a validator's stable checkpoint record,
  which signs off a snapshot an observer took.

Sizes: a ``ConsensusFrame`` is exactly ``CONSENSUS_FRAME_OVERHEAD`` bytes
longer than its message's own encoding (``consensus.messages.encode_message``),
so a replica whose messages stay within ``max_frame_bytes -
CONSENSUS_FRAME_OVERHEAD`` (``ConsensusConfig.max_message_bytes``) always fits
a frame. ``txs_frames`` cuts transactions into ``TxsFrame``s that each fit a
frame limit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

import msgspec

from consensus.messages import Message, NewViewRequest, encode_message


class FrameError(ValueError):
    """A frame that is not one of ours, or breaks a limit."""


class ConsensusFrame(msgspec.Struct, frozen=True, array_like=True, tag="c"):
    message: Message
    epoch: int = 0


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


class GetSnapshotFrame(msgspec.Struct, frozen=True, array_like=True, tag="gs"):
    """State sync: what is your newest complete snapshot?"""


class SnapshotFrame(msgspec.Struct, frozen=True, array_like=True, tag="sn"):
    """State sync: the newest complete snapshot's manifest (empty: none)."""

    manifest: bytes


class GetChunkFrame(msgspec.Struct, frozen=True, array_like=True, tag="gk"):
    height: int
    index: int


class ChunkFrame(msgspec.Struct, frozen=True, array_like=True, tag="k"):
    """One chunk of the snapshot of ``height`` (empty ``data``: not here)."""

    height: int
    index: int
    data: bytes


class GetStableFrame(msgspec.Struct, frozen=True, array_like=True, tag="gt"):
    """State sync: your stable checkpoint record, if it is of ``height``?"""

    height: int


class StableFrame(msgspec.Struct, frozen=True, array_like=True, tag="st"):
    """A validator's stable checkpoint record (``consensus.records.StableRecord``,
    encoded), or empty: not of the height asked for."""

    record: bytes


class GetDocumentFrame(msgspec.Struct, frozen=True, array_like=True, tag="gd"):
    """Document exchange (node/exchange/service.py): a member's signed request for a
    document, relayed to the custodian's node. ``path`` is the signed path with its
    query, ``time_ms``/``signer``/``sig`` the request's signature headers, and
    ``ticket_height`` where the relaying node saw the ticket committed (0: not seen)."""

    req: int
    path: str
    time_ms: int
    signer: bytes
    sig: bytes
    ticket_height: int


class DocumentFrame(msgspec.Struct, frozen=True, array_like=True, tag="dd"):
    """One piece of the answer to ``GetDocumentFrame`` ``req``: a refusal (``code``
    non-empty, with ``message``), or bytes ``offset`` .. of the sealed document of
    ``total`` bytes, in order."""

    req: int
    code: str
    message: str
    total: int
    offset: int
    data: bytes


Frame = (
    ConsensusFrame
    | TxsFrame
    | StatusFrame
    | GetBlocksFrame
    | BlocksFrame
    | GetSnapshotFrame
    | SnapshotFrame
    | GetChunkFrame
    | ChunkFrame
    | GetStableFrame
    | StableFrame
    | GetDocumentFrame
    | DocumentFrame
)

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
    if isinstance(frame, ConsensusFrame) and not 0 <= frame.epoch <= MAX_EPOCH:
        raise FrameError("malformed frame: epoch out of range")
    if isinstance(frame, GetStableFrame) and frame.height < 1:
        raise FrameError("malformed frame: checkpoint height out of range")
    if isinstance(frame, (GetChunkFrame, ChunkFrame)) and (frame.height < 1 or frame.index < 0):
        raise FrameError("malformed frame: snapshot height or chunk index out of range")
    if isinstance(frame, GetDocumentFrame) and (
        frame.req < 0
        or len(frame.path) > 512
        or frame.time_ms < 0
        or len(frame.signer) != 32
        or len(frame.sig) != 64
        or frame.ticket_height < 0
    ):
        raise FrameError("malformed frame: document request out of bounds")
    if isinstance(frame, DocumentFrame) and (
        frame.req < 0
        or len(frame.code) > 64
        or len(frame.message) > 512
        or frame.total < 0
        or frame.offset < 0
        or frame.offset + len(frame.data) > frame.total
    ):
        raise FrameError("malformed frame: document piece out of bounds")
    return frame


def _consensus_frame_overhead() -> int:
    probe = NewViewRequest(0, 0, b"")
    return len(encode_frame(ConsensusFrame(probe, MAX_EPOCH))) - len(encode_message(probe))


# the largest epoch number a frame may carry (a change a block: far beyond any chain)
MAX_EPOCH: Final = (1 << 32) - 1
# bytes a ConsensusFrame adds around its message: a 3-array header, the tag "c"
# and the epoch (counted at its widest)
CONSENSUS_FRAME_OVERHEAD: Final = _consensus_frame_overhead()
# a TxsFrame's bytes beyond its transactions: the frame's 2-array, its tag and the
# widest msgpack array header; each transaction adds at most the widest bin header
TXS_FRAME_OVERHEAD: Final = 1 + 2 + 5
TX_ITEM_OVERHEAD: Final = 5


def txs_frames(txs: Sequence[bytes], *, max_count: int, max_bytes: int) -> Iterator[bytes]:
    """``TxsFrame``s carrying ``txs`` in order, each with at most ``max_count`` of
    them and at most ``max_bytes`` long. A transaction too large for a frame of its
    own is left out (it could not be sent anyway)."""
    batch: list[bytes] = []
    size = TXS_FRAME_OVERHEAD
    for tx in txs:
        cost = len(tx) + TX_ITEM_OVERHEAD
        if TXS_FRAME_OVERHEAD + cost > max_bytes:
            continue
        if batch and (len(batch) >= max_count or size + cost > max_bytes):
            yield encode_frame(TxsFrame(batch))
            batch, size = [], TXS_FRAME_OVERHEAD
        batch.append(tx)
        size += cost
    if batch:
        yield encode_frame(TxsFrame(batch))


# transactions per gossip frame, at most (256 of 64 KiB would still not fit a frame:
# the byte limit cuts first)
GOSSIP_BATCH: Final = 256


def gossip_frames(txs: Sequence[bytes], max_frame_bytes: int) -> Iterator[bytes]:
    """The ``TxsFrame``s that gossip ``txs`` (wire forms) in order: at most
    ``GOSSIP_BATCH`` transactions and ``max_frame_bytes`` each."""
    return txs_frames(txs, max_count=GOSSIP_BATCH, max_bytes=max_frame_bytes)
