"""Checkpoints: emission every K heights, stability, garbage collection,
divergence and state-transfer requests; repeating votes only on a stall."""

from __future__ import annotations

from consensus.actions import Broadcast, Deliver, Divergence, NeedSync, Persist
from consensus.messages import Checkpoint, Commit, CommittedBlock, Message, Prepare
from consensus.records import KEY_STABLE, SLOT_PREFIX, slot_key
from tests.unit.cluster import Cluster, Knobs, Solo, of_type, sent_messages, sha256

SMALL: Knobs = {"checkpoint_interval": 2, "watermark_window": 4, "pipeline_window": 4}


def test_checkpoint_broadcast_every_k_heights_after_execution() -> None:
    """K=2: each replica broadcasts CHECKPOINT(h, its state root) for h = 2, 4, 6,
    from the on_executed call of that height and from no other call."""
    c = Cluster(4, batch_max_count=1, checkpoint_interval=2, watermark_window=8)
    for i in range(7):
        c.request(b"tx:%d" % i)
    c.deliver_all()
    assert c.heights() == [7] * 4
    for node in c.nodes:
        cps = [m for m in node.sent if isinstance(m, Checkpoint)]
        assert [(cp.height, cp.state_root) for cp in cps] == [(h, node.roots[h]) for h in (2, 4, 6)]
        for name, actions in node.calls:
            if sent_messages(actions, Checkpoint):
                assert name == "on_executed", f"checkpoint sent from {name}"


def test_quorum_of_matching_checkpoints_makes_it_stable_and_collects_garbage() -> None:
    """Own + one other CHECKPOINT (2 < quorum 3) changes nothing; the third matching
    one moves the watermarks to (2, 2+L) and persists the stable record together
    with deletions (Persist(key, None)) of the slot records of heights 1..2."""
    s = Solo(4, 3, **SMALL)
    s.commit_heights(range(1, 4))
    assert {slot_key(h) for h in (1, 2, 3)} <= set(s.records)
    root = s.roots[2]
    assert not of_type(s.feed(s.craft.checkpoint(2, root, 0)), Persist)
    assert s.replica.low_watermark == 0
    out = s.feed(s.craft.checkpoint(2, root, 1))
    assert (s.replica.low_watermark, s.replica.high_watermark) == (2, 6)
    (persist,) = of_type(out, Persist)
    assert isinstance(persist, Persist)
    written = dict(persist.records)
    assert written[slot_key(1)] is None and written[slot_key(2)] is None
    assert written[KEY_STABLE] is not None
    assert slot_key(3) not in written, "slot 3 is above the checkpoint and stays"
    slots = sorted(k for k in s.records if k.startswith(SLOT_PREFIX))
    assert slots == [slot_key(3)]


def test_checkpoints_with_other_roots_do_not_count() -> None:
    """Checkpoints that do not match each other never form a quorum."""
    s = Solo(4, 3, **SMALL)
    s.commit_heights(range(1, 3))
    s.feed(s.craft.checkpoint(2, b"\x01" * 32, 0), s.craft.checkpoint(2, b"\x02" * 32, 1))
    assert s.replica.low_watermark == 0


def test_own_root_differs_from_a_stable_checkpoint_yields_divergence() -> None:
    """Our execution of height 2 gives root X; a quorum of the others checkpoints
    root Y != X at height 2: the replica emits Divergence(2, ours=X, stable=Y)."""
    s = Solo(4, 3, **SMALL)
    ours = b"\xee" * 32
    s.root_override[2] = ours
    s.commit_heights(range(1, 3))
    assert s.roots[2] == ours
    good = sha256(s.roots[1] + s.blocks[1].proposal.digest())
    out = s.feed(*(s.craft.checkpoint(2, good, i) for i in (0, 1, 2)))
    divs = of_type(out, Divergence)
    assert divs == [Divergence(2, ours, good)]


