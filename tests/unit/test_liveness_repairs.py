"""Liveness repairs of the replica (commit 9eaf435): the cluster must never wedge.

- own checkpoints are persisted and repeated until stable, so a lost checkpoint
  quorum (or a whole-cluster restart) cannot stall the watermark window;
- a replica changing view answers a peer's VIEW-CHANGE for a lower view with its
  own, so views meet (n = 4 with one node down used to deadlock);
- Status heartbeats: f+1 peers ahead make a replica fetch the blocks it missed;
- payload-free view changes: a re-proposal whose payload a backup lacks is
  fetched with PAYLOAD-REQUEST / PAYLOAD-REPLY;
- a replayed VIEW-CHANGE costs no signature check;
- NEW-VIEW checkpoint adoption and re-proposals are checked like everything else;
- the persisted view record keeps the last normal view, and old records decode.
"""

from __future__ import annotations

import msgspec

from consensus.actions import (
    Action,
    Deliver,
    Divergence,
    Evidence,
    NeedSync,
    Rejected,
    Send,
)
from consensus.messages import (
    Checkpoint,
    Commit,
    Message,
    PayloadReply,
    PayloadRequest,
    Prepare,
    PrePrepare,
    Status,
    ViewChange,
    canonical,
)
from consensus.records import KEY_VIEW, ViewRecord
from consensus.replica import Replica
from node.sim.crypto import KeyedHashVerifier, SimPayloadRules
from tests.unit.cluster import Cluster, Envelope, Knobs, Solo, of_type, sent_messages

BASE = 2_000  # ConsensusConfig.view_change_timeout_ms default
SMALL: Knobs = {"checkpoint_interval": 2, "watermark_window": 4, "batch_max_count": 1}


def _is_checkpoint(e: Envelope) -> bool:
    return isinstance(e.msg, Checkpoint)


def _fill_window_without_checkpoints(txs: int) -> Cluster:
    """K = 2, L = 4: ``txs`` requests, every CHECKPOINT dropped while the cluster
    commits its whole window (heights 1..4); the rest wait above the high watermark."""
    c = Cluster(4, **SMALL)
    c.drop_if = _is_checkpoint
    for i in range(txs):
        c.request(b"tx:%d" % i)
    c.deliver_all()
    assert c.heights() == [4] * 4, "the window is full"
    assert all(n.replica.low_watermark == 0 for n in c.nodes), "no checkpoint was stable"
    c.drop_if = None
    return c


def _assert_all_committed(c: Cluster, height: int) -> None:
    assert c.heights() == [height] * c.config.n, c.heights()
    assert not any(n.replica.in_view_change for n in c.nodes)
    c.assert_agreement()


# ------------------------------------------------------------- checkpoints
def test_lost_checkpoints_are_repeated_and_the_window_moves() -> None:
    """Every CHECKPOINT is lost while the cluster fills its window (K = 2, L = 4):
    all nodes stop at height 4 = the high watermark with 8 requests pending. Once
    the network delivers again, timers alone make the nodes repeat their own
    checkpoints: a checkpoint becomes stable everywhere and all 12 requests commit
    on every node (the old replica never repeated a checkpoint and stayed at 4)."""
    c = _fill_window_without_checkpoints(12)
    c.run(until=30_000)
    _assert_all_committed(c, 12)
    assert all(n.replica.low_watermark == 12 for n in c.nodes)


def test_checkpoints_survive_a_whole_cluster_restart() -> None:
    """The four nodes crash right after executing checkpoint height 4, all their
    CHECKPOINTs lost in flight. Restarted from their records (own checkpoints are
    persisted under ``ckpt/`` keys) they repeat them: a checkpoint becomes stable
    and the pending requests commit past the old high watermark on every node."""
    c = _fill_window_without_checkpoints(12)
    persisted = [sorted(k for k in n.records if k.startswith(b"ckpt/")) for n in c.nodes]
    for i in range(4):
        c.crash(i)
    c.queue.clear()
    for i in range(4):
        c.restart(i)
    c.run(until=30_000)
    _assert_all_committed(c, 12)
    ckpt = [b"ckpt/" + (2).to_bytes(8, "big"), b"ckpt/" + (4).to_bytes(8, "big")]
    assert persisted == [ckpt] * 4, "own checkpoints were persisted"


