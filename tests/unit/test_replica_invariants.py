"""The replica's invariants are checked (``_invariant`` in ``consensus/replica.py``):
a replica whose state contradicts what its safety rests on raises
``AssertionError`` instead of voting on.

Each test first shows the honest path passes, then forces a field to a value no
transition produces and calls an entry point:

- quorum arithmetic: n >= 3f + 1, 2f + 1 when n = 3f + 1, two quorums share
  f + 1 replicas (checked when the replica is built);
- the view and the stable checkpoint never go back;
- at most one vote per (height, view, kind), re-sent only identical;
- the driver executes only delivered heights, and a replica below its low
  watermark has delivered it or is fetching it;
- the primary proposes only inside the watermarks and the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from consensus.actions import NeedSync
from consensus.config import ConsensusConfig
from consensus.messages import Prepare, PrePrepare, canonical
from consensus.records import KEY_STABLE, StableRecord
from consensus.replica import Replica
from tests.unit.cluster import CHAIN_ID, Knobs, Solo, of_type, sent_messages

SMALL: Knobs = {"checkpoint_interval": 2, "watermark_window": 4, "batch_max_count": 1}


def _build(s: Solo, config: ConsensusConfig) -> Replica:
    return Replica(config, s.me, s.scheme.signer(s.me), s.scheme.verifier(), s.craft.rules)


# ------------------------------------------------------------------ quorums
def test_every_cluster_size_has_sound_quorums() -> None:
    for n in range(1, 101):
        s = Solo(n, 0)  # builds and starts the replica: the quorum checks pass
        q, f = s.config.quorum, s.config.f
        assert 2 * q - n >= f + 1 and q <= n - f


@dataclass(frozen=True)
class _SmallQuorum(ConsensusConfig):
    @property
    def quorum(self) -> int:
        return self.f + 1  # two quorums of n = 4 need not share an honest replica


@dataclass(frozen=True)
class _TooManyFaults(ConsensusConfig):
    @property
    def f(self) -> int:
        return (self.n + 1) // 3  # f = 2 for n = 5, which needs n >= 7


def test_a_config_with_broken_quorum_arithmetic_is_refused() -> None:
    s = Solo(4, 0)
    with pytest.raises(AssertionError, match="quorum is 2f \\+ 1"):
        _build(s, _SmallQuorum(chain_id=CHAIN_ID, n=4))
    with pytest.raises(AssertionError, match="n >= 3f \\+ 1"):
        _build(s, _TooManyFaults(chain_id=CHAIN_ID, n=5))


# ------------------------------------------------------- views, checkpoints
def test_the_view_never_goes_back() -> None:
    """Replica 3 joins view 1 (f+1 VIEW-CHANGEs); forced back to view 0, its
    next input raises."""
    s = Solo(4, 3)
    s.feed(s.craft.view_change(1, 1), s.craft.view_change(1, 2), now=10)
    assert (s.replica.view, s.replica.in_view_change) == (1, True)
    s.timer(1_000)  # honest: fine
    s.replica._view = 0
    with pytest.raises(AssertionError, match="the view went back"):
        s.timer(1_500)


def test_the_stable_checkpoint_never_goes_back() -> None:
    """K = 2: heights 1 and 2 commit, checkpoint 2 becomes stable; forced back
    to 0, the next input raises."""
    s = Solo(4, 3, **SMALL)
    s.commit_heights([1, 2])
    s.make_stable(2)
    assert s.replica.low_watermark == 2
    s.timer(1_000)
    s.replica._low = 0
    with pytest.raises(AssertionError, match="the stable checkpoint went back"):
        s.timer(2_000)


# ---------------------------------------------------------------- watermarks
def test_the_driver_executes_only_delivered_heights() -> None:
    s = Solo(4, 3)
    assert s.replica.height == 0
    with pytest.raises(AssertionError, match="executed a height never delivered"):
        s.replica.on_executed(1, b"r" * 32, 10)


def test_a_replica_below_its_low_watermark_is_fetching_it() -> None:
    """Restored from a stable checkpoint at 16 with an empty chain, a replica asks
    for the blocks (NeedSync 16) and stays valid; one forced to that checkpoint
    without asking raises at its next input."""
    s = Solo(4, 3)
    proof = tuple(s.craft.checkpoint(16, b"r" * 32, i) for i in (0, 1, 2))
    s.records[KEY_STABLE] = canonical(StableRecord(16, b"r" * 32, proof))
    out = s.restart(now=10)
    assert NeedSync(16, ()) in of_type(out, NeedSync)
    assert s.replica.low_watermark == 16
    s.timer(2_000)  # still fetching: fine

    t = Solo(4, 3)
    t.replica._low = 16
    with pytest.raises(AssertionError, match="below the low watermark without fetching it"):
        t.timer(1_000)


def test_the_primary_proposes_only_inside_the_watermarks(monkeypatch: pytest.MonkeyPatch) -> None:
    """With its window check broken, a primary whose window is full raises
    instead of proposing height L + 1."""
    s = Solo(4, 0, batch_max_count=1, batch_timeout_ms=0)
    r = s.replica
    r._last_proposed = r.high_watermark
    s.request(b"tx:a")  # honest: the window is full, nothing is proposed
    assert not sent_messages(s.log, PrePrepare)
    monkeypatch.setattr(r, "_can_propose_next", lambda: True)
    with pytest.raises(AssertionError, match="a proposal outside the watermarks"):
        s.request(b"tx:b")


# ------------------------------------------------------------------- votes
def test_a_second_prepare_for_one_height_and_view_raises() -> None:
    """Backup 3 prepared tx:a at height 1 in view 0. Made to forget it (the slot's
    acceptance and first-vote record reset), it would PREPARE tx:b for the
    same height and view: that raises instead."""
    s = Solo(4, 3)
    c = s.craft
    a = c.pre_prepare(0, 1, (b"tx:a",))
    out = s.feed(a)
    assert [m.digest for m in sent_messages(out, Prepare) if isinstance(m, Prepare)] == [
        a.proposal.digest()
    ]
    slot = s.replica._slots[1]
    slot.accepted_view = slot.prepare_sent_view = -1
    slot.first_votes.clear()
    with pytest.raises(AssertionError, match="a second prepare vote at one height"):
        s.feed(c.pre_prepare(0, 1, (b"tx:b",)))


def test_a_repeated_vote_must_be_identical() -> None:
    """Repeating its PREPARE after a resend interval is fine; with the accepted
    proposal swapped for another of the same view, the repeat raises (a long
    view-change timeout keeps the resend ticks apart from it)."""
    s = Solo(4, 3, view_change_timeout_ms=10_000)
    c = s.craft
    s.feed(c.pre_prepare(0, 1, (b"tx:a",)))
    out = s.timer(1_000)  # the resend tick repeats the identical PREPARE
    assert len(sent_messages(out, Prepare)) == 1
    s.replica._slots[1].accepted = c.pre_prepare(0, 1, (b"tx:b",))
    with pytest.raises(AssertionError, match="a second prepare vote at one height"):
        s.timer(2_000)


def test_a_second_commit_for_one_height_and_view_raises() -> None:
    """Backup 3 committed tx:a at height 1 in view 0; forced to forget that and
    to accept tx:b, the prepares for tx:b would make it COMMIT again: raises."""
    s = Solo(4, 3)
    c = s.craft
    a, b = c.pre_prepare(0, 1, (b"tx:a",)), c.pre_prepare(0, 1, (b"tx:b",))
    s.feed(a, *(c.prepare(0, 1, a.proposal.digest(), i) for i in (1, 2)))
    slot = s.replica._slots[1]
    assert slot.commit_view == 0
    slot.commit_view = -1
    slot.accepted = b
    slot.first_votes.clear()
    with pytest.raises(AssertionError, match="a second commit vote at one height"):
        s.feed(*(c.prepare(0, 1, b.proposal.digest(), i) for i in (1, 2)))
