"""The replica's side of epochs (consensus/epochs.py): it never votes beyond its set.

- once the executed state says the epoch ends at c, the replica commits every
  height up to c (empty blocks when nothing is pending), never one above it,
  and reports the epoch complete once c is executed;
- a pre-prepare above the end is dropped, not buffered;
- while the end is unknown, nothing beyond the horizon (executed + L + 1) is
  voted on: it waits in the future buffer and is replayed when execution
  catches up;
- a later epoch's replica starts from its base height as from genesis, signs
  under its own domain and refuses the votes of another epoch;
- the boundary rule and the schedule.
"""

from __future__ import annotations

import pytest

from consensus.actions import Action, Rejected
from consensus.config import ConsensusConfig
from consensus.epochs import (
    Epoch,
    EpochError,
    EpochSchedule,
    boundary,
    horizon,
    signing_domain,
)
from consensus.messages import Prepare, PrePrepare, canonical, sign_message
from consensus.records import KEY_STABLE, StableRecord
from consensus.replica import ChainTip, Replica
from tests.unit.cluster import CHAIN_ID, Cluster, Knobs, Solo, sent_messages

K, L, W = 4, 8, 2
KNOBS: Knobs = {"checkpoint_interval": K, "watermark_window": L, "pipeline_window": W}


def _prepares(actions: list[Action]) -> list[Prepare]:
    return [m for m in sent_messages(actions, Prepare) if isinstance(m, Prepare)]


def _reasons(actions: list[Action]) -> list[str]:
    return [a.reason for a in actions if isinstance(a, Rejected)]


# ------------------------------------------------------------------ the rule
def test_boundary_is_the_first_checkpoint_at_or_after_h_plus_the_window() -> None:
    assert boundary(1, 16, 64) == 80
    assert boundary(16, 16, 64) == 80
    assert boundary(17, 16, 64) == 96
    assert boundary(5, 4, 8) == 16
    for h in range(1, 200):
        c = boundary(h, 16, 64)
        assert c % 16 == 0 and h + 64 <= c < h + 64 + 16
        # a replica that executed h - 1 (not knowing the change) never votes at c + 1
        assert horizon(h - 1, 64) <= c


def test_schedule_finds_each_heights_set_and_refuses_bad_shapes() -> None:
    a, b, c = b"a" * 32, b"b" * 32, b"c" * 32
    s = EpochSchedule.genesis([a, b]).with_epoch(Epoch(1, 81, (a, b, c)))
    assert s.at(1).number == 0 and s.at(80).number == 0 and s.at(81).number == 1
    assert s.end_of(0) == 80 and s.end_of(1) is None
    assert s.at(81).index_of(c) == 2 and s.at(80).index_of(c) is None
    with pytest.raises(EpochError):
        s.with_epoch(Epoch(2, 81, (a,)))  # does not start after epoch 1
    with pytest.raises(EpochError):
        Epoch(1, 10, (a, a))
    assert signing_domain("x", 0) == "x" and signing_domain("x", 3) == "x/epoch/3"


def test_config_refuses_an_epoch_that_starts_off_a_checkpoint() -> None:
    with pytest.raises(ValueError, match="starts after a checkpoint height"):
        ConsensusConfig(CHAIN_ID, 4, epoch=1, base_height=5, checkpoint_interval=4)


# ------------------------------------------------------------ the epoch's end
def test_the_cluster_fills_the_way_to_the_end_with_empty_blocks_and_stops_there() -> None:
    c = Cluster(4, **KNOBS)
    c.epoch_end = boundary(1, K, L)  # 12
    c.request(b"tx:1")
    c.run(until=5_000)
    assert c.heights() == [12, 12, 12, 12]
    c.assert_agreement()
    assert all(c.replica(i).epoch_complete for i in range(4))
    payloads = [b.payload for b in c.nodes[0].blocks]
    assert payloads[0] == (b"tx:1",) and all(p == () for p in payloads[1:])
    # a request after the end is never proposed in this epoch
    c.request(b"tx:late")
    c.run(until=20_000)
    assert c.heights() == [12, 12, 12, 12]


def test_an_unknown_end_proposes_nothing_when_idle() -> None:
    c = Cluster(4, **KNOBS)
    c.request(b"tx:1")
    c.run(until=5_000)
    assert c.heights() == [1, 1, 1, 1]
    assert not any(c.replica(i).epoch_complete for i in range(4))


