"""The NEW-VIEW selection and checks of ``consensus/new_view.py``, as pure functions.

Built from validly signed VIEW-CHANGEs (the ``Craft`` of ``cluster.py``):

- the prepared certificate re-proposed at a height is the one of the highest view;
- heights between min-s and max-s where nothing was prepared get empty blocks,
  timestamped now and after the block below;
- min-s is the highest stable checkpoint among the VIEW-CHANGEs (each with a
  valid quorum proof, or the VIEW-CHANGE is refused); certificates at or
  below it are ignored;
- a malformed VIEW-CHANGE or NEW-VIEW raises ``CertificateError`` with the
  message the replica has always given (peer penalties classify them), and the
  replica refuses it with ``bad-view-change: ...`` / ``bad-new-view: ...``.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from consensus.actions import Rejected
from consensus.messages import (
    Checkpoint,
    NewView,
    PreparedCert,
    PrePrepare,
    ViewChange,
)
from consensus.new_view import (
    Selection,
    adopted_checkpoint,
    check_new_view,
    check_null_time,
    check_view_change,
    pick_view_changes,
    reproposals,
    select_prepared,
)
from consensus.quorum import CertificateError
from tests.unit.cluster import Craft, Solo, of_type

ROOT = b"r" * 32


def _solo() -> Solo:
    """Replica 3 of n = 4 (f = 1, quorum 3, K = 16, L = 64); its craft signs for anyone."""
    return Solo(4, 3)


def _cert(c: Craft, view: int, height: int, tx: bytes, ts: int | None = None) -> PreparedCert:
    """A certificate of ``tx`` prepared at ``height`` in ``view`` by the two
    backups after the view's primary."""
    pp = c.pre_prepare(view, height, (tx,), ts=ts)
    p = c.config.primary(view)
    backups = [(p + 1) % 4, (p + 2) % 4]
    return c.prepared_cert(pp, backups)


def _proof(
    c: Craft, height: int, root: bytes = ROOT, senders: tuple[int, ...] = (0, 1, 2)
) -> tuple[Checkpoint, ...]:
    return tuple(c.checkpoint(height, root, i) for i in senders)


def _check_vc(s: Solo) -> Callable[[ViewChange], None]:
    return lambda vc: check_view_change(s.config, s.scheme.verifier(), s.craft.rules, vc)


def _check(
    s: Solo, nv: NewView, *, now: int = 10, delivered: int = 0, delivered_ts: int = 0
) -> Selection:
    """``check_new_view`` as a replica at ``delivered`` runs it at ``now``."""
    return check_new_view(
        s.config,
        s.scheme.verifier(),
        s.craft.rules.payload_root(()),
        nv,
        check_view_change=_check_vc(s),
        check_null_time=lambda pp: check_null_time(
            nv,
            pp,
            now=now,
            max_clock_drift_ms=s.config.max_clock_drift_ms,
            delivered=delivered,
            delivered_ts=delivered_ts,
        ),
    )


def _error(call: Callable[..., object], *args: object) -> str:
    """The message of the ``CertificateError`` that ``call(*args)`` raises."""
    with pytest.raises(CertificateError) as info:
        call(*args)
    return str(info.value)


def _new_view(c: Craft, view: int, vcs: tuple[ViewChange, ...], *, now: int) -> NewView:
    """The NEW-VIEW the primary of ``view`` builds with the module's functions."""
    p = c.config.primary(view)
    pps = reproposals(
        view,
        select_prepared(vcs),
        chain_id=c.config.chain_id,
        proposer=p,
        empty_root=c.rules.payload_root(()),
        prev_ts=0,
        now=now,
    )
    signed = tuple(c.sign(pp) for pp in pps)
    return c.new_view(view, vcs, signed)


