"""View change: timeouts, VIEW-CHANGE / NEW-VIEW, re-proposal of prepared values,
the f+1 join rule, backoff, learning a missed view, and censorship."""

from __future__ import annotations

import msgspec

from consensus.actions import Action, Broadcast, Rejected, Relay, Send, ViewChanged
from consensus.messages import (
    Commit,
    NewView,
    NewViewRequest,
    Prepare,
    PrePrepare,
    ViewChange,
)
from tests.unit.cluster import Cluster, Solo, of_type, sent_messages

BASE = 2_000  # ConsensusConfig.view_change_timeout_ms default


def view_changes_sent(actions: list[Action]) -> list[ViewChange]:
    return [m for m in sent_messages(actions, ViewChange) if isinstance(m, ViewChange)]


def entered(c: Cluster, i: int) -> list[tuple[int, int, str]]:
    """(time, view, cause) of node i's ViewChanged events."""
    return [(t, a.view, a.cause) for t, a in c.nodes[i].timeline if isinstance(a, ViewChanged)]


def test_silent_primary_is_replaced_and_commits_continue() -> None:
    """Primary 0 is cut off with a request pending: after view_change_timeout_ms the
    backups broadcast VIEW-CHANGE(1), replica 1 sends NEW-VIEW(1), and requests
    commit in view 1 (certificates of view 1) on every connected replica."""
    c = Cluster(4, batch_max_count=1)
    c.isolated.add(0)
    c.request(b"tx:a")
    c.run(until=BASE - 1)
    assert all(n.replica.view == 0 for n in c.nodes), "no view change before the timeout"
    c.run(until=BASE + 500)
    for i in (1, 2, 3):
        vcs = [m for m in c.nodes[i].sent if isinstance(m, ViewChange)]
        assert vcs and vcs[0].new_view == 1
        assert (c.replica(i).view, c.replica(i).in_view_change) == (1, False)
        assert entered(c, i)[0] == (BASE, 1, "progress timeout")
    assert [m.view for m in c.nodes[1].sent if isinstance(m, NewView)] == [1]
    assert c.heights()[1:] == [1, 1, 1]
    c.request(b"tx:b")
    c.run(until=BASE + 1000)
    assert c.heights()[1:] == [2, 2, 2]
    for b in c.nodes[2].blocks:
        assert {x.view for x in b.certificate} == {1}
    c.assert_agreement()


def _prepared_then_primary_lost() -> Cluster:
    """Height 1 (tx:a) is prepared everywhere but its view-0 commits are lost;
    then primary 0 is cut off and the backups change view."""
    c = Cluster(4, batch_max_count=1)
    c.drop_if = lambda e: isinstance(e.msg, Commit) and e.msg.view == 0
    c.request(b"tx:a")
    c.deliver_all()
    assert c.heights() == [0, 0, 0, 0]
    assert all(r["prepared"] for i in range(4) for r in c.replica(i).in_flight())
    c.isolated.add(0)
    c.run(until=3 * BASE)
    return c


def test_prepared_value_is_reproposed_with_the_same_digest() -> None:
    """A value prepared at height 1 in view 0 reappears in NEW-VIEW(1) as the
    identical proposal (same digest, timestamp and proposer; the payload stays
    behind, the replicas have it), and that is what commits at height 1, with
    the original payload."""
    c = _prepared_then_primary_lost()
    original = next(m for m in c.nodes[0].sent if isinstance(m, PrePrepare))
    (nv,) = [m for m in c.nodes[1].sent if isinstance(m, NewView)]
    assert [pp.height for pp in nv.pre_prepares] == [1]
    re = nv.pre_prepares[0]
    assert (re.view, re.sender) == (1, 1)
    assert re.proposal == original.proposal and re.payload == ()
    for i in (1, 2, 3):
        assert c.nodes[i].blocks[0].proposal.digest() == original.proposal.digest()
        assert c.nodes[i].blocks[0].payload == original.payload
    c.assert_agreement()


def _vc_material(s: Solo) -> tuple[PrePrepare, tuple[ViewChange, ...]]:
    """A view-0 pre-prepare at height 1 prepared by 1 and 2, and VIEW-CHANGE(1)s
    of replicas 0, 1, 2, the one of 1 carrying the prepared certificate."""
    c = s.craft
    pp = c.pre_prepare(0, 1, (b"tx:a",), ts=5)
    cert = c.prepared_cert(pp, [1, 2])
    vcs = (c.view_change(1, 0), c.view_change(1, 1, (cert,)), c.view_change(1, 2))
    return pp, vcs