def test_restart_with_one_node_down_still_makes_a_checkpoint_stable() -> None:
    """As above, but node 3 stays down for good: only 0, 1 and 2 (a quorum)
    restart. Each needs its own persisted checkpoint to count towards the
    quorum, beside the two it receives from the others; then a checkpoint is
    stable and the pending requests commit on the three live nodes.

    Fails on 9eaf435: ``Replica._restore`` loads the own checkpoints into
    ``_own_checkpoints``/``_own_roots`` but not into ``_checkpoints`` (only
    ``on_executed`` adds them there), so each live node holds 2 of the 3
    matching checkpoints for ever and the three change view in a loop at
    height 4."""
    c = _fill_window_without_checkpoints(12)
    for i in range(4):
        c.crash(i)
    c.queue.clear()
    c.deliver_status = True
    for i in range(3):
        c.restart(i)
    c.run(until=60_000)
    assert c.heights()[:3] == [12] * 3, c.heights()
    assert all(c.replica(i).low_watermark == 12 for i in range(3))
    c.assert_agreement()


def test_lost_checkpoints_move_the_window_when_only_the_primary_holds_requests() -> None:
    """Every CHECKPOINT is lost while the cluster fills its window; the next four
    requests reach only the primary (gossip to the backups lost). The backups,
    idle with nothing pending or in flight, must still repeat (or answer with)
    their checkpoints so that one becomes stable and the requests commit.

    Fails on 9eaf435: own checkpoints are repeated only on the resend tick of a
    replica that waits (something pending or undelivered) or changes view, a
    received CHECKPOINT is never answered, and a STATUS answer carries only the
    replica's own checkpoint at its *stable* height. So the idle backups never
    repeat theirs; the primary, unable to propose above its high watermark,
    times out at 2 s into a VIEW-CHANGE(1) that nobody joins (one sender, not
    f+1), and the cluster stays at height 4 for good, Status heartbeats
    delivered or not ("Why the cluster cannot halt for good", point 1, assumes
    that every honest replica waits)."""
    c = _fill_window_without_checkpoints(4)
    c.deliver_status = True
    c.deliver_relays = True
    c.auto_sync = True
    for i in range(4, 8):
        c.request(b"tx:%d" % i, to=[0])
    c.run(until=120_000)
    _assert_all_committed(c, 8)


def test_stable_checkpoint_is_sent_to_a_peer_whose_status_is_behind() -> None:
    """A replica whose stable checkpoint is 2 receives a STATUS with low watermark
    0 from a peer: it sends that peer its own CHECKPOINT(2), once per resend
    interval."""
    s = Solo(4, 3, **SMALL)
    s.commit_heights(range(1, 3))
    s.make_stable(2)
    assert s.replica.low_watermark == 2
    st = s.craft.sign(Status(0, 2, 0, 1))
    out = s.feed(st, now=10)
    sent = [(a.to, a.message) for a in out if isinstance(a, Send)]
    cps = [(to, m) for to, m in sent if isinstance(m, Checkpoint)]
    assert [(to, m.height, m.sender, m.state_root) for to, m in cps] == [(1, 2, 3, s.roots[2])]
    out = s.feed(st, now=11)
    assert not [a for a in out if isinstance(a, Send) and isinstance(a.message, Checkpoint)]


# ------------------------------------------------------------- view change
def _vc_from_0_below_2(e: Envelope) -> bool:
    return e.src == 0 and isinstance(e.msg, ViewChange) and e.msg.new_view < 2


