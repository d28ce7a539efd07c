"""What a validator's misbehaviour costs its peer link: the consensus refusal
table (``node.net.penalties.consensus_points``), bans that never accumulate
while they last and always end, per-peer traffic budgets (``node.net.budget``)
and the signatures pre-checked in the verify pool (``node.net.signatures``).
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import nacl.signing
import pytest

from consensus.config import ConsensusConfig
from consensus.messages import (
    Checkpoint,
    NewView,
    Prepare,
    PreparedCert,
    PrePrepare,
    Proposal,
    ViewChange,
    sign_message,
)
from node.core.keys import ValidatorVerifier, verify_batch
from node.net.budget import (
    BYTES_FLOOR,
    PeerBudget,
    TrafficBudget,
    Verdict,
    consensus_budget,
)
from node.net.penalties import (
    CONFLICT_POINTS,
    CONSENSUS_POINTS,
    FORGERY_POINTS,
    PenaltyBook,
    consensus_points,
)
from node.net.signatures import PreverifiedSignatures, signed_parts

ROOT = Path(__file__).resolve().parents[2]
CHAIN = "hygeia-unit"


# ------------------------------------------------------------------ the refusal table
def test_forgeries_cost_a_third_of_the_threshold_timing_costs_nothing() -> None:
    assert consensus_points("bad-signature") == FORGERY_POINTS
    assert consensus_points("bad-view-change: checkpoint proof of 2 != quorum") == FORGERY_POINTS
    assert consensus_points("bad-new-view: view change from 2 badly signed") == FORGERY_POINTS
    assert consensus_points("payload-root-mismatch") == FORGERY_POINTS
    assert consensus_points("equivocation") == FORGERY_POINTS
    assert consensus_points("pre-prepare-conflicts-with-committed") == CONFLICT_POINTS
    assert consensus_points("pre-prepare-timestamp-ahead") == 0
    assert consensus_points("view-change-too-far") == 0
    # an empty block of a NEW-VIEW stamped by a skewed clock: timing, not forgery
    assert (
        consensus_points("bad-new-view: NEW-VIEW empty block at 5 is timestamped in the future")
        == 0
    )
    assert consensus_points("bad-new-view: NEW-VIEW empty block at 5 is older than block 4") == 0
    assert consensus_points("something-new") == 0
    assert 3 * FORGERY_POINTS >= 100 > 2 * FORGERY_POINTS  # three strikes at the default threshold


def test_every_attributable_refusal_of_the_replica_is_classified() -> None:
    """A new reason code of ``consensus/replica.py`` with a sender must get an
    explicit entry (possibly 0): unknown codes cost nothing, silently."""
    source = (ROOT / "consensus" / "replica.py").read_text(encoding="utf-8")
    codes = set(re.findall(r'Rejected\(\s*(?!-1\b)[^,()]+,\s*f?"([a-z0-9-]+)', source))
    assert codes, "no Rejected(...) codes found: the pattern is out of date"
    missing = sorted(codes - set(CONSENSUS_POINTS))
    assert not missing, f"classify these refusals in node/net/penalties.py: {missing}"


def test_a_banned_peer_scores_nothing_until_its_ban_ends_then_comes_back() -> None:
    now = [0.0]
    book = PenaltyBook(threshold=100, ban_seconds=600, decay_seconds=60, clock=lambda: now[0])
    peer = b"v" * 32
    assert not book.add(peer, FORGERY_POINTS)
    assert not book.add(peer, FORGERY_POINTS)
    assert book.add(peer, FORGERY_POINTS)  # the third forgery bans
    for _ in range(1000):  # its frames still in flight: counted, no points, no new ban
        assert not book.add(peer, FORGERY_POINTS)
    assert book.count(peer) == 1003 and book.score(peer) == 0
    now[0] = 600.0
    assert not book.is_banned(peer)  # never for good
    assert not book.add(peer, 1) and book.score(peer) == 1


# ------------------------------------------------------------------ budgets
def test_budget_of_the_genesis_defaults() -> None:
    cfg = ConsensusConfig(chain_id=CHAIN, n=4, max_message_bytes=(4 << 20) - 3)
    budget = consensus_budget(cfg, 4 << 20)
    # H = 4 * 1000 / 20 = 200 heights/s; 3 * 200 + (2*64 + 64/16 + 1 + 5) + 1000/2000 = 738.5
    assert budget.messages == 2954
    assert budget.heavy == 16
    assert budget.bytes == BYTES_FLOOR
    # one request per batch: a height per request, up to the 20,000 tx/s ceiling
    single = consensus_budget(ConsensusConfig(chain_id=CHAIN, n=4, batch_max_count=1), 4 << 20)
    assert single.messages == 4 * (3 * 20_000 + 138) + 2
    # a faster resend needs more room
    fast = consensus_budget(ConsensusConfig(chain_id=CHAIN, n=4, resend_interval_ms=250), 4 << 20)
    assert fast.heavy == 64 and fast.messages > budget.messages


def test_budget_drops_beyond_the_limits_penalises_once_per_window() -> None:
    tb = TrafficBudget(PeerBudget(messages=3, bytes=1000, heavy=1))
    a, b = b"a" * 32, b"b" * 32
    assert [tb.admit(a, "Prepare", 10, 0.0) for _ in range(3)] == [Verdict.ADMIT] * 3
    assert tb.admit(a, "Prepare", 10, 0.5) is Verdict.PENALISE
    assert tb.admit(a, "Commit", 10, 0.9) is Verdict.DROP
    assert tb.admit(b, "Prepare", 10, 0.9) is Verdict.ADMIT  # per peer
    assert tb.admit(a, "Prepare", 10, 1.0) is Verdict.ADMIT  # a new window
    # heavy messages have their own, lower limit; bytes too
    assert tb.admit(b, "ViewChange", 10, 0.9) is Verdict.ADMIT
    assert tb.admit(b, "NewView", 10, 0.9) is Verdict.PENALISE
    assert tb.admit(a, "Prepare", 991, 1.1) is Verdict.PENALISE
    assert tb.admit(a, "Prepare", 995, 1.1) is Verdict.DROP
    assert tb.dropped == 5
    tb.forget(a)
    assert tb.admit(a, "Prepare", 10, 1.2) is Verdict.ADMIT
    with pytest.raises(ValueError):
        PeerBudget(messages=0, bytes=1, heavy=1)


# ------------------------------------------------------------------ pre-verified signatures
class CountingVerifier:
    def __init__(self, inner: ValidatorVerifier) -> None:
        self.inner = inner
        self.calls = 0

    def verify(self, validator: int, data: bytes, sig: bytes) -> bool:
        self.calls += 1
        return self.inner.verify(validator, data, sig)


KEYS = [nacl.signing.SigningKey(bytes([i + 1]) * 32) for i in range(4)]
PUBS = [bytes(k.verify_key) for k in KEYS]


def _signed(msg: object, by: int) -> object:
    return sign_message(msg, lambda data: bytes(KEYS[by].sign(data).signature), CHAIN)  # type: ignore[type-var]


def _view_change(sender: int, *, bad_prepare: bool = False) -> ViewChange:
    proposal = Proposal(CHAIN, 3, 1, 0, bytes(32))
    pp = _signed(PrePrepare(0, proposal, (), 0), 0)
    prepares = tuple(_signed(Prepare(0, 3, proposal.digest(), i), i) for i in (1, 2))
    if bad_prepare:
        prepares = (Prepare(0, 3, proposal.digest(), 1, bytes(64)), prepares[1])
    proof = tuple(_signed(Checkpoint(0, bytes(32), i), i) for i in (0, 1, 2))
    vc = ViewChange(1, 0, bytes(32), proof, (PreparedCert(pp, prepares),), sender)  # type: ignore[arg-type]
    return _signed(vc, sender)  # type: ignore[return-value]


def test_preverified_signatures_are_trusted_by_the_replicas_verifier() -> None:
    inner = CountingVerifier(ValidatorVerifier(PUBS))
    sigs = PreverifiedSignatures(inner, PUBS)
    nv = _signed(NewView(1, (_view_change(2), _view_change(3)), (), 1), 1)
    parts = list(signed_parts(nv))
    assert len(parts) == 1 + 2 * (
        1 + 3 + 1 + 2
    )  # NEW-VIEW, 2 x (VC, 3 checkpoints, pp, 2 prepares)
    good, triples = sigs.preverify(nv, CHAIN)  # type: ignore[arg-type]
    assert good and len(set(triples)) == len(parts) - 6  # the two VCs share their certificates
    assert inner.calls == 0
    sigs.remember(triples)
    for part in parts:
        assert sigs.verify(part.sender, part.signing_bytes(CHAIN), part.sig)
    assert inner.calls == 0 and sigs.hits == len(parts)
    # anything else is checked for real
    assert not sigs.verify(1, b"other", bytes(64)) and inner.calls == 1


def test_a_bad_own_signature_or_a_bad_nested_one() -> None:
    sigs = PreverifiedSignatures(ValidatorVerifier(PUBS), PUBS)
    forged = Prepare(0, 1, bytes(32), 2, bytes(64))
    assert sigs.preverify(forged, CHAIN) == (False, [])
    wrong_sender = Prepare(0, 1, bytes(32), 9, bytes(64))
    assert sigs.preverify(wrong_sender, CHAIN) == (False, [])
    vc = _view_change(2, bad_prepare=True)
    good, triples = sigs.preverify(vc, CHAIN)
    assert (
        good and len(triples) == len(list(signed_parts(vc))) - 1
    )  # the forged prepare is left out


def test_each_distinct_signature_of_a_message_is_checked_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A VIEW-CHANGE padded to the frame limit with copies of one certificate (what
    tests.chaos.byzantine_node's ``oversized`` sends) costs a check per distinct
    signature, not per copy: 37,000 copies took the verify pool seconds per message."""
    checked: list[int] = []

    def counting(items: list[tuple[bytes, bytes, bytes]], **kwargs: object) -> list[bool]:
        checked.append(len(items))
        return verify_batch(items, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("node.net.signatures.verify_batch", counting)
    sigs = PreverifiedSignatures(ValidatorVerifier(PUBS), PUBS)
    honest = _view_change(2)
    cert = honest.prepared[0]
    padded = _signed(msgspec.structs.replace(honest, prepared=(cert,) * 1000), 2)
    good, triples = sigs.preverify(padded, CHAIN)  # type: ignore[arg-type]
    assert good and checked == [1 + 3 + 1 + 2]  # the VC, its proof, one pp, two prepares
    assert len(triples) == len(set(triples)) == 7
    sigs.remember(triples)
    # a bad copy is one bad signature, however often it repeats
    forged = _view_change(2, bad_prepare=True).prepared[0]
    bad = _signed(msgspec.structs.replace(honest, prepared=(forged,) * 1000), 2)
    checked.clear()
    good, triples = sigs.preverify(bad, CHAIN)  # type: ignore[arg-type]
    assert good and checked == [1 + 1]  # the new VC signature, the forged prepare
    assert len(triples) == 6


def test_the_cache_is_bounded_oldest_first() -> None:
    inner = CountingVerifier(ValidatorVerifier(PUBS))
    sigs = PreverifiedSignatures(inner, PUBS, size=2)
    votes = [_signed(Prepare(0, h, bytes(32), 1), 1) for h in (1, 2, 3)]
    for vote in votes:
        good, triples = sigs.preverify(vote, CHAIN)  # type: ignore[arg-type]
        assert good
        sigs.remember(triples)
    for vote in votes:
        assert sigs.verify(1, vote.signing_bytes(CHAIN), vote.sig)  # type: ignore[attr-defined]
    assert inner.calls == 1  # the first one was forgotten
