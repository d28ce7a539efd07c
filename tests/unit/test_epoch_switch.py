"""``node.engine.epoch_switch``: one node's consensus across epochs.

- a node outside the set follows: certified blocks are delivered in height
  order, each checked against its own epoch's set; a forged certificate is
  refused and nothing after it is delivered; blocks whose set is not known yet
  (beyond the horizon) wait;
- a validator's replica gets only its epoch's messages; a later epoch's wait
  for the hand-over, an earlier one's are refused without blaming anyone;
- its actions name their epoch, and its records live under the epoch's scope;
- at the end of the epoch the next set's replica takes over from the tip, with
  the requests the old one still held.
The simulator's ``epochs-*`` scenarios drive the same class through whole runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from consensus.actions import Action, Broadcast, Deliver, Persist, Rejected
from consensus.config import ConsensusConfig
from consensus.crypto import Verifier
from consensus.epochs import Epoch, EpochSchedule, boundary
from consensus.messages import Commit, CommittedBlock, Prepare
from consensus.replica import ChainTip, Replica
from node.engine.epoch_switch import EpochSwitch, scoped, unscoped
from node.sim.crypto import KeyedHashScheme, SimPayloadRules
from tests.unit.cluster import Knobs, Solo, make_config

K, L = 4, 8
KNOBS: Knobs = {"checkpoint_interval": K, "watermark_window": L, "pipeline_window": 2}
KEYS = tuple(bytes([i]) * 32 for i in range(4))
OUTSIDER = b"\xee" * 32


class Chain:
    """Certified blocks made by four crafted validators (a ``Solo`` as validator 3)."""

    def __init__(self, heights: int) -> None:
        self.solo = Solo(4, 3, **KNOBS)
        for start in range(1, heights + 1, L):
            self.solo.commit_heights(range(start, min(start + L, heights + 1)))
            top = min(start + L - 1, heights)
            if top % K == 0:
                self.solo.make_stable(top)
        assert self.solo.replica.height == heights
        self.blocks = list(self.solo.blocks)
        self.scheme: KeyedHashScheme = self.solo.scheme


def _switch(
    me: bytes,
    schedule: EpochSchedule,
    scheme: KeyedHashScheme,
    *,
    records: Mapping[bytes, bytes] | None = None,
    tip: ChainTip | None = None,
) -> EpochSwitch:
    base = make_config(4, **KNOBS)

    def make(
        config: ConsensusConfig,
        index: int,
        recs: Mapping[bytes, bytes],
        at: ChainTip,
        end: int | None,
    ) -> Replica:
        return Replica(
            config,
            index,
            scheme.signer(index),
            scheme.verifier(),
            SimPayloadRules(),
            records=recs,
            tip=at,
            epoch_end=end,
        )

    def verifier_for(epoch: Epoch) -> Verifier:
        return scheme.verifier()

    return EpochSwitch(
        base,
        me,
        schedule=lambda: schedule,
        make_replica=make,
        verifier_for=verifier_for,
        rules=SimPayloadRules(),
        records=records or {},
        tip=tip or ChainTip(0, 0, b""),
    )


def _delivered(actions: list[Action]) -> list[int]:
    return [a.block.height for a in actions if isinstance(a, Deliver)]


def _execute(switch: EpochSwitch, actions: list[Action]) -> list[Action]:
    """Feed back ``on_executed`` for every delivered block, as a driver does."""
    out: list[Action] = []
    for h in _delivered(actions):
        out += switch.on_executed(h, b"r%d" % h, 0)
    return out


# ------------------------------------------------------------------ records
def test_records_of_each_epoch_live_under_their_own_scope() -> None:
    records = {b"view": b"0", scoped(2, b"view"): b"2", scoped(2, b"slot/x"): b"s"}
    assert unscoped(0, records) == {b"view": b"0"}
    assert unscoped(2, records) == {b"view": b"2", b"slot/x": b"s"}
    assert unscoped(1, records) == {}


# ----------------------------------------------------------------- follower
def test_a_follower_delivers_certified_blocks_in_order() -> None:
    chain = Chain(6)
    switch = _switch(OUTSIDER, EpochSchedule.genesis(KEYS), chain.scheme)
    assert not switch.is_validator
    b1, b2, b3 = chain.blocks[:3]
    assert _delivered(switch.on_committed_block(b3, 0)) == []  # waits for 1 and 2
    assert _delivered(switch.on_committed_block(b2, 0)) == []
    assert _delivered(switch.on_committed_block(b1, 0)) == [1, 2, 3]
    # a follower never votes, whatever it is sent
    pp = chain.solo.craft.pre_prepare(0, 4, (b"tx:4",))
    assert switch.on_message(pp, 0, 0) == []
    assert switch.on_request(b"tx:x", 0) == []


def test_a_forged_certificate_is_refused_and_nothing_after_it_delivered() -> None:
    chain = Chain(3)
    switch = _switch(OUTSIDER, EpochSchedule.genesis(KEYS), chain.scheme)
    b1, b2, b3 = chain.blocks
    bad = CommittedBlock(
        b2.proposal,
        b2.payload,
        tuple(Commit(c.view, c.height, c.digest, c.sender, b"\x00" * 16) for c in b2.certificate),
    )
    out = switch.on_committed_block(b1, 0) + switch.on_committed_block(bad, 0)
    out += switch.on_committed_block(b3, 0)
    assert _delivered(out) == [1]
    assert any(isinstance(a, Rejected) and a.reason.startswith("bad-sync-block") for a in out)


def test_a_follower_waits_for_blocks_whose_set_it_cannot_know_yet() -> None:
    chain = Chain(L + 3)
    switch = _switch(OUTSIDER, EpochSchedule.genesis(KEYS), chain.scheme)
    out: list[Action] = []
    for b in chain.blocks:
        out += switch.on_committed_block(b, 0)
    # nothing executed yet: heights above 0 + L + 1 may belong to a set not known
    assert _delivered(out) == list(range(1, L + 2))
    later = _execute(switch, out)
    assert _delivered(later) == [L + 2, L + 3]


# ---------------------------------------------------------------- validator
def test_messages_of_other_epochs_wait_or_are_refused_without_blame() -> None:
    scheme = KeyedHashScheme(4, 0)
    switch = _switch(KEYS[3], EpochSchedule.genesis(KEYS), scheme)
    assert switch.is_validator and switch.epoch.number == 0
    switch.start(0)
    craft = Solo(4, 3, **KNOBS).craft
    pp = craft.pre_prepare(0, 1, (b"tx:1",))
    assert switch.on_message(pp, 0, epoch=3) == []  # kept for epoch 3
    assert not [a for a in switch.on_message(pp, 0, epoch=0) if isinstance(a, Rejected)]


def test_a_later_epochs_replica_stamps_its_actions_and_scopes_its_records() -> None:
    scheme = KeyedHashScheme(4, 0)
    end = boundary(1, K, L)
    schedule = EpochSchedule.genesis((*KEYS[:3], OUTSIDER)).with_epoch(Epoch(1, end + 1, KEYS))
    switch = _switch(KEYS[3], schedule, scheme, tip=ChainTip(end, end, b"r"))
    assert switch.is_validator and switch.epoch.number == 1
    actions = switch.start(0)
    broadcasts = [a for a in actions if isinstance(a, Broadcast)]
    assert broadcasts and all(a.epoch == 1 for a in broadcasts)
    base = make_config(4, **KNOBS)
    config = ConsensusConfig(base.chain_id, 4, epoch=1, base_height=end, **KNOBS)
    craft = Solo(4, 3, config=config, tip=ChainTip(end, end, b"r")).craft
    pp = craft.pre_prepare(0, end + 1, (b"tx:a",), ts=end + 1)
    out = switch.on_message(pp, 0, epoch=1)
    persisted = [k for a in out if isinstance(a, Persist) for k, _v in a.records]
    assert persisted and all(k.startswith(b"e/1/") for k in persisted)
    prepares = [a for a in out if isinstance(a, Broadcast) and isinstance(a.message, Prepare)]
    assert [a.epoch for a in prepares] == [1]
    # the same vote as epoch 0 saw it: stale, nobody blamed
    stale = switch.on_message(pp, 0, epoch=0)
    assert stale == [Rejected(-1, "stale-epoch", 0)]


def test_the_next_sets_replica_takes_over_at_the_end_with_the_pending_requests() -> None:
    chain = Chain(1)
    scheme = chain.scheme
    end = boundary(1, K, L)  # the change below executes at height 1
    schedule = EpochSchedule.genesis(KEYS)
    switch = _switch(KEYS[3], schedule, scheme)
    switch.start(0)
    # the state after block 1 holds a change: epoch 1 (the same set) from end + 1
    changed = schedule.with_epoch(Epoch(1, end + 1, KEYS))
    switch._schedule_of = lambda: changed
    out = switch.on_committed_block(chain.blocks[0], 0)
    switch.on_request(b"tx:waiting", 0)
    out += _execute(switch, out)
    assert switch.replica is not None and switch.replica.epoch_end == end
    # blocks 2..end, certified by epoch 0, come by sync; executing end hands over
    more = Chain(end)
    for b in more.blocks[1:]:
        delivered = switch.on_committed_block(b, 0)
        _execute(switch, delivered)
    assert switch.epoch.number == 1 and switch.replica is not None
    assert switch.replica.config.base_height == end
    assert switch.replica.pending_count == 1  # tx:waiting went along