def test_valid_new_view_is_accepted_and_voted_on() -> None:
    """Control for the rejections below: the spec's NEW-VIEW(1) re-proposing the
    prepared value is accepted; the backup enters view 1 and PREPAREs that digest."""
    s = Solo(4, 3)
    pp, vcs = _vc_material(s)
    out = s.feed(s.craft.new_view(1, vcs))
    assert s.replica.view == 1 and not s.replica.in_view_change
    assert not of_type(out, Rejected)
    (prep,) = sent_messages(out, Prepare)
    assert isinstance(prep, Prepare)
    assert (prep.view, prep.height, prep.digest) == (1, 1, pp.proposal.digest())


def _assert_rejected(s: Solo, nv: NewView) -> None:
    out = s.feed(nv)
    assert any(isinstance(a, Rejected) and "new-view" in a.reason for a in out), out
    assert s.replica.view == 0
    assert not sent_messages(out, Prepare)


def test_new_view_that_changes_a_prepared_value_is_rejected() -> None:
    """NEW-VIEW(1) re-proposing another payload at the prepared height 1 is refused."""
    s = Solo(4, 3)
    _, vcs = _vc_material(s)
    other = s.craft.pre_prepare(1, 1, (b"tx:evil",), ts=5)
    _assert_rejected(s, s.craft.new_view(1, vcs, (other,)))


def test_new_view_that_replaces_a_prepared_value_by_an_empty_block_is_rejected() -> None:
    """NEW-VIEW(1) proposing a null block where a value was prepared is refused."""
    s = Solo(4, 3)
    _, vcs = _vc_material(s)
    empty = s.craft.pre_prepare(1, 1, (), ts=5)
    _assert_rejected(s, s.craft.new_view(1, vcs, (empty,)))


def test_new_view_that_drops_a_prepared_height_is_rejected() -> None:
    """NEW-VIEW(1) that re-proposes nothing although height 1 was prepared is refused."""
    s = Solo(4, 3)
    _, vcs = _vc_material(s)
    _assert_rejected(s, s.craft.new_view(1, vcs, ()))


def test_new_view_without_a_quorum_is_rejected() -> None:
    """NEW-VIEW(1) with 2 < quorum VIEW-CHANGEs, or 3 with a duplicated sender,
    is refused."""
    s = Solo(4, 3)
    _, vcs = _vc_material(s)
    _assert_rejected(s, s.craft.new_view(1, vcs[:2]))
    _assert_rejected(s, s.craft.new_view(1, (vcs[0], vcs[1], vcs[0])))


def test_new_view_from_a_non_primary_or_badly_signed_is_rejected() -> None:
    """NEW-VIEW(1) sent by replica 2 (primary of view 1 is 1), or whose view
    changes carry a bad signature, is refused."""
    s = Solo(4, 3)
    _, vcs = _vc_material(s)
    good = s.craft.new_view(1, vcs)
    forged = s.craft.sign(msgspec.structs.replace(good, sender=2))
    assert isinstance(forged, NewView)
    _assert_rejected(s, forged)
    bad_vc = msgspec.structs.replace(vcs[2], sig=bytes(16))
    _assert_rejected(s, s.craft.new_view(1, (vcs[0], vcs[1], bad_vc)))


def test_f_plus_one_view_changes_make_a_replica_join() -> None:
    """One VIEW-CHANGE(1) (f=1) leaves a healthy backup in view 0; a second one
    from another replica (f+1) makes it join: it broadcasts its own VIEW-CHANGE(1)."""
    s = Solo(4, 3)
    c = s.craft
    out = s.feed(c.view_change(1, 1))
    assert not view_changes_sent(out) and s.replica.view == 0
    out = s.feed(c.view_change(1, 2))
    (vc,) = view_changes_sent(out)
    assert (vc.new_view, vc.sender) == (1, 3)
    assert s.replica.view == 1 and s.replica.in_view_change


def test_join_goes_to_the_smallest_view_asked_by_f_plus_one() -> None:
    """VIEW-CHANGE(2) from 1 and VIEW-CHANGE(3) from 2: the replica joins view 2."""
    s = Solo(4, 3)
    c = s.craft
    out = s.feed(c.view_change(2, 1), c.view_change(3, 2))
    assert [vc.new_view for vc in view_changes_sent(out)] == [2]
    assert s.replica.view == 2