def test_view_change_deadlock_with_one_node_down_resolves() -> None:
    """n = 4, node 3 down for good. Nodes 1 and 2 time out into view 1 (the primary
    never got the request); node 0 joins by the f+1 rule, but its VIEW-CHANGE(1)
    and every repeat of it is lost, so 1 and 2 hold 2 of the 3 votes they need
    while node 0, holding a quorum, escalates alone to view 2. Then the network
    heals (3 stays down). The old replica ignored the VIEW-CHANGE(1)s of 1 and 2
    once in view 2 and the three waited forever; now every live node ends in the
    same view, normal, and commits new requests up to height 3."""
    c = Cluster(4, batch_max_count=1)
    c.isolated.add(3)
    c.drop_if = _vc_from_0_below_2
    c.request(b"tx:a", to=[1, 2])
    while c.replica(0).view < 2:
        nxt = c.next_timer()
        assert nxt is not None and nxt < 60_000, "node 0 escalates to view 2"
        c.run(until=nxt)
    assert c.replica(0).in_view_change
    assert [(c.replica(i).view, c.replica(i).in_view_change) for i in (1, 2)] == [(1, True)] * 2
    c.drop_if = None
    c.run(until=c.now + 60_000)
    views = {(c.replica(i).view, c.replica(i).in_view_change) for i in (0, 1, 2)}
    assert len(views) == 1 and not next(iter(views))[1], views
    c.request(b"tx:b", to=[0, 1, 2])
    c.request(b"tx:c", to=[0, 1, 2])
    c.run(until=c.now + 30_000)
    assert c.heights()[:3] == [3, 3, 3]
    assert {(c.replica(i).view, c.replica(i).in_view_change) for i in (0, 1, 2)} == views
    c.assert_agreement()


def _in_view_change_for_2(s: Solo) -> None:
    """Replica 3, normal in view 0, joins view 2 (VIEW-CHANGE(2) of 1 and 2)."""
    s.feed(s.craft.view_change(2, 1), s.craft.view_change(2, 2))
    assert (s.replica.view, s.replica.in_view_change) == (2, True)


def _view_changes_to(out: list[Action]) -> list[tuple[int, ViewChange]]:
    return [
        (a.to, a.message) for a in out if isinstance(a, Send) and isinstance(a.message, ViewChange)
    ]


def test_replica_changing_view_answers_an_older_view_change_with_its_own() -> None:
    """Replica 3 changing view to 2 (last normal view 0) receives VIEW-CHANGE(1)
    of replica 0: it sends 0 its own VIEW-CHANGE(1); a repeat within the resend
    interval gets no answer, one after it does, and another peer gets its own
    answer. Even with a quorum of VIEW-CHANGE(1)s and NEW-VIEW(1) it stays in
    view change for 2: it never enters a view below its own."""
    s = Solo(4, 3)
    c = s.craft
    _in_view_change_for_2(s)
    resend = s.config.resend_interval_ms
    vc0 = c.view_change(1, 0)
    out = s.feed(vc0, now=100)
    answers = _view_changes_to(out)
    assert [(to, vc.new_view, vc.sender) for to, vc in answers] == [(0, 1, 3)]
    assert s.replica.view == 2 and s.replica.in_view_change
    assert not _view_changes_to(s.feed(vc0, now=100 + resend - 1)), "rate-limited"
    out = s.feed(c.view_change(1, 1), now=100 + resend - 1)
    assert [(to, vc.new_view) for to, vc in _view_changes_to(out)] == [(1, 1)], "per peer"
    out = s.feed(vc0, now=100 + resend)
    assert [(to, vc.new_view) for to, vc in _view_changes_to(out)] == [(0, 1)]
    vcs = (vc0, c.view_change(1, 1), c.view_change(1, 2))
    s.feed(*vcs, c.new_view(1, vcs), now=100 + 3 * resend)
    assert (s.replica.view, s.replica.in_view_change) == (2, True)