# ------------------------------------------------------------------ selection
def test_the_prepared_certificate_of_the_highest_view_is_chosen() -> None:
    """Height 1 prepared tx:a in view 0 (in 0's VIEW-CHANGE) and tx:b in view 1
    (in 2's): NEW-VIEW(2) must re-propose tx:b's proposal, whatever the order
    of the VIEW-CHANGEs."""
    s = _solo()
    c = s.craft
    old = _cert(c, 0, 1, b"tx:a", ts=5)
    new = _cert(c, 1, 1, b"tx:b", ts=7)
    vcs = (c.view_change(2, 0, (old,)), c.view_change(2, 2, (new,)), c.view_change(2, 3))
    for order in (vcs, vcs[::-1], (vcs[1], vcs[0], vcs[2])):
        sel = select_prepared(order)
        assert (sel.min_s, sel.max_s) == (0, 1)
        assert sel.prepared[1].pre_prepare.view == 1
        assert sel.prepared[1].pre_prepare.proposal == new.pre_prepare.proposal
    nv = _new_view(c, 2, vcs, now=10)
    assert [pp.proposal for pp in nv.pre_prepares] == [new.pre_prepare.proposal]
    assert _check(s, nv).prepared[1].pre_prepare.view == 1
    # re-proposing the lower view's value instead is refused
    stale = c.sign(PrePrepare(2, old.pre_prepare.proposal, (), 2))
    bad = c.new_view(2, vcs, (stale,))
    assert _error(lambda: _check(s, bad)) == "NEW-VIEW changes the prepared value at 1"


def test_null_requests_fill_the_gaps_between_prepared_heights() -> None:
    """Prepared at heights 1 (ts 50) and 4, nothing at 2 and 3: NEW-VIEW(1)
    re-proposes 1 and 4 unchanged and empty blocks of primary 1 at 2 and 3,
    each after the block below and not before ``now``."""
    s = _solo()
    c = s.craft
    one = _cert(c, 0, 1, b"tx:a", ts=50)
    four = _cert(c, 0, 4, b"tx:d", ts=80)
    vcs = (c.view_change(1, 0, (one, four)), c.view_change(1, 2), c.view_change(1, 3))
    empty_root = c.rules.payload_root(())
    sel = select_prepared(vcs)
    assert (sel.min_s, sel.max_s, sorted(sel.prepared)) == (0, 4, [1, 4])

    def repropose(sel: Selection, prev_ts: int, now: int) -> tuple[PrePrepare, ...]:
        return reproposals(
            1,
            sel,
            chain_id=c.config.chain_id,
            proposer=1,
            empty_root=empty_root,
            prev_ts=prev_ts,
            now=now,
        )

    pps = repropose(sel, 0, 20)
    assert [pp.height for pp in pps] == [1, 2, 3, 4]
    assert pps[0].proposal == one.pre_prepare.proposal
    assert pps[3].proposal == four.pre_prepare.proposal
    for pp in pps[1:3]:
        assert (pp.proposal.proposer, pp.proposal.payload_root) == (1, empty_root)
    assert [pp.proposal.timestamp for pp in pps[1:3]] == [51, 52]  # after ts 50
    assert all((pp.view, pp.sender, pp.payload, pp.sig) == (1, 1, (), b"") for pp in pps)
    later = repropose(sel, 0, 1_000)
    assert [pp.proposal.timestamp for pp in later[1:3]] == [1_000, 1_001]
    # nothing prepared: nothing to re-propose; a gap at the bottom: after prev_ts
    bare = (c.view_change(1, 0), c.view_change(1, 2), c.view_change(1, 3))
    assert repropose(select_prepared(bare), 0, 20) == ()
    first = repropose(select_prepared((c.view_change(1, 0, (four,)), *bare[1:])), 30, 20)[0]
    assert (first.height, first.proposal.timestamp) == (1, 31)
    nv = _new_view(c, 1, vcs, now=20)
    assert _check(s, nv, now=20).max_s == 4
    # a NEW-VIEW that leaves a gap out, or fills it with a payload, is refused
    assert _error(lambda: _check(s, c.new_view(1, vcs, nv.pre_prepares[:2]))) == (
        "NEW-VIEW re-proposes the wrong heights"
    )
    full = c.pre_prepare(1, 2, (b"tx:x",), ts=51)
    swapped = c.new_view(1, vcs, (nv.pre_prepares[0], full, *nv.pre_prepares[2:]))
    assert _error(lambda: _check(s, swapped)) == "NEW-VIEW re-proposal at 2 carries a payload"
    stuffed = c.new_view(1, vcs, (nv.pre_prepares[0], full.stripped(), *nv.pre_prepares[2:]))
    assert _error(lambda: _check(s, stuffed)) == "NEW-VIEW must propose an empty block at 2"