def test_the_same_replica_twice_is_not_f_plus_one() -> None:
    """Two VIEW-CHANGEs (views 1 and 2) from the same replica do not trigger a join."""
    s = Solo(4, 3)
    out = s.feed(s.craft.view_change(1, 1), s.craft.view_change(2, 1))
    assert not view_changes_sent(out) and s.replica.view == 0


def test_lone_replica_does_not_escalate_beyond_the_next_view() -> None:
    """A backup with a pending request that hears nobody times out into view 1,
    then, for two minutes of timer firings, re-broadcasts VIEW-CHANGE(1) and never
    asks for view 2 or beyond (no view-change storm)."""
    s = Solo(4, 3)
    s.request(b"tx:a")
    fired = s.run_timers(120_000)
    assert len(fired) > 10
    vcs = [vc for _, out in fired for vc in view_changes_sent(out)]
    assert len(vcs) >= 10, "the lone replica keeps re-broadcasting its view change"
    assert {vc.new_view for vc in vcs} == {1}
    assert s.replica.view == 1 and s.replica.in_view_change
    first = next(t for t, out in fired if view_changes_sent(out))
    assert first == BASE


def test_timeouts_double_per_consecutive_view_change_and_reset_on_delivery() -> None:
    """n=10 with the primaries of views 0, 1 and 2 cut off: the 7 others (a quorum)
    change view at 2s, then 2s+4s, then 6s+8s (doubling), and view 3 commits the
    request. After that delivery the timeout is back to the base: a request the
    new primary never sees triggers the next view change 2s after it arrived."""
    c = Cluster(10, batch_max_count=1)
    c.isolated |= {0, 1, 2}
    c.request(b"tx:a")
    c.run(until=20_000)
    starts = [(t, v) for t, v, cause in entered(c, 5) if cause != "new view"]
    assert starts == [(BASE, 1), (3 * BASE, 2), (7 * BASE, 3)]
    assert c.replica(5).view == 3 and not c.replica(5).in_view_change
    assert c.heights()[3:] == [1] * 7
    t0 = c.now
    c.request(b"tx:b", to=[i for i in range(4, 10)])  # primary 3 never sees it
    c.run(until=t0 + BASE + 10)
    starts = [(t, v) for t, v, cause in entered(c, 5) if cause != "new view"]
    assert starts[-1] == (t0 + BASE, 4), "backoff reset to the base after delivery"


def test_replica_that_missed_the_view_change_asks_for_new_view() -> None:
    """A backup still in view 0 receives view-1 traffic: the first sender alone is
    not enough, but once f+1 replicas show view 1 it sends NEW-VIEW-REQUEST(1);
    given the NEW-VIEW it enters view 1, replays the buffered pre-prepare and
    prepare and votes (PREPARE then COMMIT) in view 1."""
    s = Solo(4, 3)
    c = s.craft
    vcs = tuple(c.view_change(1, i) for i in (0, 1, 2))
    nv = c.new_view(1, vcs)
    pp = c.pre_prepare(1, 1, (b"tx:a",))
    d = pp.proposal.digest()
    out = s.feed(pp)
    assert not sent_messages(out) and s.replica.view == 0
    out = s.feed(c.prepare(1, 1, d, 2), now=10)
    reqs = [m for m in sent_messages(out, NewViewRequest) if isinstance(m, NewViewRequest)]
    assert reqs, "f+1 replicas in view 1: ask for the NEW-VIEW"
    assert {m.view for m in reqs} == {1}
    out = s.feed(nv, now=20)
    assert s.replica.view == 1 and not s.replica.in_view_change
    votes = [m for m in sent_messages(out) if isinstance(m, Prepare | Commit)]
    # the buffered PREPARE of 2 was replayed too: own + 2's = quorum-1, so COMMIT
    assert [(type(m), m.view, m.height, m.digest) for m in votes] == [
        (Prepare, 1, 1, d),
        (Commit, 1, 1, d),
    ]


def test_new_view_is_pushed_to_a_replica_in_an_older_view() -> None:
    """A replica in view 1 that receives a message of view 0 from a peer sends
    that peer its NEW-VIEW(1) (at most once per resend interval)."""
    s = Solo(4, 2)
    c = s.craft
    vcs = tuple(c.view_change(1, i) for i in (0, 1, 3))
    nv = c.new_view(1, vcs)
    s.feed(nv)
    assert s.replica.view == 1
    stale = c.prepare(0, 1, b"\x00" * 32, 3)
    out = s.feed(stale, now=5_000)
    pushes = [a for a in out if isinstance(a, Send) and isinstance(a.message, NewView)]
    assert [(a.to, a.message) for a in pushes if isinstance(a, Send)] == [(3, nv)]
    out = s.feed(c.prepare(0, 2, b"\x00" * 32, 3), now=5_001)
    assert not [a for a in out if isinstance(a, Send)], "rate-limited"
    out = s.feed(c.nv_request(1, 3), now=5_000 + s.config.resend_interval_ms)
    assert [a.message for a in out if isinstance(a, Send)] == [nv]


