"""The persisted records of ``consensus/records.py``: keys, encoding, decoding
of older layouts, and the names ``consensus.replica`` still re-exports."""

from __future__ import annotations

from consensus.messages import Checkpoint, canonical
from consensus.records import (
    CHECKPOINT_PREFIX,
    KEY_STABLE,
    KEY_VIEW,
    SLOT_PREFIX,
    SlotRecord,
    StableRecord,
    ViewRecord,
    checkpoint_key,
    decode_checkpoint,
    decode_slot,
    decode_stable,
    decode_view,
    slot_height,
    slot_key,
)
from tests.unit.cluster import Solo


def test_keys_are_prefixed_big_endian_heights_that_sort_by_height() -> None:
    assert slot_key(1) == b"slot/" + bytes(7) + b"\x01"
    assert checkpoint_key(16) == b"ckpt/" + bytes(7) + b"\x10"
    heights = [300, 2, 1 << 40, 17, 256]
    assert sorted(map(slot_key, heights)) == list(map(slot_key, sorted(heights)))
    assert [slot_height(slot_key(h)) for h in heights] == heights
    assert slot_key(5).startswith(SLOT_PREFIX) and checkpoint_key(5).startswith(CHECKPOINT_PREFIX)
    assert (KEY_VIEW, KEY_STABLE) == (b"view", b"stable")


def test_records_round_trip_through_their_canonical_bytes() -> None:
    s = Solo(4, 3)
    c = s.craft
    pp = c.pre_prepare(0, 1, (b"tx:a",))
    cert = c.prepared_cert(pp, [1, 2])
    slot = SlotRecord(0, None, cert, 0, True)
    assert decode_slot(canonical(slot)) == slot
    assert decode_slot(canonical(slot)).accepted_pre_prepare() == pp
    proof = tuple(c.checkpoint(16, b"r" * 32, i) for i in range(3))
    stable = StableRecord(16, b"r" * 32, proof)
    assert decode_stable(canonical(stable)) == stable
    view = ViewRecord(5, True, 3)
    assert decode_view(canonical(view)) == view
    cp = c.checkpoint(32, b"s" * 32, 3)
    back = decode_checkpoint(canonical(cp))
    assert isinstance(back, Checkpoint) and back == cp


def test_records_written_before_the_newer_fields_still_decode() -> None:
    """A slot record without ``accepted_in_prepared`` keeps ``accepted``; a view
    record without ``normal_view`` decodes with -1."""
    s = Solo(4, 3)
    pp = s.craft.pre_prepare(0, 1, (b"tx:a",))
    old_slot = decode_slot(canonical((0, pp, None, -1)))
    assert not old_slot.accepted_in_prepared and old_slot.accepted_pre_prepare() == pp
    old_view = decode_view(canonical([3, True]))
    assert (old_view.view, old_view.in_view_change, old_view.normal_view) == (3, True, -1)


def test_a_restored_replica_reads_what_it_persisted() -> None:
    """The replica writes these records and reads them back: a backup that
    prepared height 1 restarts into the same view with the same slot."""
    s = Solo(4, 3)
    c = s.craft
    pp = c.pre_prepare(0, 1, (b"tx:a",))
    s.feed(pp, c.prepare(0, 1, pp.proposal.digest(), 1))
    rec = decode_slot(s.records[slot_key(1)])
    assert rec.accepted_view == 0 and rec.commit_view == 0 and rec.prepared is not None
    s.restart(now=10)
    assert s.replica.in_flight()[0]["prepared"] is True