def test_min_s_is_the_highest_stable_checkpoint_with_a_valid_proof() -> None:
    """Replica 2 reports checkpoint 16 with a quorum proof: min-s is 16, the
    certificate at 5 (below it) is dropped, the one at 17 kept, and the
    checkpoint adopted is 2's. A claimed checkpoint 32 whose proof is short,
    of another root or forged makes the VIEW-CHANGE, and a NEW-VIEW holding
    it, invalid."""
    s = _solo()
    c = s.craft
    low = _cert(c, 0, 5, b"tx:a")
    high = _cert(c, 0, 17, b"tx:b")
    vcs = (
        c.view_change(1, 0, (low,)),
        c.view_change(1, 2, (high,), stable=(16, ROOT, _proof(c, 16))),
        c.view_change(1, 3),
    )
    for vc in vcs:
        _check_vc(s)(vc)  # all valid
    sel = select_prepared(vcs)
    assert (sel.min_s, sel.max_s, sorted(sel.prepared)) == (16, 17, [17])
    assert adopted_checkpoint(vcs).sender == 2
    nv = _new_view(c, 1, vcs, now=10)
    assert [pp.height for pp in nv.pre_prepares] == [17]
    assert _check(s, nv).min_s == 16
    # equal checkpoints: the lowest sender's is adopted
    same = (vcs[1], c.view_change(1, 0, stable=(16, ROOT, _proof(c, 16))))
    assert adopted_checkpoint(same).sender == 0

    short = c.view_change(1, 0, stable=(32, ROOT, _proof(c, 32)[:2]))
    other_root = c.view_change(
        1, 0, stable=(32, ROOT, (*_proof(c, 32)[:2], c.checkpoint(32, b"x" * 32, 2)))
    )
    forged_cp = msgspec.structs.replace(c.checkpoint(32, ROOT, 2), sig=bytes(16))
    forged = c.view_change(1, 0, stable=(32, ROOT, (*_proof(c, 32)[:2], forged_cp)))
    cases = {
        short: "checkpoint proof of 2 != quorum",
        other_root: "checkpoint proof at height 32: checkpoint of validator 2 does not match",
        forged: "checkpoint proof at height 32: bad signature of validator 2",
    }
    for vc, message in cases.items():
        assert _error(_check_vc(s), vc) == message
        nv = c.new_view(1, (vc, vcs[1], vcs[2]), ())
        assert _error(_check, s, nv) == message


def test_the_new_primary_puts_exactly_a_quorum_lowest_senders_first() -> None:
    s = _solo()
    c = s.craft
    votes = {i: c.view_change(1, i) for i in (3, 0, 2, 1)}
    assert [vc.sender for vc in pick_view_changes(votes, s.config.quorum)] == [0, 1, 2]


# ------------------------------------------------------- invalid VIEW-CHANGEs
def test_malformed_view_changes_raise_the_messages_the_replica_gives() -> None:
    s = _solo()
    c = s.craft
    cert1, cert2 = _cert(c, 0, 1, b"tx:a"), _cert(c, 0, 2, b"tx:b")
    one_prepare = PreparedCert(cert1.pre_prepare, cert1.prepares[:1])
    with_payload = c.sign(ViewChange(1, 0, b"", (), (cert1,), 0))  # not stripped
    cases: list[tuple[ViewChange, str]] = [
        (
            c.view_change(1, 0, stable=(5, ROOT, _proof(c, 5))),
            "stable height is not a checkpoint height",
        ),
        (c.view_change(1, 0, stable=(0, ROOT, ())), "a proof for the epoch's starting checkpoint"),
        (
            c.view_change(1, 0, (cert2, cert1)),
            "prepared certificate at height 1 out of order or range",
        ),
        (
            c.view_change(1, 0, (_cert(c, 0, 90, b"tx:c"),)),
            "prepared certificate at height 90 out of order or range",
        ),
        (
            c.view_change(1, 0, (_cert(c, 1, 1, b"tx:c"),)),
            "prepared certificate from a view not below the new view",
        ),
        (with_payload, "prepared certificate at height 1 carries a payload"),
        (
            c.view_change(1, 0, (one_prepare,)),
            "prepared certificate at height 1: not quorum-1 prepares",
        ),
    ]
    for vc, message in cases:
        assert _error(_check_vc(s), vc) == message
    # the replica refuses the same VIEW-CHANGEs with the same words
    for vc, message in cases:
        out = s.feed(vc)
        assert Rejected(0, f"bad-view-change: {message}") in of_type(out, Rejected), message