def _certified_block(s: Solo, h: int) -> CommittedBlock:
    pp = s.craft.pre_prepare(0, h, (b"tx:%d" % h,))
    d = pp.proposal.digest()
    cert = tuple(s.craft.commit(0, h, d, i) for i in (0, 1, 2))
    return CommittedBlock(pp.proposal, pp.payload, cert)


def test_quorum_of_checkpoints_beyond_executed_height_yields_need_sync() -> None:
    """A fresh replica (executed 0) that sees a quorum of CHECKPOINT(2) asks its
    driver for blocks up to 2 (NeedSync, at the latest one resend interval
    later, hinting validators that hold them); fed the certified blocks, it
    delivers them and then stabilises checkpoint 2."""
    s = Solo(4, 3, **SMALL)
    blocks = [_certified_block(s, h) for h in (1, 2)]
    root = s.roots[0]
    for b in blocks:
        root = sha256(root + b.proposal.digest())
    out = s.feed(*(s.craft.checkpoint(2, root, i) for i in (0, 1, 2)))
    out += s.timer(s.config.resend_interval_ms)
    syncs = of_type(out, NeedSync)
    assert syncs, "no NeedSync for a checkpoint quorum beyond the executed height"
    last = syncs[-1]
    assert isinstance(last, NeedSync)
    assert last.target_height == 2
    assert last.hints and set(last.hints) <= {0, 1, 2}
    out = []
    for b in blocks:
        out += s.block(b)
    assert [a.block.height for a in out if isinstance(a, Deliver)] == [1, 2]
    assert s.replica.height == 2
    # its own checkpoint completes the quorum it had seen
    assert any(isinstance(a, Broadcast) and isinstance(a.message, Checkpoint) for a in out)
    assert s.replica.low_watermark == 2


def test_bad_sync_block_is_rejected() -> None:
    """A block fed by sync with a certificate short of a quorum is not delivered."""
    s = Solo(4, 3, **SMALL)
    b = _certified_block(s, 1)
    short = CommittedBlock(b.proposal, b.payload, b.certificate[:2])
    out = s.block(short)
    assert not of_type(out, Deliver)
    assert s.replica.height == 0


def test_votes_are_repeated_only_when_no_height_is_delivered() -> None:
    """A backup that always has a height in flight but delivers one every 400 ms
    (less than the resend interval) never repeats a vote; once deliveries stop,
    it repeats its votes for the stalled height after one resend interval."""
    s = Solo(4, 3, resend_interval_ms=1000, view_change_timeout_ms=4000)
    c = s.craft
    sent: list[Message] = []

    def propose(h: int) -> None:
        pp = c.pre_prepare(0, h, (b"tx:%d" % h,))
        d = pp.proposal.digest()
        sent.extend(sent_messages(s.feed(pp, c.prepare(0, h, d, 1), c.prepare(0, h, d, 2))))

    def commit(h: int) -> None:
        d = s.craft.pre_prepare(0, h, (b"tx:%d" % h,)).proposal.digest()
        sent.extend(sent_messages(s.feed(*(c.commit(0, h, d, i) for i in (0, 1, 2)))))

    propose(1)
    for h in range(1, 12):
        for _at, out in s.run_timers(until=s.now + 400):  # the clock moves 400 ms
            sent.extend(sent_messages(out))
        propose(h + 1)
        commit(h)
    assert s.replica.height == 11
    votes = [(type(m).__name__, m.height) for m in sent if isinstance(m, Prepare | Commit)]
    assert len(votes) == len(set(votes)), f"a vote was repeated while heights committed: {votes}"
    stall_start = s.now
    repeats = [
        (at, m)
        for at, out in s.run_timers(until=stall_start + 1500)
        for m in sent_messages(out)
        if isinstance(m, Prepare | Commit)
    ]
    assert repeats, "no vote repeated after a stall of a resend interval"
    assert all(stall_start + 1000 <= at for at, _m in repeats)
    assert {m.height for _at, m in repeats} == {12}