def test_a_pre_prepare_above_the_end_is_dropped_not_buffered() -> None:
    s = Solo(4, 3, **KNOBS)
    s.epoch_end = boundary(1, K, L)  # a change executed at height 1: the end is 12
    s.commit_heights([1])  # executes 1: the replica learns its end
    assert s.replica.epoch_end == 12
    beyond = s.craft.pre_prepare(0, 13, (b"tx:13",))
    assert _prepares(s.feed(beyond)) == []
    # the window moves past 13 (stable checkpoint at 8): a buffered 13 would be
    # replayed now; a dropped one is not
    out = s.commit_heights(range(2, 9))
    out += s.make_stable(8)
    assert s.replica.high_watermark == 16
    assert 13 not in [p.height for p in _prepares(out)]
    inside = s.craft.pre_prepare(0, 12, (b"tx:12",))
    assert [p.height for p in _prepares(s.feed(inside))] == [12]
    with pytest.raises(AssertionError, match="epoch end that moved"):
        s.replica.on_executed(9, b"r" * 32, s.now, epoch_end=16)


def test_a_restarted_replica_knows_its_end_at_once() -> None:
    s = Solo(4, 3, **KNOBS)
    s.commit_heights([1, 2])
    # the state said so before the restart: the new replica is told when built
    told = Replica(
        s.config,
        3,
        s.scheme.signer(3),
        s.scheme.verifier(),
        s.craft.rules,
        records=dict(s.records),
        tip=ChainTip(2, 2, s.roots[2]),
        epoch_end=12,
    )
    assert told.epoch_end == 12
    with pytest.raises(ValueError, match="cannot end at height 6"):
        Replica(s.config, 3, s.scheme.signer(3), s.scheme.verifier(), s.craft.rules, epoch_end=6)


# ---------------------------------------------------------------- the horizon
def test_votes_beyond_the_horizon_wait_until_execution_catches_up() -> None:
    """A replica whose stable checkpoint (adopted, at 16) is far above what it
    executed (0) knows the validator set only up to executed + L + 1 = 9: a
    pre-prepare at 17 waits, and is voted on once the blocks up to 16 ran."""
    maker = Solo(4, 3, **KNOBS)
    maker.commit_heights(range(1, 9))
    maker.make_stable(8)
    maker.commit_heights(range(9, 17))
    assert maker.replica.height == 16
    blocks = list(maker.blocks)
    proof = tuple(maker.craft.checkpoint(16, maker.roots[16], i) for i in (0, 1, 2))
    stable = {KEY_STABLE: canonical(StableRecord(16, maker.roots[16], proof))}
    s = Solo(4, 3, records=stable, **KNOBS)
    assert s.replica.low_watermark == 16 and s.replica.height == 0
    pp = s.craft.pre_prepare(0, 17, (b"tx:17",))
    assert _prepares(s.feed(pp)) == []
    out: list[Action] = []
    for block in blocks:
        out += s.block(block)
    assert s.replica.height == 16
    assert [p.height for p in _prepares(out)] == [17]


# ------------------------------------------------------------- a later epoch
def _epoch1() -> ConsensusConfig:
    return ConsensusConfig(CHAIN_ID, 4, epoch=1, base_height=16, **KNOBS)


def test_a_later_epoch_starts_at_its_base_and_refuses_other_epochs_votes() -> None:
    cfg = _epoch1()
    s = Solo(4, 3, config=cfg, tip=ChainTip(16, 16, b"r" * 32))
    assert s.replica.low_watermark == 16 and s.replica.height == 16
    ours = s.craft.pre_prepare(0, 17, (b"tx:17",), ts=17)
    assert [p.height for p in _prepares(s.feed(ours))] == [17]
    # the same pre-prepare signed under epoch 0 (where primary 0 was a validator too)
    unsigned = PrePrepare(ours.view, ours.proposal, ours.payload, ours.sender)
    theirs = sign_message(unsigned, s.scheme.signer(0).sign, signing_domain(CHAIN_ID, 0))
    assert theirs.sig != ours.sig
    assert "bad-signature" in _reasons(s.feed(theirs))


def test_a_later_epochs_view_change_starts_from_the_base_without_proof() -> None:
    cfg = _epoch1()
    s = Solo(4, 3, config=cfg, tip=ChainTip(16, 16, b"r" * 32))
    c = s.craft
    at_base = c.view_change(1, 0, stable=(16, b"", ()))
    out = s.feed(at_base)
    assert not [r for r in _reasons(out) if "view-change" in r]
    below = c.view_change(1, 1, stable=(0, b"", ()))
    reasons = _reasons(s.feed(below))
    assert "bad-view-change: stable height is not a checkpoint height" in reasons


def test_a_replica_cannot_start_an_epoch_the_chain_has_not_reached() -> None:
    cfg = _epoch1()
    with pytest.raises(ValueError, match="starts after height 16"):
        Solo(4, 3, config=cfg, tip=ChainTip(12, 12, b"r" * 32))


def test_a_message_marked_as_of_another_epoch_is_refused() -> None:
    s = Solo(4, 3, **KNOBS)
    pp = s.craft.pre_prepare(0, 1, (b"tx:1",))
    assert s.replica.on_message(pp, 0, epoch=1) == [Rejected(-1, "wrong-epoch")]
    assert [p.height for p in _prepares(s.feed(pp))] == [1]