def test_restarted_replica_still_answers_older_view_changes() -> None:
    """The persisted view record keeps the last normal view: replica 3, changing
    view to 2 from normal view 0, crashes and restarts; a VIEW-CHANGE(1) of
    replica 0 still gets its own VIEW-CHANGE(1) in answer."""
    s = Solo(4, 3)
    _in_view_change_for_2(s)
    s.restart(now=50)
    assert (s.replica.view, s.replica.in_view_change) == (2, True)
    out = s.feed(s.craft.view_change(1, 0), now=100)
    assert [(to, vc.new_view, vc.sender) for to, vc in _view_changes_to(out)] == [(0, 1, 3)]
    assert (s.replica.view, s.replica.in_view_change) == (2, True)
    rec = msgspec.msgpack.decode(s.records[KEY_VIEW], type=ViewRecord)
    assert (rec.view, rec.in_view_change, rec.normal_view) == (2, True, 0)


def test_view_record_of_the_old_layout_still_decodes() -> None:
    """A ``view`` record written before ``normal_view`` existed (two fields)
    decodes with normal_view = -1, and a replica restored from it starts in
    that view change."""
    old = canonical([3, True])
    rec = msgspec.msgpack.decode(old, type=ViewRecord)
    assert (rec.view, rec.in_view_change, rec.normal_view) == (3, True, -1)
    s = Solo(4, 3)
    s.records[KEY_VIEW] = old
    out = s.restart(now=10)
    assert (s.replica.view, s.replica.in_view_change) == (3, True)
    vcs = [m for m in sent_messages(out, ViewChange) if isinstance(m, ViewChange)]
    assert [vc.new_view for vc in vcs] == [3]


# ------------------------------------------------------------------ status
def _commits_to_3_lost(e: Envelope) -> bool:
    return e.dst == 3 and isinstance(e.msg, Commit) and e.msg.height >= 3


def test_replica_that_missed_the_last_commits_catches_up_by_status() -> None:
    """n = 4, four requests; node 3 gets everything but the COMMITs of heights 3
    and 4, then the load stops. Consensus repeats nothing for delivered heights,
    so only the Status heartbeats tell node 3 that f+1 peers are ahead: it asks
    for the blocks (NeedSync hinted with f+1 of them) and reaches height 4
    without any view change (the old replica timed out into a view change
    nobody joined and stayed at height 2)."""
    c = Cluster(4, batch_max_count=1)
    c.drop_if = _commits_to_3_lost
    for i in range(4):
        c.request(b"tx:%d" % i)
    c.deliver_all()
    assert c.heights() == [4, 4, 4, 2]
    c.drop_if = None
    c.deliver_status = True
    c.auto_sync = True
    c.run(until=c.now + 10_000)
    assert c.heights() == [4, 4, 4, 4]
    syncs = [a for a in c.nodes[3].events if isinstance(a, NeedSync)]
    # a stalled replica may ask the first peer it hears of, or f+1 of them
    assert syncs and all(s.target_height == 4 and 3 not in s.hints for s in syncs)
    assert all((n.replica.view, n.replica.in_view_change) == (0, False) for n in c.nodes)
    c.assert_agreement()


def test_replica_restarted_after_the_load_stopped_catches_up() -> None:
    """Node 3 is down while heights 2..4 commit; the load stops; node 3 restarts.
    Nothing is in flight, yet by the Status heartbeats it learns that f+1 peers
    are ahead and reaches height 4 (the old replica stayed at height 1 for good)."""
    c = Cluster(4, batch_max_count=1)
    c.request(b"tx:0")
    c.deliver_all()
    c.crash(3)
    for i in range(1, 4):
        c.request(b"tx:%d" % i, to=[0, 1, 2])
    c.deliver_all()
    assert c.heights() == [4, 4, 4, 1]
    c.deliver_status = True
    c.auto_sync = True
    c.restart(3)
    c.run(until=c.now + 10_000)
    assert c.heights() == [4, 4, 4, 4]
    assert all((n.replica.view, n.replica.in_view_change) == (0, False) for n in c.nodes)
    c.assert_agreement()


