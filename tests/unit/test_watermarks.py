"""Pipelining and watermarks: the pipeline window, the high watermark, buffering
of pre-prepares above it (Fabric #1119) and messages below the low watermark."""

from __future__ import annotations

from consensus.actions import Evidence, Persist
from consensus.messages import Checkpoint, Commit, Message, Prepare, PrePrepare
from tests.unit.cluster import Cluster, Envelope, Knobs, Solo, of_type, sent_messages

SMALL: Knobs = {"checkpoint_interval": 2, "watermark_window": 4, "pipeline_window": 4}
SMALL_B1: Knobs = {**SMALL, "batch_max_count": 1}


def proposed_heights(c: Cluster, i: int) -> list[int]:
    return [m.height for m in c.nodes[i].sent if isinstance(m, PrePrepare)]


def test_primary_never_exceeds_the_pipeline_window() -> None:
    """With 10 requests waiting and W=3, the primary has at most 3 proposals above
    its delivered height after every single message delivery, and all 10 commit."""
    c = Cluster(4, batch_max_count=1, pipeline_window=3)
    for i in range(10):
        c.request(b"tx:%d" % i)
    assert proposed_heights(c, 0) == [1, 2, 3]
    while c.queue:
        c.step()
        primary = c.replica(0)
        assert max(proposed_heights(c, 0)) - primary.height <= 3
    assert c.heights() == [10] * 4
    assert proposed_heights(c, 0) == list(range(1, 11))
    c.assert_agreement()


def test_primary_stops_at_the_high_watermark_until_a_checkpoint_is_stable() -> None:
    """K=2, L=4: with every CHECKPOINT held back, the primary proposes nothing above
    height 4 (its high watermark) though it delivered 4; once the checkpoints are
    delivered the window moves and all requests commit."""
    c = Cluster(4, **SMALL_B1)
    for i in range(9):
        c.request(b"tx:%d" % i)

    def not_cp(e: Envelope) -> bool:
        return not isinstance(e.msg, Checkpoint)

    while c.deliver_where(not_cp):
        pass
    assert c.heights() == [4] * 4
    assert max(proposed_heights(c, 0)) == 4
    assert c.replica(0).low_watermark == 0 and c.replica(0).high_watermark == 4
    c.deliver_all()
    assert c.heights() == [9] * 4
    assert all(n.replica.low_watermark == 8 for n in c.nodes)
    c.assert_agreement()


def test_pre_prepares_above_the_high_watermark_are_buffered_not_dropped() -> None:
    """Fabric #1119: node 3 gets its CHECKPOINTs late, so the primary's pre-prepares
    for heights 5..8 arrive above node 3's high watermark. Node 3 does not vote on
    them then, but once the checkpoints arrive it votes on every one of them and
    catches up, without any view change or state transfer."""
    c = Cluster(4, **SMALL_B1)
    for i in range(8):
        c.request(b"tx:%d" % i)

    def not_held(e: Envelope) -> bool:
        return not (isinstance(e.msg, Checkpoint) and e.dst == 3)

    while c.deliver_where(not_held):
        pass
    assert c.heights()[:3] == [8, 8, 8]
    assert c.replica(3).high_watermark == 4
    prepared_by_3 = {m.height for m in c.nodes[3].sent if isinstance(m, Prepare)}
    assert prepared_by_3 == {1, 2, 3, 4}, "nothing above the high watermark yet"
    c.deliver_all()
    prepared_by_3 = {m.height for m in c.nodes[3].sent if isinstance(m, Prepare)}
    assert prepared_by_3 == set(range(1, 9)), "buffered pre-prepares were replayed"
    assert c.heights() == [8] * 4
    assert all(not n.events for n in c.nodes), [n.events for n in c.nodes]
    c.assert_agreement()


def test_messages_below_the_low_watermark_are_ignored() -> None:
    """After checkpoint 2 is stable, a pre-prepare (even a conflicting one), a
    prepare or a commit for heights 1..2 yields no vote, no persist and no evidence."""
    s = Solo(4, 3, **SMALL)
    s.commit_heights(range(1, 3))
    s.make_stable(2)
    assert s.replica.low_watermark == 2
    c = s.craft
    old: list[Message] = [
        c.pre_prepare(0, 1, (b"tx:other",)),
        c.pre_prepare(0, 2, (b"tx:2",)),
        c.prepare(0, 1, b"\x01" * 32, 1),
        c.commit(0, 2, b"\x02" * 32, 2),
        c.commit(0, 1, b"\x03" * 32, 0),
    ]
    for m in old:
        out = s.feed(m)
        assert not sent_messages(out), m
        assert not of_type(out, Persist), m
        assert not of_type(out, Evidence), m
    assert s.replica.height == 2


def test_votes_above_the_high_watermark_are_kept_for_later() -> None:
    """A backup that has not seen a stable checkpoint keeps the pre-prepare, prepares
    and commits of height 5 (> high watermark 4): it neither votes nor persists
    anything for them, and once checkpoint 2 is stable (high watermark 6) it
    replays them, votes and delivers height 5."""
    s = Solo(4, 3, **SMALL)
    c = s.craft
    pp5 = c.pre_prepare(0, 5, (b"tx:5",))
    d5 = pp5.proposal.digest()
    early: list[Message] = [pp5, c.prepare(0, 5, d5, 1), c.prepare(0, 5, d5, 2)]
    early += [c.commit(0, 5, d5, i) for i in (0, 1, 2)]
    out = s.feed(*early)
    assert not sent_messages(out) and not of_type(out, Persist)
    s.commit_heights(range(1, 5))
    assert s.replica.height == 4
    assert not [m for m in sent_messages(s.log) if getattr(m, "height", 0) == 5]
    s.make_stable(2)
    assert s.replica.low_watermark == 2
    assert s.replica.height == 5, "buffered height-5 messages were replayed"
    votes5 = [m for m in sent_messages(s.log) if isinstance(m, Prepare | Commit) and m.height == 5]
    assert {type(m) for m in votes5} == {Prepare, Commit}


def test_buffer_is_bounded_per_sender() -> None:
    """A sender flooding far-future messages fills at most future_buffer_limit
    slots; the replica neither answers nor fails."""
    knobs: Knobs = {**SMALL, "future_buffer_limit": 5}
    s = Solo(4, 3, **knobs)
    flood = [s.craft.prepare(0, 100 + i, b"\x00" * 32, 1) for i in range(50)]
    assert not s.feed(*flood)
    # the replica is still healthy: it commits height 1 normally
    s.commit_heights(range(1, 2))
    assert s.replica.height == 1


def test_envelope_helpers_are_fifo() -> None:
    """Harness sanity: broadcasts are queued in FIFO order, one envelope per peer."""
    c = Cluster(4, batch_max_count=1)
    c.request(b"tx:0", to=[0])
    assert [(e.src, e.dst) for e in c.queue] == [(0, 1), (0, 2), (0, 3)]
    assert all(isinstance(e, Envelope) and isinstance(e.msg, PrePrepare) for e in c.queue)
