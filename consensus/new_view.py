"""NEW-VIEW selection and the checks of VIEW-CHANGE and NEW-VIEW, as pure functions.

The primary of view v sends NEW-VIEW with exactly a quorum of VIEW-CHANGEs for
v and, for every height between min-s (the highest stable checkpoint among
them) and max-s (the highest height prepared above it), a re-proposal: the
proposal of the prepared certificate of the highest view, or an empty (null)
proposal where nothing was prepared. Every replica recomputes the selection
from the VIEW-CHANGEs in the message and accepts only an exact match
(``replica.py``, "View change", says why this is safe).

Nothing here holds replica state. The parts of the NEW-VIEW check that do
(the cache of VIEW-CHANGEs already checked, the clock and chain tip an empty
block's timestamp is held to) are passed in as callables. Every check raises
``CertificateError`` saying what is wrong; the replica turns that into a
``Rejected`` whose reason the peer penalties classify, so the messages and
the order of the checks are part of the behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from consensus.config import ConsensusConfig
from consensus.crypto import PayloadRules, Verifier
from consensus.messages import NewView, PreparedCert, PrePrepare, Proposal, ViewChange
from consensus.quorum import CertificateError, verify_checkpoint_proof, verify_prepared_cert


class Selection(NamedTuple):
    """What a quorum of VIEW-CHANGEs obliges the new primary to re-propose."""

    min_s: int  # the highest stable checkpoint among them
    max_s: int  # the highest height prepared above min_s (min_s when none)
    prepared: dict[int, PreparedCert]  # height -> certificate of the highest view


def pick_view_changes(votes: Mapping[int, ViewChange], quorum: int) -> tuple[ViewChange, ...]:
    """The VIEW-CHANGEs a new primary puts in its NEW-VIEW: exactly a quorum of
    ``votes`` (sender -> VIEW-CHANGE), lowest senders first."""
    return tuple(votes[s] for s in sorted(votes)[:quorum])


def select_prepared(vcs: Sequence[ViewChange]) -> Selection:
    """min-s, max-s and, per height above min-s, the prepared certificate of the
    highest view (the first one seen among equals)."""
    min_s = max(vc.stable_height for vc in vcs)
    chosen: dict[int, PreparedCert] = {}
    for vc in vcs:
        for cert in vc.prepared:
            h = cert.pre_prepare.height
            if h <= min_s:
                continue
            have = chosen.get(h)
            if have is None or cert.pre_prepare.view > have.pre_prepare.view:
                chosen[h] = cert
    max_s = max(chosen, default=min_s)
    return Selection(min_s, max_s, chosen)


def reproposals(
    view: int,
    selection: Selection,
    *,
    chain_id: str,
    proposer: int,
    empty_root: bytes,
    prev_ts: int,
    now: int,
) -> tuple[PrePrepare, ...]:
    """The new primary's pre-prepares (unsigned, without payloads) for heights
    min-s+1 .. max-s: each prepared value as it was proposed, an empty block in
    each gap. An empty block is timestamped ``now`` and after the block below
    it (``prev_ts`` is the timestamp below min-s+1), so it passes every
    replica's clock checks like a fresh proposal."""
    out: list[PrePrepare] = []
    for h in range(selection.min_s + 1, selection.max_s + 1):
        cert = selection.prepared.get(h)
        if cert is not None:
            proposal = cert.pre_prepare.proposal  # re-proposed without its payload
        else:
            ts = max(now, prev_ts + 1)
            proposal = Proposal(chain_id, h, ts, proposer, empty_root)
        prev_ts = proposal.timestamp
        out.append(PrePrepare(view, proposal, (), proposer))
    return tuple(out)


def adopted_checkpoint(vcs: Sequence[ViewChange]) -> ViewChange:
    """The VIEW-CHANGE whose stable checkpoint a replica entering the new view
    adopts: the highest one (min-s), of the lowest sender among equals."""
    return max(vcs, key=lambda vc: (vc.stable_height, -vc.sender))


