"""Input validation: what a replica refuses, and equivocation evidence."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from consensus.actions import Action, Broadcast, Evidence, Persist, Rejected, Send
from consensus.config import ConsensusConfig
from consensus.messages import Message, Prepare, PrePrepare, Proposal
from node.sim.crypto import KeyedHashScheme
from tests.unit.cluster import Craft, Solo, of_type

ME = 3  # a backup of view 0 in n=4
NOW = 1_000  # the replica's clock when the message arrives


def no_vote(out: list[Action]) -> None:
    assert not [a for a in out if isinstance(a, Broadcast | Send | Persist)], out


def reasons(out: list[Action]) -> list[str]:
    return [a.reason for a in out if isinstance(a, Rejected)]


def _forged_sig(s: Solo) -> Message:
    p = s.craft.prepare(0, 1, b"\x00" * 32, 1)
    return msgspec.structs.replace(p, sig=bytes(16))


def _signed_by_other(s: Solo) -> Message:
    p = Prepare(0, 1, b"\x00" * 32, 1)
    return s.craft.sign(p, as_=2)


def _other_chain_signature(s: Solo) -> Message:
    other = Craft(ConsensusConfig(chain_id="another-chain", n=4), s.scheme)
    return other.pre_prepare(0, 1, (b"tx:a",))


def _other_chain_proposal(s: Solo) -> Message:
    pp = s.craft.pre_prepare(0, 1, (b"tx:a",))
    prop = msgspec.structs.replace(pp.proposal, chain_id="another-chain")
    return s.craft.sign(msgspec.structs.replace(pp, proposal=prop))


def _unknown_key(s: Solo) -> Message:
    outsider = KeyedHashScheme(4, seed=999)
    p = Prepare(0, 1, b"\x00" * 32, 1)
    sig = outsider.signer(1).sign(p.signing_bytes(s.config.chain_id))
    return msgspec.structs.replace(p, sig=sig)


def _pp_not_from_primary(s: Solo) -> Message:
    return s.craft.pre_prepare(0, 1, (b"tx:a",), sender=1)


def _pp_bad_root(s: Solo) -> Message:
    pp = s.craft.pre_prepare(0, 1, (b"tx:a",))
    return s.craft.sign(msgspec.structs.replace(pp, payload=(b"tx:b",)))


def _pp_invalid_payload(s: Solo) -> Message:
    return s.craft.pre_prepare(0, 1, (b"not-a-tx",))


def _pp_proposer_mismatch(s: Solo) -> Message:
    payload = (b"tx:a",)
    prop = s.craft.proposal(1, payload, ts=1, proposer=2)
    return s.craft.sign(PrePrepare(0, prop, payload, 0))


def _pp_from_future(s: Solo) -> Message:
    return s.craft.pre_prepare(0, 1, (b"tx:a",), ts=NOW + s.config.max_clock_drift_ms + 1)


def _pp_height_zero(s: Solo) -> Message:
    payload = (b"tx:a",)
    prop = Proposal(s.config.chain_id, 0, 1, 0, s.craft.rules.payload_root(payload))
    return s.craft.sign(PrePrepare(0, prop, payload, 0))


def _prepare_from_primary(s: Solo) -> Message:
    return s.craft.prepare(0, 1, b"\x00" * 32, 0)


CASES: dict[str, tuple[Callable[[Solo], Message], str]] = {
    "sender outside the validator set": (
        lambda s: s.craft.sign(Prepare(0, 1, b"\x00" * 32, 4), as_=0),
        "unknown-sender",
    ),
    "negative sender": (
        lambda s: s.craft.sign(Prepare(0, 1, b"\x00" * 32, -1), as_=0),
        "unknown-sender",
    ),
    "our own index": (lambda s: s.craft.prepare(0, 1, b"\x00" * 32, ME), "unknown-sender"),
    "garbage signature": (_forged_sig, "bad-signature"),
    "signed with another validator's key": (_signed_by_other, "bad-signature"),
    "signed by a key outside the set": (_unknown_key, "bad-signature"),
    "signed for another chain": (_other_chain_signature, "bad-signature"),
    "proposal of another chain": (_other_chain_proposal, "wrong-chain"),
    "pre-prepare not from the primary": (_pp_not_from_primary, "pre-prepare-not-from-primary"),
    "payload root mismatch": (_pp_bad_root, "payload-root-mismatch"),
    "payload invalid": (_pp_invalid_payload, "payload-invalid"),
    "proposer is not the sender": (_pp_proposer_mismatch, "pre-prepare-proposer-mismatch"),
    "timestamp too far ahead": (_pp_from_future, "pre-prepare-timestamp-ahead"),
    "height 0": (_pp_height_zero, "malformed-proposal"),
    "prepare from the primary": (_prepare_from_primary, "prepare-from-primary"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_message_is_rejected_without_a_vote(case: str) -> None:
    """Each invalid input yields a Rejected action with its stable reason code, and
    no persist, no send, no broadcast; the replica's state does not move."""
    s = Solo(4, ME)
    make, reason = CASES[case]
    out = s.feed(make(s), now=NOW)
    assert reason in reasons(out), out
    no_vote(out)
    assert s.replica.view == 0 and s.replica.height == 0
    assert not s.replica.in_flight() or all(r["view"] == -1 for r in s.replica.in_flight())


