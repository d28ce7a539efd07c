"""The records a replica persists, their keys and their decoding.

A replica rebuilt from these records (and the driver's ``ChainTip``) never
sends a vote that conflicts with one it sent before a crash; ``replica.py``
("Persistence and recovery") says when each is written. Every record is a
msgpack array (``canonical`` bytes); fields added later have defaults, so
records written by older versions still decode:

- ``view``: ``ViewRecord``, the current view, whether it is being changed to,
  and the last view the replica was in normally;
- ``stable``: ``StableRecord``, the stable checkpoint with its proof;
- ``slot/<height>``: ``SlotRecord``, one in-flight height (8-byte big-endian
  height, so keys sort by height);
- ``ckpt/<height>``: the replica's own signed ``Checkpoint`` of that height,
  repeated after a restart until it is stable.
"""

from __future__ import annotations

import msgspec

from consensus.messages import Checkpoint, PreparedCert, PrePrepare


class SlotRecord(msgspec.Struct, frozen=True, array_like=True):
    """What a replica must remember about one in-flight height across a crash."""

    accepted_view: int
    accepted: PrePrepare | None
    prepared: PreparedCert | None
    commit_view: int
    # True: ``accepted`` is ``prepared.pre_prepare`` and was left out, so the
    # payload is stored once (records written before this field decode as False)
    accepted_in_prepared: bool = False

    def accepted_pre_prepare(self) -> PrePrepare | None:
        """The pre-prepare voted for in ``accepted_view``, wherever it was stored."""
        if self.accepted_in_prepared and self.prepared is not None:
            return self.prepared.pre_prepare
        return self.accepted


class StableRecord(msgspec.Struct, frozen=True, array_like=True):
    height: int
    state_root: bytes
    proof: tuple[Checkpoint, ...]


class ViewRecord(msgspec.Struct, frozen=True, array_like=True):
    view: int
    in_view_change: bool
    # the last view the replica was in normally (records before this field: -1)
    normal_view: int = -1


_slot_decoder = msgspec.msgpack.Decoder(SlotRecord)
_stable_decoder = msgspec.msgpack.Decoder(StableRecord)
_view_decoder = msgspec.msgpack.Decoder(ViewRecord)
_checkpoint_decoder = msgspec.msgpack.Decoder(Checkpoint)

KEY_VIEW = b"view"
KEY_STABLE = b"stable"
SLOT_PREFIX = b"slot/"
CHECKPOINT_PREFIX = b"ckpt/"


def slot_key(height: int) -> bytes:
    return SLOT_PREFIX + height.to_bytes(8, "big")


def checkpoint_key(height: int) -> bytes:
    return CHECKPOINT_PREFIX + height.to_bytes(8, "big")


def slot_height(key: bytes) -> int:
    """The height a ``slot_key`` names."""
    return int.from_bytes(key[len(SLOT_PREFIX) :], "big")


def decode_slot(raw: bytes) -> SlotRecord:
    return _slot_decoder.decode(raw)


def decode_stable(raw: bytes) -> StableRecord:
    return _stable_decoder.decode(raw)


def decode_view(raw: bytes) -> ViewRecord:
    return _view_decoder.decode(raw)


def decode_checkpoint(raw: bytes) -> Checkpoint:
    return _checkpoint_decoder.decode(raw)