# --------------------------------------------------------- invalid NEW-VIEWs
def test_malformed_new_views_raise_the_messages_the_replica_gives() -> None:
    s = _solo()
    c = s.craft
    cert = _cert(c, 0, 1, b"tx:a", ts=5)
    vcs = (c.view_change(1, 0), c.view_change(1, 1, (cert,)), c.view_change(1, 2))
    good = _new_view(c, 1, vcs, now=10)
    assert _check(s, good).prepared[1] == cert.stripped()
    other_view_pp = c.sign(msgspec.structs.replace(good.pre_prepares[0], view=2))
    cases: list[tuple[NewView, str]] = [
        (
            c.sign(msgspec.structs.replace(good, sender=2)),
            "NEW-VIEW not from the view's primary",
        ),
        (
            c.new_view(1, vcs[:2], good.pre_prepares),
            "NEW-VIEW needs a quorum of view changes from distinct replicas",
        ),
        (
            c.new_view(1, (vcs[0], vcs[1], vcs[0]), good.pre_prepares),
            "NEW-VIEW needs a quorum of view changes from distinct replicas",
        ),
        (
            c.new_view(1, (vcs[0], vcs[1], c.view_change(2, 2)), good.pre_prepares),
            "view change for another view",
        ),
        (
            c.new_view(
                1,
                (vcs[0], vcs[1], msgspec.structs.replace(vcs[2], sig=bytes(16))),
                good.pre_prepares,
            ),
            "view change from 2 badly signed",
        ),
        (c.new_view(1, vcs, ()), "NEW-VIEW re-proposes the wrong heights"),
        (
            c.new_view(1, vcs, (other_view_pp,)),
            "NEW-VIEW pre-prepare of another view or sender",
        ),
        (
            c.new_view(1, vcs, (msgspec.structs.replace(good.pre_prepares[0], sig=bytes(16)),)),
            "NEW-VIEW pre-prepare badly signed",
        ),
    ]
    for nv, message in cases:
        assert isinstance(nv, NewView)
        assert _error(_check, s, nv) == message
    for nv, message in cases:
        out = s.feed(nv)
        assert Rejected(nv.sender, f"bad-new-view: {message}") in of_type(out, Rejected), message
    assert s.replica.view == 0


def test_an_empty_block_is_held_to_the_clock_and_the_block_below() -> None:
    """Heights 1 and 2 are gaps below a value prepared at 3: their empty blocks
    are refused when stamped beyond ``now`` + drift, at or before the block below
    inside the NEW-VIEW, or at or before the last delivered block."""
    s = _solo()
    c = s.craft
    three = _cert(c, 0, 3, b"tx:c", ts=60)
    vcs = (c.view_change(1, 0, (three,)), c.view_change(1, 2), c.view_change(1, 3))
    again = c.sign(PrePrepare(1, three.pre_prepare.proposal, (), 1))
    drift = s.config.max_clock_drift_ms

    def nulls_at(ts1: int, ts2: int) -> NewView:
        return c.new_view(1, vcs, (c.pre_prepare(1, 1, ts=ts1), c.pre_prepare(1, 2, ts=ts2), again))

    assert _new_view(c, 1, vcs, now=10) == nulls_at(10, 11)  # what a primary builds
    assert _check(s, nulls_at(10, 11), now=10).max_s == 3
    assert _check(s, nulls_at(9 + drift, 10 + drift), now=10).max_s == 3
    assert _error(lambda: _check(s, nulls_at(11 + drift, 12 + drift), now=10)) == (
        "NEW-VIEW empty block at 1 is timestamped in the future"
    )
    assert _error(lambda: _check(s, nulls_at(10, 10), now=10)) == (
        "NEW-VIEW empty block at 2 is older than the block below"
    )
    assert _error(lambda: _check(s, nulls_at(7, 8), now=10, delivered_ts=7)) == (
        "NEW-VIEW empty block at 1 is older than block 0"
    )
    assert _check(s, nulls_at(7, 8), now=10, delivered=5, delivered_ts=7).max_s == 3