def test_timestamp_at_the_drift_limit_is_accepted() -> None:
    """Control for the case above: a timestamp exactly max_clock_drift_ms ahead is fine."""
    s = Solo(4, ME)
    pp = s.craft.pre_prepare(0, 1, (b"tx:a",), ts=NOW + s.config.max_clock_drift_ms)
    out = s.feed(pp, now=NOW)
    assert not reasons(out) and len(of_type(out, Broadcast)) == 1


def test_rejected_pre_prepare_does_not_block_the_valid_one() -> None:
    """After a pre-prepare with a bad payload root at (0, 1), the genuine one is
    still accepted and voted on."""
    s = Solo(4, ME)
    s.feed(_pp_bad_root(s))
    out = s.feed(s.craft.pre_prepare(0, 1, (b"tx:a",)))
    assert [type(a) for a in out if isinstance(a, Broadcast)] == [Broadcast]


def test_conflicting_pre_prepares_yield_one_evidence_and_no_second_vote() -> None:
    """The primary signs two (then three) different pre-prepares for (h=1, v=0):
    the replica votes for the first only and reports Evidence exactly once, naming
    the primary and both messages."""
    s = Solo(4, ME)
    c = s.craft
    a, b, d = (c.pre_prepare(0, 1, (tx,)) for tx in (b"tx:a", b"tx:b", b"tx:d"))
    out = s.feed(a)
    assert len(of_type(out, Broadcast)) == 1
    out = s.feed(b)
    assert of_type(out, Evidence) == [Evidence(0, a.stripped(), b)]  # first kept stripped
    assert not of_type(out, Broadcast) and not of_type(out, Persist)
    out = s.feed(d, a, b)
    assert not of_type(out, Evidence), "evidence is reported once per (height, view, sender)"
    no_vote(out)


@pytest.mark.parametrize("kind", ["prepare", "commit"])
def test_conflicting_votes_yield_one_evidence(kind: str) -> None:
    """Validator 1 signs two different PREPAREs (or COMMITs) for (h=1, v=0): one
    Evidence action naming validator 1 with both messages; repeats add none."""
    s = Solo(4, ME)
    make = s.craft.prepare if kind == "prepare" else s.craft.commit
    x = make(0, 1, b"\x01" * 32, 1)
    y = make(0, 1, b"\x02" * 32, 1)
    z = make(0, 1, b"\x03" * 32, 1)
    assert not of_type(s.feed(x), Evidence)
    assert not of_type(s.feed(x), Evidence), "a duplicate is not equivocation"
    out = s.feed(y)
    assert of_type(out, Evidence) == [Evidence(1, x, y)]
    assert not of_type(s.feed(z, y), Evidence)


def test_votes_of_different_views_are_not_equivocation() -> None:
    """The same validator voting for different digests at one height in two views
    is legitimate (a view change happened): no Evidence."""
    s = Solo(4, ME)
    out = s.feed(
        s.craft.commit(0, 1, b"\x01" * 32, 1),
        s.craft.commit(1, 1, b"\x02" * 32, 1),
        s.craft.prepare(1, 1, b"\x01" * 32, 2),
        s.craft.prepare(2, 1, b"\x02" * 32, 2),
    )
    assert not of_type(out, Evidence)


def test_an_equivocators_second_commit_is_not_counted() -> None:
    """A validator's COMMIT that conflicts with its first one at (h, v) is not
    tallied, so one equivocator cannot lend its vote to two digests: 1 commits x
    then y, 2 commits y then x, 0 commits x; x holds {0, 1} and y holds {2}, and
    nothing reaches the quorum of 3."""
    s = Solo(4, ME)
    c = s.craft
    px = c.pre_prepare(0, 1, (b"tx:x",))
    py = c.pre_prepare(0, 1, (b"tx:y",))
    dx, dy = px.proposal.digest(), py.proposal.digest()
    s.feed(px)
    out = s.feed(c.commit(0, 1, dx, 1), c.commit(0, 1, dy, 1), c.commit(0, 1, dy, 2))
    out += s.feed(c.commit(0, 1, dx, 0), c.commit(0, 1, dx, 2))
    assert s.replica.height == 0
    assert [e.validator for e in of_type(out, Evidence) if isinstance(e, Evidence)] == [1, 2]
