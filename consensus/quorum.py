"""Checks of quorum certificates: anyone holding the validator set can run them.

- a *commit certificate* proves a proposal committed: a quorum of COMMITs from
  distinct validators, one view, the proposal's digest, valid signatures;
- a *prepared certificate* proves a proposal prepared in a view: the primary's
  PRE-PREPARE and quorum-1 matching PREPAREs from distinct backups;
- a *checkpoint proof* proves a stable checkpoint: a quorum of matching
  CHECKPOINTs from distinct validators.

Each raises ``CertificateError`` saying what is wrong, or returns None.
"""

from __future__ import annotations

from collections.abc import Sequence

from consensus.config import ConsensusConfig
from consensus.crypto import PayloadRules, Verifier
from consensus.messages import Checkpoint, Commit, PreparedCert, Proposal


class CertificateError(ValueError):
    """A certificate or proof that does not prove what it claims."""


def _distinct(senders: Sequence[int], n: int, what: str) -> None:
    if len(set(senders)) != len(senders):
        raise CertificateError(f"{what}: the same validator signed twice")
    for s in senders:
        if not 0 <= s < n:
            raise CertificateError(f"{what}: signer {s} is not a validator")


def verify_commit_certificate(
    config: ConsensusConfig,
    verifier: Verifier,
    proposal: Proposal,
    certificate: Sequence[Commit],
) -> None:
    what = f"commit certificate at height {proposal.height}"
    if len(certificate) < config.quorum:
        raise CertificateError(f"{what}: {len(certificate)} signatures, {config.quorum} needed")
    _distinct([c.sender for c in certificate], config.n, what)
    digest = proposal.digest()
    view = certificate[0].view
    for c in certificate:
        if c.height != proposal.height or c.digest != digest or c.view != view:
            raise CertificateError(f"{what}: a commit of validator {c.sender} is for another block")
        if not verifier.verify(c.sender, c.signing_bytes(config.signing_domain), c.sig):
            raise CertificateError(f"{what}: bad signature of validator {c.sender}")


def verify_prepared_cert(
    config: ConsensusConfig, verifier: Verifier, rules: PayloadRules, cert: PreparedCert
) -> None:
    pp = cert.pre_prepare
    what = f"prepared certificate at height {pp.height} view {pp.view}"
    if pp.sender != config.primary(pp.view):
        raise CertificateError(f"{what}: pre-prepare not from the view's primary")
    if pp.proposal.chain_id != config.chain_id:
        raise CertificateError(f"{what}: proposal of another chain")
    if not verifier.verify(pp.sender, pp.signing_bytes(config.signing_domain), pp.sig):
        raise CertificateError(f"{what}: bad pre-prepare signature")
    # a stripped pre-prepare (payload ()) proves the digest; a full one must match it
    if pp.payload and rules.payload_root(pp.payload) != pp.proposal.payload_root:
        raise CertificateError(f"{what}: payload does not match its root")
    need = config.quorum - 1
    if len(cert.prepares) < need:
        raise CertificateError(f"{what}: {len(cert.prepares)} prepares, {need} needed")
    _distinct([p.sender for p in cert.prepares], config.n, what)
    digest = pp.proposal.digest()
    for p in cert.prepares:
        if p.sender == pp.sender:
            raise CertificateError(f"{what}: the primary cannot prepare")
        if p.view != pp.view or p.height != pp.height or p.digest != digest:
            raise CertificateError(f"{what}: a prepare of validator {p.sender} does not match")
        if not verifier.verify(p.sender, p.signing_bytes(config.signing_domain), p.sig):
            raise CertificateError(f"{what}: bad prepare signature of validator {p.sender}")


def verify_checkpoint_proof(
    config: ConsensusConfig,
    verifier: Verifier,
    height: int,
    state_root: bytes,
    proof: Sequence[Checkpoint],
) -> None:
    what = f"checkpoint proof at height {height}"
    if len(proof) < config.quorum:
        raise CertificateError(f"{what}: {len(proof)} checkpoints, {config.quorum} needed")
    _distinct([c.sender for c in proof], config.n, what)
    for c in proof:
        if c.height != height or c.state_root != state_root:
            raise CertificateError(f"{what}: checkpoint of validator {c.sender} does not match")
        if not verifier.verify(c.sender, c.signing_bytes(config.signing_domain), c.sig):
            raise CertificateError(f"{what}: bad signature of validator {c.sender}")