def test_crashed_replica_restarts_learns_the_view_and_resumes_voting() -> None:
    """Cluster: replica 3 is down while 0, 1, 2 change to view 1 (1 and 2 time out on
    a request the primary never got, 0 joins by the f+1 rule). Restarted in view 0,
    replica 3 learns view 1 from its peers' traffic, votes in view 1, and with
    state transfer for the block it missed ends up with the same chain."""
    c = Cluster(4, batch_max_count=1, checkpoint_interval=2, watermark_window=8)
    c.auto_sync = True
    c.crash(3)
    c.request(b"tx:x", to=[1, 2])
    c.run(until=BASE + 500)
    assert [c.replica(i).view for i in (0, 1, 2)] == [1, 1, 1]
    assert ("joined" in entered(c, 0)[0][2]) and c.heights()[:3] == [1, 1, 1]
    c.restart(3)
    assert c.replica(3).view == 0
    c.request(b"tx:y")
    c.request(b"tx:z")
    c.run(until=c.now + 3 * BASE)
    assert c.replica(3).view == 1 and not c.replica(3).in_view_change
    votes3 = [m for m in c.nodes[3].sent if isinstance(m, Prepare | Commit)]
    assert {(m.view, m.height) for m in votes3} >= {(1, 2), (1, 3)}
    assert c.heights() == [3, 3, 3, 3]
    c.assert_agreement()


def test_censored_request_triggers_a_view_change_after_request_timeout() -> None:
    """The primary keeps committing fresh requests every 500 ms but never includes
    tx:censored that the backups hold. Half a timeout after it arrived each backup
    relays it to the primary (which drops it here); progress never stalls, yet
    request_timeout_ms after it arrived the backups change view ("request
    timeout") and the new primary commits it."""
    c = Cluster(4, batch_max_count=1)
    req_timeout = c.config.request_timeout_ms
    c.request(b"tx:censored", to=[1, 2, 3])
    t = 0
    while t < req_timeout + 2_000:
        c.request(b"tx:%d" % t)
        t += 500
        c.run(until=t)
    relays = [(tt, a) for tt, a in c.nodes[2].timeline if isinstance(a, Relay)]
    assert relays[0][0] == c.config.view_change_timeout_ms // 2
    assert relays[0][1].to == 0 and b"tx:censored" in relays[0][1].requests
    starts = [(tt, v, cause) for tt, v, cause in entered(c, 2) if cause != "new view"]
    assert starts[0] == (req_timeout, 1, "request timeout")
    assert c.replica(2).view == 1
    payloads = [tx for b in c.nodes[2].blocks for tx in b.payload]
    assert b"tx:censored" in payloads
    before = [b for b in c.nodes[2].blocks if b.certificate[0].view == 0]
    assert len(before) >= 7, "the primary was making progress all along"
    c.assert_agreement()