def test_one_byzantine_status_does_not_trigger_a_sync() -> None:
    """A single STATUS claiming height 10^9 (f = 1: one liar) makes the replica
    fetch nothing, however long its timers run; once a second peer reports
    height 7, it syncs to 7 (the (f+1)-th highest claim), not to 10^9."""
    s = Solo(4, 3)
    c = s.craft
    s.feed(c.sign(Status(0, 10**9, 0, 1)), now=10)
    s.run_timers(30_000)
    assert not of_type(s.log, NeedSync)
    s.feed(c.sign(Status(0, 7, 0, 2)), now=30_001)
    s.run_timers(40_000)
    syncs = of_type(s.log, NeedSync)
    assert syncs and {a.target_height for a in syncs if isinstance(a, NeedSync)} == {7}
    assert all(set(a.hints) == {1, 2} for a in syncs if isinstance(a, NeedSync))


# ---------------------------------------------------------------- payloads
def _reproposal_without_payload(s: Solo) -> tuple[PrePrepare, bytes]:
    """Replica 3 never saw the view-0 PRE-PREPARE of height 1 (prepared by 0, 1
    and 2); NEW-VIEW(1) re-proposes it without payload. Returns the original
    pre-prepare and the digest."""
    c = s.craft
    pp = c.pre_prepare(0, 1, (b"tx:lost-payload",), ts=5)
    cert = c.prepared_cert(pp, [1, 2])
    vcs = (c.view_change(1, 0, (cert,)), c.view_change(1, 1, (cert,)), c.view_change(1, 2))
    nv = c.new_view(1, vcs)
    assert nv.pre_prepares[0].payload == ()
    out = s.feed(nv, now=100)
    assert (s.replica.view, s.replica.in_view_change) == (1, False)
    d = pp.proposal.digest()
    preps = [m for m in sent_messages(out, Prepare) if isinstance(m, Prepare)]
    assert [(m.view, m.height, m.digest) for m in preps] == [(1, 1, d)], "votes without payload"
    reqs = [
        (a.to, a.message)
        for a in out
        if isinstance(a, Send) and isinstance(a.message, PayloadRequest)
    ]
    assert reqs, "asks for the payload"
    assert len(reqs) == s.config.weak_quorum
    for to, req in reqs:
        assert to in (0, 1, 2), "only replicas that prepared it"
        assert (req.height, req.digest, req.sender) == (1, d, 3)
    return pp, d


def test_missing_payload_of_a_reproposal_is_fetched_and_checked() -> None:
    """After NEW-VIEW(1) re-proposes (without payload) a value replica 3 never
    saw, it votes for it and sends PAYLOAD-REQUEST to f+1 replicas that prepared
    it. A commit quorum alone does not deliver; a PAYLOAD-REPLY whose payload
    does not match the root is rejected (``bad-payload-reply``) and changes
    nothing; the matching one delivers the block with the original payload."""
    s = Solo(4, 3)
    c = s.craft
    pp, d = _reproposal_without_payload(s)
    out = s.feed(*(c.commit(1, 1, d, i) for i in (0, 1, 2)), now=200)
    assert not of_type(out, Deliver) and s.replica.height == 0
    bad = c.sign(PayloadReply(pp.proposal, (b"tx:forged",), 1))
    out = s.feed(bad, now=300)
    assert [a for a in out if isinstance(a, Rejected)] == [Rejected(1, "bad-payload-reply")]
    assert not of_type(out, Deliver) and s.replica.height == 0
    good = c.sign(PayloadReply(pp.proposal, pp.payload, 0))
    s.feed(good, now=400)
    assert s.replica.height == 1
    assert len(s.blocks) == 1 and s.blocks[0].payload == pp.payload
    assert s.blocks[0].proposal.digest() == d


