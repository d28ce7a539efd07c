"""Inclusion proofs: offline evidence that a transaction was committed.

A proof (``GET /v1/proofs/{tx_hash}``, ``hygeia proof verify``) is one JSON
object::

    {"format": "hygeia-inclusion-proof/2",
     "tx": {...the full transaction...},
     "tx_hash": "<64 hex>",
     "index": i, "tree_size": n,
     "audit_path": ["<64 hex>", ...],          # RFC 6962 siblings, leaf to root
     "block_hash": "<64 hex>",
     "header": {...block header, docs/blocks.md...},
     "proposal": {"chain_id", "height", "timestamp", "proposer", "payload_root"},
     "certificate": [{"validator": k, "view": v, "sig": "<128 hex>"}, ...],
     "epochs": [<link>, ...]}                  # node/core/epoch_link.py

``verify_proof`` needs only the genesis chain id and validator public keys. It
checks, in order: the shape; the transaction (well-formed, of this chain, its
hash, its signature); the Merkle path from the hash to the header's
``tx_root``; the header against the proposal (chain id, height, timestamp,
proposer, tx root = payload root) and the block hash; the epoch links from
genesis (each validator set attested by a quorum of the one before,
``node.core.epoch_link.verify_links``); and the commit certificate
(``consensus.quorum.verify_commit_certificate``: a quorum of distinct COMMIT
signatures of the validators of the block's epoch, under that epoch's signing
domain, over the proposal's digest, one view, the header's view). The first
failure raises ``ProofError`` with the reason.

``epochs`` lists every validator change from genesis through the block's own
epoch (empty for a block of genesis's set). Format ``/1``, from before validator
changes, has no ``epochs`` field and is still accepted: its block is epoch 0's.

What a valid proof proves: the transaction was committed at that height with
that timestamp, certified by the listed validators of that epoch. The header's
``parent_hash`` and ``state_root`` are derived after commit and are *not*
covered by the commit certificate (checkpoints certify state roots): a proof
does not vouch for them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from consensus.config import ConsensusConfig
from consensus.epochs import EpochSchedule
from consensus.merkle import audit_path, root_from_path
from consensus.messages import Proposal
from consensus.quorum import CertificateError, verify_commit_certificate
from node.core.block import (
    Block,
    BlockError,
    BlockHeader,
    certificate_from_json,
    certificate_to_json,
)
from node.core.codec import INT64_MAX
from node.core.epoch_link import EpochLinkError, verify_links
from node.core.hexstr import HEX64
from node.core.keys import ValidatorVerifier
from node.core.outcome_proof import Outcome, OutcomeError, verify_outcome
from node.core.tx import TxError, tx_from_json_obj

__all__ = [
    "PROOF_FORMAT",
    "PROOF_FORMAT_V1",
    "ProofError",
    "ProofResult",
    "build_proof",
    "verify_proof",
]

PROOF_FORMAT: Final = "hygeia-inclusion-proof/3"
PROOF_FORMAT_V2: Final = "hygeia-inclusion-proof/2"  # before proofs of outcome: no outcome
PROOF_FORMAT_V1: Final = "hygeia-inclusion-proof/1"  # before validator changes: no epochs
PROOF_FIELDS_V1: Final = (
    "audit_path",
    "block_hash",
    "certificate",
    "format",
    "header",
    "index",
    "proposal",
    "tree_size",
    "tx",
    "tx_hash",
)
PROOF_FIELDS_V2: Final = tuple(sorted((*PROOF_FIELDS_V1, "epochs")))
PROOF_FIELDS: Final = tuple(sorted((*PROOF_FIELDS_V2, "outcome")))
_FIELDS_OF: Final = {
    PROOF_FORMAT: PROOF_FIELDS,
    PROOF_FORMAT_V2: PROOF_FIELDS_V2,
    PROOF_FORMAT_V1: PROOF_FIELDS_V1,
}
PROPOSAL_FIELDS: Final = ("chain_id", "height", "payload_root", "proposer", "timestamp")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ProofError(ValueError):
    """A proof that does not prove what it claims; the message says why."""


@dataclass(frozen=True, slots=True)
class ProofResult:
    """What a verified proof establishes."""

    tx_hash: str
    tx_type: str
    signer: str
    chain_id: str
    height: int
    timestamp: int  # ms since the Unix epoch, the proposer's clock
    block_hash: str
    index: int
    view: int
    validators: tuple[int, ...]
    epoch: int = 0  # the validator set that certified the block (0: genesis's)
    # the certified result (node/core/outcome_proof.py); None: the proof has none
    # (format /1 or /2, or no stable checkpoint above the block yet)
    outcome: Outcome | None = None

    @property
    def time_iso(self) -> str:
        t = _EPOCH + timedelta(milliseconds=self.timestamp)
        return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def statement(self) -> str:
        names = ", ".join(str(v) for v in self.validators)
        of_epoch = f" of epoch {self.epoch}" if self.epoch else ""
        verdict = f": {self.outcome.statement()}" if self.outcome is not None else ""
        return (
            f"transaction {self.tx_hash} was committed at height {self.height} "
            f"at time {self.timestamp} ({self.time_iso}) by validators [{names}]{of_epoch}"
            f"{verdict}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tx_hash": self.tx_hash,
            "tx_type": self.tx_type,
            "signer": self.signer,
            "chain_id": self.chain_id,
            "height": self.height,
            "timestamp": self.timestamp,
            "time": self.time_iso,
            "block_hash": self.block_hash,
            "index": self.index,
            "view": self.view,
            "validators": list(self.validators),
            "epoch": self.epoch,
            "outcome": self.outcome.to_json() if self.outcome is not None else None,
            "statement": self.statement(),
        }


def _proposal_json(p: Proposal) -> dict[str, Any]:
    return {
        "chain_id": p.chain_id,
        "height": p.height,
        "timestamp": p.timestamp,
        "proposer": p.proposer,
        "payload_root": p.payload_root.hex(),
    }


def build_proof(
    block: Block,
    index: int,
    epochs: Sequence[dict[str, Any]] = (),
    outcome: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The inclusion proof of ``block``'s transaction at ``index``; ``epochs``: the
    links (``node.core.epoch_link.link_json``) of every epoch from 1 through the
    block's own, none for a block of genesis's set; ``outcome``: its proof of
    outcome (``node.core.outcome_proof.outcome_json``), None while uncertified."""
    if not 0 <= index < len(block.txs):
        raise IndexError(f"block {block.height} has {len(block.txs)} txs, no index {index}")
    return {
        "format": PROOF_FORMAT,
        "tx": json.loads(block.txs[index]),
        "tx_hash": block.tx_hashes[index].hex(),
        "index": index,
        "tree_size": len(block.tx_hashes),
        "audit_path": [h.hex() for h in audit_path(block.tx_hashes, index)],
        "block_hash": block.hash,
        "header": block.header.to_json(),
        "proposal": _proposal_json(block.proposal),
        "certificate": certificate_to_json(block.certificate),
        "epochs": list(epochs),
        "outcome": outcome,
    }


