"""Quorum arithmetic and the certificate checks of consensus.quorum."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from consensus.config import ConsensusConfig
from consensus.messages import Checkpoint, Commit, PreparedCert, Proposal
from consensus.quorum import (
    CertificateError,
    verify_checkpoint_proof,
    verify_commit_certificate,
    verify_prepared_cert,
)
from node.sim.crypto import KeyedHashScheme, SimPayloadRules
from tests.unit.cluster import Craft, make_config

N = 4
CFG = make_config(N)
SCHEME = KeyedHashScheme(N, 7)
VERIFIER = SCHEME.verifier()
RULES = SimPayloadRules()
CRAFT = Craft(CFG, SCHEME)
PROPOSAL = CRAFT.proposal(5, (b"tx:a",), ts=100, proposer=0)
DIGEST = PROPOSAL.digest()


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@pytest.mark.parametrize("n", range(1, 32))
def test_f_and_quorum_sizes(n: int) -> None:
    """f = floor((n-1)/3); quorum = ceil((n+f+1)/2), = 2f+1 when n = 3f+1;
    weak quorum = f+1; a quorum never needs more than the n-f correct replicas."""
    cfg = ConsensusConfig(chain_id="q", n=n)
    f = (n - 1) // 3
    assert cfg.f == f
    assert 3 * f + 1 <= n < 3 * f + 4
    assert cfg.quorum == ceil_div(n + f + 1, 2)
    if n == 3 * f + 1:
        assert cfg.quorum == 2 * f + 1
    assert cfg.weak_quorum == f + 1
    assert cfg.quorum <= n - f, "liveness: the correct replicas alone form a quorum"


@pytest.mark.parametrize("n", range(1, 32))
def test_two_quorums_intersect_in_f_plus_one(n: int) -> None:
    """Any two quorums share at least f+1 replicas (one of them honest)."""
    cfg = ConsensusConfig(chain_id="q", n=n)
    assert 2 * cfg.quorum - n >= cfg.f + 1


def test_primary_rotates() -> None:
    """The primary of view v is v mod n."""
    assert [CFG.primary(v) for v in range(9)] == [0, 1, 2, 3, 0, 1, 2, 3, 0]


# ---------------------------------------------------------- commit certificate
def commits(senders: list[int], view: int = 2) -> list[Commit]:
    return [CRAFT.commit(view, PROPOSAL.height, DIGEST, s) for s in senders]


def test_commit_certificate_valid() -> None:
    """A quorum of correctly signed matching commits from distinct validators passes,
    and so does a certificate with more than a quorum."""
    verify_commit_certificate(CFG, VERIFIER, PROPOSAL, commits([0, 1, 2]))
    verify_commit_certificate(CFG, VERIFIER, PROPOSAL, commits([3, 1, 2, 0]))


def _bad_sig(c: Commit) -> Commit:
    return msgspec.structs.replace(c, sig=bytes(16))


BAD_COMMIT_CERTS: dict[str, Callable[[], list[Commit]]] = {
    "too few signatures": lambda: commits([0, 1]),
    "empty": lambda: [],
    "duplicate signer": lambda: commits([0, 1, 1]),
    "non-validator signer": lambda: [
        *commits([0, 1]),
        msgspec.structs.replace(commits([2])[0], sender=N),
    ],
    "negative signer": lambda: [
        *commits([0, 1]),
        msgspec.structs.replace(commits([2])[0], sender=-1),
    ],
    "wrong digest": lambda: [
        *commits([0, 1]),
        CRAFT.commit(2, PROPOSAL.height, b"\x00" * 32, 2),
    ],
    "wrong height": lambda: [*commits([0, 1]), CRAFT.commit(2, PROPOSAL.height + 1, DIGEST, 2)],
    "mixed views": lambda: [*commits([0, 1]), *commits([2], view=3)],
    "bad signature": lambda: [*commits([0, 1]), _bad_sig(commits([2])[0])],
    "signed by another validator": lambda: [
        *commits([0, 1]),
        msgspec.structs.replace(commits([3])[0], sender=2),
    ],
    "signed for another chain": lambda: [
        *commits([0, 1]),
        Craft(ConsensusConfig(chain_id="other", n=N), SCHEME).commit(2, PROPOSAL.height, DIGEST, 2),
    ],
}


@pytest.mark.parametrize("case", sorted(BAD_COMMIT_CERTS))
def test_commit_certificate_rejects(case: str) -> None:
    """verify_commit_certificate raises CertificateError for each defect."""
    with pytest.raises(CertificateError):
        verify_commit_certificate(CFG, VERIFIER, PROPOSAL, BAD_COMMIT_CERTS[case]())


def test_commit_certificate_for_another_proposal() -> None:
    """A valid certificate of one proposal does not certify a different proposal
    at the same height."""
    other = Proposal(CFG.chain_id, PROPOSAL.height, 101, 0, PROPOSAL.payload_root)
    with pytest.raises(CertificateError):
        verify_commit_certificate(CFG, VERIFIER, other, commits([0, 1, 2]))


# -------------------------------------------------------- prepared certificate
def good_prepared(view: int = 1) -> PreparedCert:
    pp = CRAFT.pre_prepare(view, 5, (b"tx:a",), ts=100)  # primary of view 1 is 1
    return CRAFT.prepared_cert(pp, [0, 2])


def test_prepared_cert_valid() -> None:
    """A primary's pre-prepare with quorum-1 matching prepares from distinct backups passes."""
    verify_prepared_cert(CFG, VERIFIER, RULES, good_prepared())


