"""Bounds of the replica (commit 9eaf435): memory kept per peer whatever a
Byzantine validator sends, and sizes of the messages a replica builds or accepts.

- per height, at most MAX_VOTE_VIEWS views per (vote kind, sender);
- the future buffer is bounded in bytes per sender; unvoted payloads are not kept;
- evidence keys go at stable checkpoints; at most two VIEW-CHANGEs per sender;
- VIEW-CHANGE and NEW-VIEW carry no payloads and exactly quorum-sized
  certificates, so they fit ``sizes.new_view_bytes``; anything larger is refused;
- ``ConsensusConfig(max_message_bytes=...)`` refuses configurations whose worst
  messages would not fit the frame.
"""

from __future__ import annotations

import tracemalloc

import msgspec
import pytest

from consensus import sizes
from consensus.actions import Action, Evidence, Rejected
from consensus.config import ConsensusConfig
from consensus.messages import (
    Commit,
    Message,
    NewView,
    PreparedCert,
    PrePrepare,
    ViewChange,
    encode_message,
)
from consensus.replica import MAX_VOTE_VIEWS, Replica, Slot
from tests.unit.cluster import CHAIN_ID, Cluster, Envelope, Solo, of_type

FLOOD = 20_000
MiB = 1 << 20
KiB = 1 << 10


def _slot(r: Replica, h: int) -> Slot:
    slot = r._slots.get(h)
    assert slot is not None, f"no slot for height {h}"
    return slot


def _assert_votes_bounded(slot: Slot, kind: str, sender: int) -> None:
    """At most MAX_VOTE_VIEWS views of ``kind`` from ``sender`` remembered anywhere."""
    firsts = [k for k in slot.first_votes if k[0] == kind and k[2] == sender]
    assert len(firsts) <= MAX_VOTE_VIEWS, len(firsts)
    tallies = slot.prepares if kind == "prepare" else slot.commits
    tallied = [key for key, votes in tallies.items() if sender in votes]
    assert len(tallied) <= MAX_VOTE_VIEWS, len(tallied)
    assert len(slot.vote_views.get((kind, sender), [])) <= MAX_VOTE_VIEWS


# ---------------------------------------------------------- votes per height
def test_commit_flood_of_distinct_views_keeps_a_bounded_slot() -> None:
    """Byzantine validator 1 sends 60,000 validly signed COMMITs for height 1, each
    in another view. The slot keeps at most MAX_VOTE_VIEWS of them (first votes,
    tallies and remembered views, the newest); memory grows by less than 5 MB
    over the first 20,000 (mostly the bounded signature cache), and by less than
    1 MB over the last 20,000, once every bounded structure is full (the old
    replica kept every vote: ~8 MB per 20,000)."""
    s = Solo(4, 3)
    c = s.craft
    d = b"\x11" * 32
    floods = [
        [c.commit(v, 1, d, 1) for v in range(k * FLOOD + 1, (k + 1) * FLOOD + 1)] for k in range(3)
    ]
    growth: list[int] = []
    tracemalloc.start()
    try:
        for k, flood in enumerate(floods):
            before = tracemalloc.get_traced_memory()[0]
            for m in flood:
                s.replica.on_message(m, 10 + k)
            growth.append(tracemalloc.get_traced_memory()[0] - before)
    finally:
        tracemalloc.stop()
    slot = _slot(s.replica, 1)
    _assert_votes_bounded(slot, "commit", 1)
    assert len(slot.first_votes) <= MAX_VOTE_VIEWS
    assert sum(len(v) for v in slot.commits.values()) <= MAX_VOTE_VIEWS
    newest = list(range(3 * FLOOD - MAX_VOTE_VIEWS + 1, 3 * FLOOD + 1))
    assert slot.vote_views[("commit", 1)] == newest
    assert growth[0] < 5 * MiB, growth
    assert growth[2] < 1 * MiB, growth