def test_payload_request_is_answered_only_with_a_held_payload_and_rate_limited() -> None:
    """A backup holding the payload of height 1 answers PAYLOAD-REQUEST with it,
    once per resend interval per (peer, height); a request for a digest or a
    height it does not hold gets nothing."""
    s = Solo(4, 3)
    c = s.craft
    pp = c.pre_prepare(0, 1, (b"tx:held",))
    s.feed(pp, now=10)
    d = pp.proposal.digest()
    resend = s.config.resend_interval_ms

    def replies(out: list[Action]) -> list[tuple[int, Message]]:
        return [
            (a.to, a.message)
            for a in out
            if isinstance(a, Send) and isinstance(a.message, PayloadReply)
        ]

    req = c.sign(PayloadRequest(1, d, 2))
    got = replies(s.feed(req, now=100))
    assert len(got) == 1 and got[0][0] == 2
    rep = got[0][1]
    assert isinstance(rep, PayloadReply)
    assert (rep.proposal, rep.payload, rep.sender) == (pp.proposal, pp.payload, 3)
    assert not replies(s.feed(req, now=100 + resend - 1)), "rate-limited"
    other = c.sign(PayloadRequest(1, d, 1))
    assert len(replies(s.feed(other, now=100 + resend - 1))) == 1, "per peer"
    assert len(replies(s.feed(req, now=100 + resend))) == 1
    assert not replies(s.feed(c.sign(PayloadRequest(1, b"\x07" * 32, 0)), now=5_000))
    assert not replies(s.feed(c.sign(PayloadRequest(2, d, 0)), now=5_000))


# ----------------------------------------------------------- signature cache
class CountingVerifier:
    """Wraps a verifier and counts its calls."""

    def __init__(self, inner: KeyedHashVerifier) -> None:
        self.inner = inner
        self.calls = 0

    def verify(self, validator: int, data: bytes, sig: bytes) -> bool:
        self.calls += 1
        return self.inner.verify(validator, data, sig)


def test_replayed_view_change_costs_no_signature_check() -> None:
    """A VIEW-CHANGE carrying a checkpoint proof and a prepared certificate is
    verified once (many signature checks); the identical copy replayed costs no
    signature check at all; a copy with the same signature but another content
    is still rejected (``bad-signature``) and not recorded."""
    s = Solo(4, 3, checkpoint_interval=2, watermark_window=8)
    c = s.craft
    counting = CountingVerifier(s.scheme.verifier())
    r = Replica(s.config, 3, s.scheme.signer(3), counting, SimPayloadRules())
    r.start(0)
    root = b"\x05" * 32
    proof = tuple(c.checkpoint(2, root, i) for i in (0, 1, 2))
    pp = c.pre_prepare(0, 3, ())  # empty: the certificate looks the same stripped or not
    vc = c.view_change(1, 1, (c.prepared_cert(pp, [1, 2]),), stable=(2, root, proof))
    out = r.on_message(vc, 10)
    assert not of_type(out, Rejected)
    first = counting.calls
    assert first >= 1 + 3 + 3, "outer signature, checkpoint proof, certificate"
    out = r.on_message(vc, 20)
    assert not of_type(out, Rejected)
    assert counting.calls == first, "a replayed VIEW-CHANGE is not verified again"
    tampered = msgspec.structs.replace(vc, new_view=2)
    out = r.on_message(tampered, 30)
    assert [a for a in out if isinstance(a, Rejected)] == [Rejected(1, "bad-signature")]
    tampered = msgspec.structs.replace(vc, prepared=())
    out = r.on_message(tampered, 40)
    assert [a for a in out if isinstance(a, Rejected)] == [Rejected(1, "bad-signature")]
    assert r.view == 0 and not r.in_view_change


