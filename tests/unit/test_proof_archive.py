"""What the node archives for proofs of outcome: every stable checkpoint the replica
persists (whatever its epoch scope), nothing else."""

from __future__ import annotations

from consensus.messages import Checkpoint, canonical
from consensus.records import KEY_STABLE, StableRecord, checkpoint_key, slot_key
from node.engine.epoch_switch import scoped
from node.engine.proof_archive import digests_key, stable_archive, stable_key


def _stable(height: int) -> bytes:
    proof = tuple(Checkpoint(height, b"r" * 32, s, b"s" * 64) for s in range(3))
    return canonical(StableRecord(height, b"r" * 32, proof))


def test_a_persisted_stable_checkpoint_is_archived_under_its_height() -> None:
    records = [
        (b"view", b"\x93\x00\xc2\xff"),
        (slot_key(9), None),
        (KEY_STABLE, _stable(8)),
        (scoped(2, KEY_STABLE), _stable(16)),
    ]
    assert stable_archive(records) == [
        (stable_key(8), _stable(8)),
        (stable_key(16), _stable(16)),
    ]


def test_nothing_else_is_archived() -> None:
    own = Checkpoint(8, b"r" * 32, 0, b"s" * 64)
    records = [
        (checkpoint_key(8), canonical(own)),
        (KEY_STABLE, None),  # a deletion
        (b"e/1/" + KEY_STABLE, b"not msgpack of a record"),
    ]
    assert stable_archive(records) == []


def test_keys_sort_by_height() -> None:
    assert digests_key(2) < digests_key(10) < digests_key(256)
    assert stable_key(4) < stable_key(16)
    assert digests_key(1) != stable_key(1)