def test_request_only_backups_hold_is_relayed_to_the_primary_without_a_view_change() -> None:
    """A request that reached the backups but never the primary (lost gossip) is
    relayed to the primary half a timeout after it arrived, before any timeout
    could blame the primary; once the primary has it, it commits in view 0 and
    nobody changes view."""
    c = Cluster(4, batch_max_count=1)
    req_timeout = c.config.request_timeout_ms
    c.request(b"tx:lost", to=[1, 2, 3])
    c.run(until=c.config.view_change_timeout_ms // 2)
    relays = [a for _t, a in c.nodes[1].timeline if isinstance(a, Relay)]
    assert relays and relays[0].to == 0 and b"tx:lost" in relays[0].requests
    c.request(b"tx:lost", to=[0])  # the relay arrives at the primary
    c.run(until=2 * req_timeout + 2_000)
    assert all(c.replica(i).view == 0 for i in range(4))
    assert all(b"tx:lost" in [tx for b in c.nodes[i].blocks for tx in b.payload] for i in range(4))
    c.assert_agreement()


def test_view_change_carries_prepared_certificates_and_is_persisted_first() -> None:
    """A backup that prepared height 1 and times out persists its new view before
    it broadcasts VIEW-CHANGE(1), which carries the prepared certificate."""
    s = Solo(4, 3)
    c = s.craft
    pp = c.pre_prepare(0, 1, (b"tx:a",))
    s.feed(pp, c.prepare(0, 1, pp.proposal.digest(), 1))
    fired = s.run_timers(BASE)
    at, out = next((t, o) for t, o in fired if view_changes_sent(o))
    kinds = [type(a).__name__ for a in out]
    assert kinds.index("Persist") < kinds.index("Broadcast")
    (vc,) = view_changes_sent(out)
    assert [cert.pre_prepare.proposal.digest() for cert in vc.prepared] == [pp.proposal.digest()]
    assert isinstance(out[kinds.index("Broadcast")], Broadcast)
    assert at == BASE


def _new_view_with_null_block(s: Solo, null_ts: int) -> tuple[NewView, PrePrepare]:
    """NEW-VIEW(1) whose VIEW-CHANGEs prepared heights 1 (the block the replica
    delivered, ts 1) and 3 (ts 5), so height 2 must be a null block; its
    timestamp is ``null_ts``, chosen by the (possibly Byzantine) new primary."""
    c = s.craft
    pp1 = c.pre_prepare(0, 1, (b"tx:1",))
    pp3 = c.pre_prepare(0, 3, (b"tx:3",), ts=5)
    certs = (c.prepared_cert(pp1, [1, 2]), c.prepared_cert(pp3, [1, 2]))
    vcs = (c.view_change(1, 0), c.view_change(1, 1, certs), c.view_change(1, 2))
    null = c.sign(PrePrepare(1, c.proposal(2, (), ts=null_ts, proposer=1), (), 1))
    assert isinstance(null, PrePrepare)
    pps = tuple(c.sign(PrePrepare(1, pp.proposal, (), 1)) for pp in (pp1, pp3))
    nv = c.new_view(1, vcs, (pps[0], null, pps[1]))
    return nv, null


def _prepared_heights(out: list[Action]) -> list[int]:
    return [m.height for m in sent_messages(out, Prepare) if isinstance(m, Prepare)]


def test_new_view_null_block_with_a_sane_timestamp_is_accepted() -> None:
    """Control for the two tests below: null block at height 2 with timestamp 2
    (after block 1's, not ahead of the clock) is accepted and prepared."""
    s = Solo(4, 3)
    s.commit_heights([1])
    nv, _ = _new_view_with_null_block(s, null_ts=2)
    out = s.feed(nv, now=100)
    assert s.replica.view == 1
    assert 2 in _prepared_heights(out)


def test_new_view_null_block_far_in_the_future_is_refused() -> None:
    """Spec, normal case step 2: a backup accepts a proposal only if its timestamp
    is no further than max_clock_drift_ms ahead of its clock. A NEW-VIEW whose
    null block at height 2 carries a timestamp ~31 years ahead must not be
    prepared (the whole NEW-VIEW refused, or at least no PREPARE for height 2)."""
    s = Solo(4, 3)
    s.commit_heights([1])
    nv, _ = _new_view_with_null_block(s, null_ts=10**12)
    out = s.feed(nv, now=100)
    assert 2 not in _prepared_heights(out)


def test_new_view_null_block_older_than_the_previous_block_is_refused() -> None:
    """Spec, normal case step 2: a proposal's timestamp must be after the previous
    block's when that is known. The replica delivered height 1 with timestamp 1;
    a NEW-VIEW null block at height 2 with timestamp 0 must not be prepared."""
    s = Solo(4, 3)
    s.commit_heights([1])
    assert s.blocks[0].proposal.timestamp == 1
    nv, _ = _new_view_with_null_block(s, null_ts=0)
    out = s.feed(nv, now=100)
    assert 2 not in _prepared_heights(out)


def test_replica_back_from_a_partition_catches_up_instead_of_changing_view() -> None:
    """Replica 3 is cut off while heights 1-2 commit, then reconnects and takes
    part in height 3, so it holds a commit quorum (and the payload) for 3 with 1-2
    missing. It knows it is behind: it should ask for the blocks (NeedSync) and
    catch up. Instead of that it must not time out into a view change that no
    other replica joins."""
    c = Cluster(4, batch_max_count=1)
    c.auto_sync = True
    c.isolated.add(3)
    c.request(b"tx:1")
    c.request(b"tx:2")
    c.run(until=100)
    c.isolated.clear()
    c.request(b"tx:3")
    c.run(until=10_000)
    assert c.heights() == [3, 3, 3, 3]
    assert not c.replica(3).in_view_change and c.replica(3).view == 0