# ----------------------------------------------------------------- NEW-VIEW
def test_new_view_checkpoint_with_another_root_is_divergence_not_adopted() -> None:
    """Replica 3 executed height 2 (root R). A NEW-VIEW whose quorum carries a
    stable checkpoint 2 with root R' != R (validly signed by 0, 1, 2) makes it
    report Divergence(2, R, R') and keep its low watermark at 0 (the old replica
    adopted the foreign checkpoint)."""
    s = Solo(4, 3, **SMALL)
    c = s.craft
    s.commit_heights(range(1, 3))
    ours = s.roots[2]
    other = b"\x0b" * 32
    proof = tuple(c.checkpoint(2, other, i) for i in (0, 1, 2))
    vcs = tuple(c.view_change(1, i, stable=(2, other, proof)) for i in (0, 1, 2))
    out = s.feed(c.new_view(1, vcs), now=100)
    assert Divergence(2, ours, other) in of_type(out, Divergence)
    assert s.replica.low_watermark == 0
    assert not [k for k in s.records if k == b"stable"]


def test_new_view_reproposal_conflicting_with_a_pre_prepare_is_evidence() -> None:
    """Primary 1 re-proposes value A (an empty block prepared in view 0) at height 1
    in NEW-VIEW(1), then sends a normal PRE-PREPARE(view 1, height 1) of another
    value B: one Evidence against validator 1 (the old replica recorded no
    re-proposal and stayed silent), and replica 3 keeps voting for A only."""
    s = Solo(4, 3)
    c = s.craft
    pp = c.pre_prepare(0, 1, (), ts=5)
    cert = c.prepared_cert(pp, [1, 2])
    vcs = (c.view_change(1, 0), c.view_change(1, 1, (cert,)), c.view_change(1, 2))
    s.feed(c.new_view(1, vcs), now=100)
    assert s.replica.view == 1
    conflicting = c.pre_prepare(1, 1, (b"tx:b",), ts=6)
    out = s.feed(conflicting, now=200)
    ev = [a for a in out if isinstance(a, Evidence)]
    assert len(ev) == 1 and ev[0].validator == 1 and ev[0].second == conflicting
    first = ev[0].first
    assert isinstance(first, PrePrepare) and first.proposal == pp.proposal
    d = pp.proposal.digest()
    votes = [m for m in sent_messages(s.log) if isinstance(m, Prepare | Commit) and m.view == 1]
    assert votes and {m.digest for m in votes} == {d}


# ----------------------------------------------------------- stragglers
def test_vote_for_a_height_delivered_a_pipeline_ago_is_answered_with_our_commit() -> None:
    """A replica that delivered heights 1..6 (pipeline window 4) receives a COMMIT
    for height 1 from a peer that is still stuck there: it sends that peer its
    own COMMIT for height 1, the identical message it sent when it prepared,
    once per resend interval; a vote for height 5 (still in the pipeline) gets
    nothing."""
    s = Solo(4, 3, pipeline_window=4)
    out = s.commit_heights(range(1, 7))
    mine = {m.height: m for m in sent_messages(out, Commit) if isinstance(m, Commit)}
    c = s.craft
    stuck = c.commit(0, 1, mine[1].digest, 1)
    answer = [(a.to, a.message) for a in s.feed(stuck, now=10) if isinstance(a, Send)]
    assert answer == [(1, mine[1])]
    assert not [a for a in s.feed(stuck, now=11) if isinstance(a, Send)], "rate limited"
    late = c.commit(0, 5, mine[5].digest, 1)
    assert not [a for a in s.feed(late, now=2_000) if isinstance(a, Send)]


def test_stalled_replica_asks_a_single_peer_that_is_ahead() -> None:
    """A replica stalled at height 2 with height 3 accepted hears one Status of
    height 5 (fewer than f+1 peers ahead): after a resend interval without
    delivery it asks that peer alone for blocks up to 5; before that it waits."""
    s = Solo(4, 3)
    s.commit_heights(range(1, 3))
    s.feed(s.craft.pre_prepare(0, 3, (b"tx:3",)), now=100)
    st = s.craft.sign(Status(0, 5, 0, 2))
    assert not of_type(s.feed(st, now=200), NeedSync), "not stalled yet"
    syncs = of_type(s.feed(st, now=200 + s.config.resend_interval_ms + 1), NeedSync)
    assert syncs == [NeedSync(5, (2,))]