# ------------------------------------------------------------------ verification
def _int(value: Any, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= INT64_MAX:
        raise ProofError(f"malformed proof: {what} must be an integer >= {low}, got {value!r}")
    return value


def _hex32(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not HEX64.fullmatch(value):
        raise ProofError(f"malformed proof: {what} must be 64 lower-case hex digits")
    return bytes.fromhex(value)


def _pubkeys(keys: Sequence[bytes | str]) -> list[bytes]:
    out: list[bytes] = []
    for i, k in enumerate(keys):
        raw = bytes.fromhex(k) if isinstance(k, str) else bytes(k)
        if len(raw) != 32:
            raise ValueError(f"validator {i}: public key must be 32 bytes")
        out.append(raw)
    if not out:
        raise ValueError("no validator public keys")
    return out


def verify_proof(
    proof: Any, genesis_chain_id: str, validator_pubkeys: Sequence[bytes | str]
) -> ProofResult:
    """Check an inclusion proof against the genesis validator set (keys as bytes or hex,
    index = position in genesis). Returns what it proves or raises ``ProofError``."""
    keys = _pubkeys(validator_pubkeys)

    # shape
    if not isinstance(proof, dict):
        raise ProofError("malformed proof: not a JSON object")
    fmt = proof.get("format")
    if fmt not in _FIELDS_OF:
        raise ProofError(f"unsupported proof format {fmt!r}, expected {PROOF_FORMAT}")
    fields = _FIELDS_OF[fmt]
    for k in fields:
        if k not in proof:
            raise ProofError(f"malformed proof: field {k!r} is missing")
    extra = sorted(k for k in proof if k not in fields)
    if extra:
        raise ProofError(f"malformed proof: unknown field {extra[0]!r}")
    index = _int(proof["index"], "index")
    size = _int(proof["tree_size"], "tree_size", 1)
    if not isinstance(proof["audit_path"], list):
        raise ProofError("malformed proof: audit_path must be a list")
    path = [_hex32(h, f"audit_path[{i}]") for i, h in enumerate(proof["audit_path"])]
    claimed_hash = _hex32(proof["tx_hash"], "tx_hash")
    claimed_block = _hex32(proof["block_hash"], "block_hash").hex()
    try:
        header = BlockHeader.from_json(proof["header"])
    except (BlockError, TypeError) as e:
        raise ProofError(f"malformed proof: {e}") from None
    pj = proof["proposal"]
    if not isinstance(pj, dict) or sorted(pj) != list(PROPOSAL_FIELDS):
        raise ProofError(
            f"malformed proof: proposal must have exactly {', '.join(PROPOSAL_FIELDS)}"
        )
    if not isinstance(pj["chain_id"], str):
        raise ProofError("malformed proof: proposal.chain_id must be a string")
    proposal = Proposal(
        chain_id=pj["chain_id"],
        height=_int(pj["height"], "proposal.height", 1),
        timestamp=_int(pj["timestamp"], "proposal.timestamp"),
        proposer=_int(pj["proposer"], "proposal.proposer"),
        payload_root=_hex32(pj["payload_root"], "proposal.payload_root"),
    )

    # the transaction
    try:
        tx = tx_from_json_obj(proof["tx"])
    except TxError as e:
        raise ProofError(f"transaction is malformed: {e}") from None
    if tx.chain_id != genesis_chain_id:
        raise ProofError(f"transaction is for chain {tx.chain_id!r}, not {genesis_chain_id!r}")
    if tx.hash_bytes != claimed_hash:
        raise ProofError(f"tx_hash {claimed_hash.hex()} is not the transaction's hash {tx.hash}")
    if not tx.verify_signature():
        raise ProofError(f"transaction {tx.hash}: signature does not verify")

    # Merkle path to the header's tx root
    try:
        root = root_from_path(tx.hash_bytes, index, size, path)
    except ValueError as e:
        raise ProofError(f"Merkle audit path is invalid: {e}") from None
    if root.hex() != header.tx_root:
        raise ProofError(
            f"Merkle audit path leads to root {root.hex()}, "
            f"not the header's tx_root {header.tx_root}"
        )

    # header against proposal and genesis
    if header.chain_id != genesis_chain_id:
        raise ProofError(f"header is for chain {header.chain_id!r}, not {genesis_chain_id!r}")
    for name, ours, theirs in (
        ("chain_id", header.chain_id, proposal.chain_id),
        ("height", header.height, proposal.height),
        ("timestamp", header.timestamp, proposal.timestamp),
        ("proposer", header.proposer, proposal.proposer),
        ("tx_root", header.tx_root, proposal.payload_root.hex()),
    ):
        if ours != theirs:
            raise ProofError(f"header.{name} {ours!r} does not match the proposal's {theirs!r}")
    if header.hash() != claimed_block:
        raise ProofError(f"block_hash {claimed_block} is not the header's hash {header.hash()}")

    # the validator set of the block's epoch, from genesis through the links
    try:
        epochs = verify_links(genesis_chain_id, keys, proof.get("epochs", []))
    except EpochLinkError as e:
        raise ProofError(f"epoch link: {e}") from None
    # the last epoch whose first height is at or below the block's (a proof that leaves
    # out a later change cannot pass: the earlier set's honest validators never vote
    # past their epoch, so no quorum of theirs signs)
    epoch = EpochSchedule(epochs).at(header.height)

    # commit certificate
    try:
        certificate = certificate_from_json(proof["certificate"], proposal)
    except BlockError as e:
        raise ProofError(f"malformed proof: {e}") from None
    config = ConsensusConfig(chain_id=genesis_chain_id, n=epoch.n, epoch=epoch.number)
    try:
        verify_commit_certificate(
            config, ValidatorVerifier(list(epoch.validators)), proposal, certificate
        )
    except CertificateError as e:
        hint = ""
        if "bad signature" in str(e):
            hint = (
                " (forged, or signed over another proposal: the proposal's chain id, height,"
                " timestamp, proposer or payload root differ from what the validators signed)"
            )
        raise ProofError(f"{e}{hint}") from None
    if certificate[0].view != header.view:
        raise ProofError(
            f"header.view {header.view} is not the certificate's view {certificate[0].view}"
        )

    outcome = None
    if proof.get("outcome") is not None:
        try:
            outcome = verify_outcome(
                proof["outcome"],
                chain_id=genesis_chain_id,
                tx_hash=tx.hash,
                height=header.height,
                index=index,
                tree_size=size,
                header_state_root=header.state_root,
                epoch=epoch,
            )
        except OutcomeError as e:
            raise ProofError(f"outcome: {e}") from None

    return ProofResult(
        tx_hash=tx.hash,
        tx_type=tx.type,
        signer=tx.signer,
        chain_id=header.chain_id,
        height=header.height,
        timestamp=header.timestamp,
        block_hash=claimed_block,
        index=index,
        view=header.view,
        validators=tuple(sorted(c.sender for c in certificate)),
        epoch=epoch.number,
        outcome=outcome,
    )
