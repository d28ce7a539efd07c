"""``node.engine.epoch_keys``: the daemon's view of each epoch's validator set.

- a block is certified by its own epoch's set, and a height beyond the
  horizon (a change may still commit below it) has no certifier yet;
- each epoch's config names its n, number and base height, and keeps
  genesis's knobs;
- a consensus message of a known epoch may carry only the peer's own index;
- verifiers are kept for the latest few epochs, epoch 0's being the one given.
"""

from __future__ import annotations

from consensus.config import ConsensusConfig
from consensus.epochs import Epoch, EpochSchedule
from node.core.keys import ValidatorVerifier
from node.engine.epoch_keys import KEPT_EPOCHS, EpochKeys
from node.net.signatures import PreverifiedSignatures

KEYS = tuple(bytes([i]) * 32 for i in range(7))
BASE = ConsensusConfig("c", 4, checkpoint_interval=4, watermark_window=8)


def _keys(schedule: EpochSchedule) -> EpochKeys:
    genesis = PreverifiedSignatures(ValidatorVerifier(list(KEYS[:4])), list(KEYS[:4]))
    return EpochKeys(BASE, schedule, genesis)


def test_each_height_is_certified_by_its_own_set_and_none_beyond_the_horizon() -> None:
    schedule = EpochSchedule.genesis(KEYS[:4]).with_epoch(Epoch(1, 17, KEYS))
    keys = _keys(schedule)
    got = keys.certifier(16, executed=10)
    assert got is not None and got[0].n == 4 and got[0].epoch == 0
    got = keys.certifier(17, executed=10)
    assert got is not None and (got[0].n, got[0].epoch, got[0].base_height) == (7, 1, 16)
    assert got[0].watermark_window == BASE.watermark_window
    # epoch 1 has no end yet: beyond 10 + 8 + 1 nobody can tell which set certifies
    assert keys.certifier(19, executed=10) is not None
    assert keys.certifier(20, executed=10) is None
    assert keys.certifier(20, executed=11) is not None


def test_a_peer_may_speak_only_with_its_own_index_of_a_known_epoch() -> None:
    schedule = EpochSchedule.genesis(KEYS[:4]).with_epoch(Epoch(1, 17, (KEYS[6], *KEYS[1:4])))
    keys = _keys(schedule)
    assert keys.index_of(0, KEYS[0]) == 0 and keys.index_of(1, KEYS[0]) is None
    assert keys.index_of(1, KEYS[6]) == 0
    assert keys.index_of(2, KEYS[6]) is None  # not known (yet)
    assert keys.current_keys(executed=16) == {KEYS[6], *KEYS[1:4]}
    assert keys.current_keys(executed=3) == {KEYS[0], KEYS[6], *KEYS[1:4]}


def test_verifiers_are_kept_for_the_latest_epochs() -> None:
    schedule = EpochSchedule.genesis(KEYS[:4])
    for n in range(1, KEPT_EPOCHS + 3):
        schedule = schedule.with_epoch(Epoch(n, 16 * n + 1, KEYS[: 4 + n % 3]))
    keys = _keys(schedule)
    first = keys.signatures(schedule.epochs[0])
    assert keys.signatures(schedule.epochs[0]) is first  # the one given for genesis
    for epoch in schedule.epochs[1:]:
        assert keys.signatures(epoch) is keys.signatures(epoch)
    assert keys.signatures(schedule.epochs[0]) is not first  # forgotten, rebuilt
    assert keys.refresh(schedule) is False
    assert keys.refresh(schedule.with_epoch(Epoch(len(schedule), 999, KEYS[:4]))) is True