def test_prepare_flood_of_distinct_views_keeps_a_bounded_slot() -> None:
    """Validator 2 sends 20,000 PREPAREs for height 1 in distinct views (also
    views it is primary of, refused) and as many for the current view 0 with
    different digests: per kind and sender at most MAX_VOTE_VIEWS views are
    remembered at that height, and what is buffered for later views stays
    within the per-sender buffer limit."""
    s = Solo(4, 3)
    c = s.craft
    for v in range(1, FLOOD + 1):
        s.replica.on_message(c.prepare(v, 1, b"\x22" * 32, 2), 10)
    for i in range(FLOOD // 10):
        s.replica.on_message(c.prepare(0, 1, i.to_bytes(32, "big"), 2), 20)
    slot = _slot(s.replica, 1)
    _assert_votes_bounded(slot, "prepare", 2)
    assert len(slot.first_votes) <= MAX_VOTE_VIEWS
    assert sum(len(v) for v in slot.prepares.values()) <= MAX_VOTE_VIEWS
    buffered = s.replica._future_buffer.queues.get(2, [])
    assert len(buffered) <= s.config.future_buffer_limit


def _big_pre_prepare(c: Solo, view: int, height: int, payload: tuple[bytes, ...]) -> PrePrepare:
    craft = c.craft
    proposal = craft.proposal(height, payload, ts=height, proposer=c.config.primary(view))
    pp = craft.sign(PrePrepare(view, proposal, payload, proposal.proposer))
    assert isinstance(pp, PrePrepare)
    return pp


def _payload_bytes(msgs: list[Message]) -> int:
    return sum(256 + sum(map(len, m.payload)) for m in msgs if isinstance(m, PrePrepare))


def test_future_view_pre_prepares_stay_within_the_byte_bound() -> None:
    """2,000 PRE-PREPAREs of 64 KiB each, for future views 1..2000 (from each
    view's primary, heights 1..8 inside the window): per sender the buffer holds
    at most (pipeline_window + 1) * batch_max_bytes, and none of their payloads
    is kept in a slot (neither ``payloads`` nor the evidence record): the old
    replica buffered 256 of them per sender (16 MiB) and kept every payload in
    the first-vote record."""
    s = Solo(4, 3)
    payload = (b"tx:" + bytes(64 * KiB - 3),)
    limit = (s.config.pipeline_window + 1) * s.config.batch_max_bytes
    for v in range(1, 2_001):
        if s.config.primary(v) == 3:
            continue
        s.replica.on_message(_big_pre_prepare(s, v, 1 + v % 8, payload), 10)
    r = s.replica
    assert r._future_buffer.queues, "future pre-prepares are buffered, not dropped"
    for sender, msgs in r._future_buffer.queues.items():
        assert _payload_bytes(msgs) <= limit, (sender, _payload_bytes(msgs))
        assert r._future_buffer.weights[sender] <= limit
    for slot in r._slots.values():
        assert not slot.payloads
        held = [m for m in slot.first_votes.values() if isinstance(m, PrePrepare) and m.payload]
        assert not held


# ----------------------------------------------------------------- evidence
def test_evidence_keys_are_pruned_at_a_stable_checkpoint() -> None:
    """Validator 1 equivocates (two COMMITs, two digests) at heights 1 and 2: one
    Evidence each. Once checkpoint 2 is stable nothing remembered about that
    evidence is left (the old replica kept every key for ever)."""
    s = Solo(4, 3, checkpoint_interval=2, watermark_window=4, batch_max_count=1)
    c = s.craft
    out: list[Action] = []
    for h in (1, 2):
        out += s.feed(c.commit(0, h, b"\x01" * 32, 1), c.commit(0, h, b"\x02" * 32, 1))
    assert len(of_type(out, Evidence)) == 2
    assert s.replica._evidence_seen
    s.commit_heights(range(1, 3))
    s.make_stable(2)
    assert s.replica.low_watermark == 2
    assert not s.replica._evidence_seen


def test_equivocation_flood_keeps_bounded_evidence_keys() -> None:
    """Validator 1 equivocates at height 1 in 5,000 distinct views (two COMMITs
    with different digests per view). The slot forgets all but MAX_VOTE_VIEWS of
    those views, and what the replica keeps to report each equivocation once
    must be bounded the same way: no checkpoint may ever come (an idle network)
    and "whatever a validator sends, what the replica keeps for it is bounded"
    (replica.py, Memory per peer). Here ``_evidence_seen`` grows by one key per
    view: 5,000 keys for one sender at one height."""
    s = Solo(4, 3)
    c = s.craft
    for v in range(1, 5_001):
        s.replica.on_message(c.commit(v, 1, b"\x01" * 32, 1), 10)
        s.replica.on_message(c.commit(v, 1, b"\x02" * 32, 1), 10)
    _assert_votes_bounded(_slot(s.replica, 1), "commit", 1)
    keys = [k for k in s.replica._evidence_seen if k[0] == "commit" and k[2] == 1 and k[3] == 1]
    assert len(keys) <= MAX_VOTE_VIEWS, len(keys)


# ------------------------------------------------------------- view changes
def test_view_changes_of_many_views_from_one_sender_keep_two_entries() -> None:
    """Validator 1 sends VIEW-CHANGEs for every view from 1 to 80 (the farthest
    accepted): at most two of them stay recorded for it (the old replica kept
    all 80), and one sender never makes the replica join a view change."""
    s = Solo(4, 3)
    c = s.craft
    for v in range(1, 81):
        s.replica.on_message(c.view_change(v, 1), 10)
    kept = [v for v, by in s.replica._vc.votes.items() if 1 in by]
    assert len(kept) <= 2, kept
    assert s.replica.view == 0 and not s.replica.in_view_change


# ------------------------------------------------------------ message sizes
PIPE = 16
TX = 60 * KiB


def _view_0_commit(e: Envelope) -> bool:
    return isinstance(e.msg, Commit) and e.msg.view == 0


def test_view_change_and_new_view_carry_no_payload_and_fit_the_bound() -> None:
    """16 heights of 60 KiB each prepare everywhere but never commit; the primary
    is cut off and the others change view. Every VIEW-CHANGE carries its 16
    certificates stripped (no payload, exactly quorum-1 prepares) and every
    NEW-VIEW re-proposes without payloads, each within the worst-case size of
    ``consensus.sizes`` (the old replica's were ~1 MiB); then all 16 commit on
    the three connected nodes, with their payloads."""
    c = Cluster(
        4,
        batch_max_count=1,
        pipeline_window=PIPE,
        checkpoint_interval=PIPE,
        watermark_window=2 * PIPE,
    )
    c.drop_if = _view_0_commit
    txs = [b"tx:%02d:" % i + bytes(TX) for i in range(PIPE)]
    for tx in txs:
        c.request(tx)
    c.deliver_all()
    assert all(len(c.replica(i).in_flight()) == PIPE for i in range(4))
    c.isolated.add(0)
    c.run(until=10_000)
    n, window, q = c.config.n, c.config.watermark_window, c.config.quorum
    vc_bound = sizes.view_change_bytes(CHAIN_ID, n, window)
    nv_bound = sizes.new_view_bytes(CHAIN_ID, n, window)
    vcs = [m for i in (1, 2, 3) for m in c.nodes[i].sent if isinstance(m, ViewChange)]
    nvs = [m for i in (1, 2, 3) for m in c.nodes[i].sent if isinstance(m, NewView)]
    assert vcs and nvs
    for vc in vcs:
        assert len(vc.prepared) == PIPE
        assert all(not cert.pre_prepare.payload for cert in vc.prepared)
        assert all(len(cert.prepares) == q - 1 for cert in vc.prepared)
        assert len(encode_message(vc)) <= vc_bound
    for nv in nvs:
        assert len(nv.view_changes) == q
        assert [pp.height for pp in nv.pre_prepares] == list(range(1, PIPE + 1))
        assert all(not pp.payload for pp in nv.pre_prepares)
        assert all(not cert.pre_prepare.payload for vc in nv.view_changes for cert in vc.prepared)
        assert len(encode_message(nv)) <= nv_bound
    assert c.heights()[1:] == [PIPE] * 3
    for i in (1, 2, 3):
        assert [b.payload for b in c.nodes[i].blocks] == [(tx,) for tx in txs]
    c.assert_agreement()


def _cert(s: Solo, backups: list[int], *, payload: tuple[bytes, ...] = (b"tx:a",)) -> PreparedCert:
    pp = s.craft.pre_prepare(0, 1, payload, ts=5)
    return s.craft.prepared_cert(pp, backups)


def _raw_view_change(s: Solo, vc: ViewChange, **changes: object) -> ViewChange:
    """``vc`` with fields replaced, re-signed by its sender (Craft strips certificates)."""
    m = s.craft.sign(msgspec.structs.replace(vc, **changes))
    assert isinstance(m, ViewChange)
    return m


def _rejections(out: list[Action], prefix: str) -> list[str]:
    return [a.reason for a in out if isinstance(a, Rejected) and a.reason.startswith(prefix)]


def test_view_change_with_a_payload_in_a_certificate_is_rejected() -> None:
    """A VIEW-CHANGE whose prepared certificate keeps its payload is refused
    (``bad-view-change``); the same certificate stripped is accepted."""
    s = Solo(4, 3)
    cert = _cert(s, [1, 2])
    good = s.craft.view_change(1, 1, (cert,))
    full = _raw_view_change(s, good, prepared=(cert,))
    assert cert.pre_prepare.payload
    assert _rejections(s.feed(full), "bad-view-change")
    assert 1 not in s.replica._vc.votes.get(1, {})
    assert not of_type(s.feed(good), Rejected)
    assert 1 in s.replica._vc.votes.get(1, {})


def test_view_change_with_too_many_prepares_is_rejected() -> None:
    """A prepared certificate with quorum (3) prepares instead of quorum-1 (2)
    makes the VIEW-CHANGE oversize: refused (``bad-view-change``)."""
    s = Solo(4, 3)
    cert = _cert(s, [1, 2, 3], payload=())  # empty: the same stripped or not
    vc = s.craft.view_change(1, 1, (cert,))
    assert len(vc.prepared[0].prepares) == s.config.quorum
    assert _rejections(s.feed(vc), "bad-view-change")
    assert 1 not in s.replica._vc.votes.get(1, {})
    ok = s.craft.view_change(1, 2, (_cert(s, [1, 2], payload=()),))
    assert not of_type(s.feed(ok), Rejected)


def test_view_change_with_an_oversize_checkpoint_proof_is_rejected() -> None:
    """A stable checkpoint proved by all 4 checkpoints instead of a quorum of 3 is
    refused (``bad-view-change``); the same proof cut to 3 is accepted."""
    s = Solo(4, 3, checkpoint_interval=2, watermark_window=4)
    c = s.craft
    root = b"\x33" * 32
    proof = tuple(c.checkpoint(2, root, i) for i in range(4))
    out = s.feed(c.view_change(1, 1, stable=(2, root, proof)))
    assert _rejections(out, "bad-view-change")
    assert 1 not in s.replica._vc.votes.get(1, {})
    out = s.feed(c.view_change(1, 2, stable=(2, root, proof[:3])))
    assert not of_type(out, Rejected)


def test_new_view_with_more_than_a_quorum_of_view_changes_is_rejected() -> None:
    """NEW-VIEW(1) with all four VIEW-CHANGEs (quorum is 3) is refused
    (``bad-new-view``); the same with the first three is accepted."""
    s = Solo(4, 3)
    c = s.craft
    vcs = tuple(c.view_change(1, i) for i in range(4))
    out = s.feed(c.new_view(1, vcs))
    assert _rejections(out, "bad-new-view")
    assert s.replica.view == 0
    out = s.feed(c.new_view(1, vcs[:3]))
    assert not of_type(out, Rejected) and s.replica.view == 1


def test_new_view_reproposal_with_a_payload_is_rejected() -> None:
    """NEW-VIEW(1) whose re-proposal at height 1 carries the (matching) payload is
    refused (``bad-new-view``); the spec's stripped one is accepted."""
    s = Solo(4, 3)
    c = s.craft
    cert = _cert(s, [1, 2])
    vcs = (c.view_change(1, 0), c.view_change(1, 1, (cert,)), c.view_change(1, 2))
    (pp,) = c.reproposals(1, vcs)
    heavy = msgspec.structs.replace(pp, payload=cert.pre_prepare.payload)  # not signed
    out = s.feed(c.new_view(1, vcs, (heavy,)))
    assert _rejections(out, "bad-new-view")
    assert s.replica.view == 0
    out = s.feed(c.new_view(1, vcs, (pp,)))
    assert not of_type(out, Rejected) and s.replica.view == 1


# ------------------------------------------------------------------ config
FRAME = 4 * MiB - 64 * KiB


@pytest.mark.parametrize("n", [4, 7, 31])
def test_default_config_fits_the_frame_limit(n: int) -> None:
    """The defaults fit a 4 MiB frame less 64 KiB at n = 4, 7 and 31."""
    cfg = ConsensusConfig(chain_id=CHAIN_ID, n=n, max_message_bytes=FRAME)
    assert sizes.new_view_bytes(CHAIN_ID, n, cfg.watermark_window) <= FRAME
    assert sizes.pre_prepare_bytes(CHAIN_ID, cfg.batch_max_count, cfg.batch_max_bytes) <= FRAME


def test_config_whose_new_view_cannot_fit_is_refused() -> None:
    """n = 31 with a 512-height window makes a worst-case NEW-VIEW of ~31 MB:
    refused; so is n = 100 with the default window."""
    with pytest.raises(ValueError, match="NEW-VIEW"):
        ConsensusConfig(chain_id=CHAIN_ID, n=31, watermark_window=512, max_message_bytes=FRAME)
    with pytest.raises(ValueError, match="NEW-VIEW"):
        ConsensusConfig(chain_id=CHAIN_ID, n=100, max_message_bytes=FRAME)


def test_config_whose_full_pre_prepare_cannot_fit_is_refused() -> None:
    """A 4 MiB batch cannot travel in a 4 MiB - 64 KiB frame: refused; without a
    limit (max_message_bytes = 0) nothing is checked."""
    with pytest.raises(ValueError, match="PRE-PREPARE"):
        ConsensusConfig(chain_id=CHAIN_ID, n=4, batch_max_bytes=4 * MiB, max_message_bytes=FRAME)
    ConsensusConfig(chain_id=CHAIN_ID, n=4, batch_max_bytes=4 * MiB)