def _replace_prepares(cert: PreparedCert, **changes: object) -> PreparedCert:
    p = cert.prepares[1]
    bad = CRAFT.sign(msgspec.structs.replace(p, **changes))
    return PreparedCert(cert.pre_prepare, (cert.prepares[0], bad))


BAD_PREPARED: dict[str, Callable[[], PreparedCert]] = {
    "too few prepares": lambda: PreparedCert(
        good_prepared().pre_prepare, good_prepared().prepares[:1]
    ),
    "duplicate prepare": lambda: PreparedCert(
        good_prepared().pre_prepare, (good_prepared().prepares[0],) * 2
    ),
    "prepare from the primary": lambda: _replace_prepares(good_prepared(), sender=1),
    "prepare of another view": lambda: _replace_prepares(good_prepared(), view=2),
    "prepare of another height": lambda: _replace_prepares(good_prepared(), height=6),
    "prepare of another digest": lambda: _replace_prepares(good_prepared(), digest=b"\x01" * 32),
    "pre-prepare not from the primary": lambda: CRAFT.prepared_cert(
        CRAFT.pre_prepare(1, 5, (b"tx:a",), sender=2), [0, 3]
    ),
    "bad pre-prepare signature": lambda: PreparedCert(
        msgspec.structs.replace(good_prepared().pre_prepare, sig=bytes(16)),
        good_prepared().prepares,
    ),
    "bad prepare signature": lambda: PreparedCert(
        good_prepared().pre_prepare,
        (
            good_prepared().prepares[0],
            msgspec.structs.replace(good_prepared().prepares[1], sig=b""),
        ),
    ),
    "payload does not match its root": lambda: CRAFT.prepared_cert(
        CRAFT.sign(msgspec.structs.replace(good_prepared().pre_prepare, payload=(b"tx:other",))),
        [0, 2],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PREPARED))
def test_prepared_cert_rejects(case: str) -> None:
    """verify_prepared_cert raises CertificateError for each defect."""
    with pytest.raises(CertificateError):
        verify_prepared_cert(CFG, VERIFIER, RULES, BAD_PREPARED[case]())


# ------------------------------------------------------------ checkpoint proof
ROOT_A = b"\xaa" * 32


def cps(senders: list[int], height: int = 16, root: bytes = ROOT_A) -> list[Checkpoint]:
    return [CRAFT.checkpoint(height, root, s) for s in senders]


def test_checkpoint_proof_valid() -> None:
    """A quorum of matching, signed checkpoints from distinct validators passes."""
    verify_checkpoint_proof(CFG, VERIFIER, 16, ROOT_A, cps([0, 2, 3]))


BAD_PROOFS: dict[str, Callable[[], list[Checkpoint]]] = {
    "too few": lambda: cps([0, 1]),
    "duplicate signer": lambda: cps([0, 1, 0]),
    "non-validator signer": lambda: [*cps([0, 1]), msgspec.structs.replace(cps([2])[0], sender=9)],
    "wrong root": lambda: [*cps([0, 1]), *cps([2], root=b"\xbb" * 32)],
    "wrong height": lambda: [*cps([0, 1]), *cps([2], height=32)],
    "bad signature": lambda: [*cps([0, 1]), msgspec.structs.replace(cps([2])[0], sig=bytes(16))],
}


@pytest.mark.parametrize("case", sorted(BAD_PROOFS))
def test_checkpoint_proof_rejects(case: str) -> None:
    """verify_checkpoint_proof raises CertificateError for each defect."""
    with pytest.raises(CertificateError):
        verify_checkpoint_proof(CFG, VERIFIER, 16, ROOT_A, BAD_PROOFS[case]())