def check_view_change(
    config: ConsensusConfig, verifier: Verifier, rules: PayloadRules, vc: ViewChange
) -> None:
    """Check every proof in ``vc`` (not its own signature).

    Certificates must have exactly the shape an honest replica gives them
    (quorum checkpoints, quorum-1 prepares, stripped pre-prepares), which
    bounds the size of every VIEW-CHANGE and NEW-VIEW (``sizes.py``).
    """
    cfg = config
    if vc.stable_height % cfg.checkpoint_interval or vc.stable_height < cfg.base_height:
        raise CertificateError("stable height is not a checkpoint height")
    if vc.stable_height > cfg.base_height:
        if len(vc.checkpoint_proof) != cfg.quorum:
            raise CertificateError(f"checkpoint proof of {len(vc.checkpoint_proof)} != quorum")
        verify_checkpoint_proof(
            cfg, verifier, vc.stable_height, vc.stable_root, vc.checkpoint_proof
        )
    elif vc.checkpoint_proof or vc.stable_root:
        raise CertificateError("a proof for the epoch's starting checkpoint")
    last = vc.stable_height
    for cert in vc.prepared:
        h = cert.pre_prepare.height
        if h <= last or h > vc.stable_height + cfg.watermark_window:
            raise CertificateError(f"prepared certificate at height {h} out of order or range")
        if cert.pre_prepare.view >= vc.new_view:
            raise CertificateError("prepared certificate from a view not below the new view")
        if cert.pre_prepare.payload:
            raise CertificateError(f"prepared certificate at height {h} carries a payload")
        if len(cert.prepares) != cfg.quorum - 1:
            raise CertificateError(f"prepared certificate at height {h}: not quorum-1 prepares")
        verify_prepared_cert(cfg, verifier, rules, cert)
        last = h


def check_new_view(
    config: ConsensusConfig,
    verifier: Verifier,
    empty_root: bytes,
    nv: NewView,
    *,
    check_view_change: Callable[[ViewChange], None],
    check_null_time: Callable[[PrePrepare], None],
) -> Selection:
    """Check ``nv`` (not its own signature) and return its selection.

    ``check_view_change`` checks the proofs of one of its VIEW-CHANGEs (the
    replica's cached ``check_view_change``), ``check_null_time`` the timestamp
    of one of its empty blocks (``check_null_time`` with the replica's clock
    and chain tip).
    """
    cfg = config
    if nv.sender != cfg.primary(nv.view):
        raise CertificateError("NEW-VIEW not from the view's primary")
    senders = [vc.sender for vc in nv.view_changes]
    if len(set(senders)) != len(senders) or len(senders) != cfg.quorum:
        raise CertificateError("NEW-VIEW needs a quorum of view changes from distinct replicas")
    for vc in nv.view_changes:
        if vc.new_view != nv.view:
            raise CertificateError("view change for another view")
        if not 0 <= vc.sender < cfg.n or not verifier.verify(
            vc.sender, vc.signing_bytes(cfg.signing_domain), vc.sig
        ):
            raise CertificateError(f"view change from {vc.sender} badly signed")
        check_view_change(vc)
    selection = select_prepared(nv.view_changes)
    expected = list(range(selection.min_s + 1, selection.max_s + 1))
    if [pp.height for pp in nv.pre_prepares] != expected:
        raise CertificateError("NEW-VIEW re-proposes the wrong heights")
    for pp in nv.pre_prepares:
        if pp.view != nv.view or pp.sender != nv.sender:
            raise CertificateError("NEW-VIEW pre-prepare of another view or sender")
        if not verifier.verify(pp.sender, pp.signing_bytes(cfg.signing_domain), pp.sig):
            raise CertificateError("NEW-VIEW pre-prepare badly signed")
        if pp.payload:
            raise CertificateError(f"NEW-VIEW re-proposal at {pp.height} carries a payload")
        cert = selection.prepared.get(pp.height)
        if cert is not None:
            if pp.proposal != cert.pre_prepare.proposal:
                raise CertificateError(f"NEW-VIEW changes the prepared value at {pp.height}")
        else:
            p = pp.proposal
            if (
                p.chain_id != cfg.chain_id
                or p.proposer != nv.sender
                or p.payload_root != empty_root
            ):
                raise CertificateError(f"NEW-VIEW must propose an empty block at {pp.height}")
            check_null_time(pp)
    return selection


def check_null_time(
    nv: NewView,
    pp: PrePrepare,
    *,
    now: int,
    max_clock_drift_ms: int,
    delivered: int,
    delivered_ts: int,
) -> None:
    """An empty block's time is the new primary's choice: hold it to the rules
    of a fresh proposal (not ahead of ``now``, after the block below: the one
    before it in ``nv``, or the last delivered one, ``delivered`` at
    ``delivered_ts``)."""
    ts, h = pp.proposal.timestamp, pp.height
    if ts > now + max_clock_drift_ms:
        raise CertificateError(f"NEW-VIEW empty block at {h} is timestamped in the future")
    below = [q for q in nv.pre_prepares if q.height == h - 1]
    if below and ts <= below[0].proposal.timestamp:
        raise CertificateError(f"NEW-VIEW empty block at {h} is older than the block below")
    if h - 1 == delivered and ts <= delivered_ts:
        raise CertificateError(f"NEW-VIEW empty block at {h} is older than block {h - 1}")
