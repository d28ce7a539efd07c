"""Proofs of outcome: offline evidence of what a committed transaction's result was.

An inclusion proof (``node/core/proof.py``) shows that a transaction is in a
certified block; it does not show whether the ledger accepted it. Its
``outcome`` part does, against a stable checkpoint a quorum signed::

    "outcome": {
      "result": {"status", "code", "message", "data", "height", "index"},
      "results_size": n, "results_path": ["<64 hex>", ...],
      "prev_state_root": "<64 hex>",                  # root(h-1)
      "blocks": [{"writes_digest", "content_digest", "results_root"}, ...],
      "checkpoint": {"height": c, "signatures": [{"validator": i, "sig": "<128 hex>"}]}
    }

or ``null`` while no stable checkpoint at or above the block is known to the
node that made the proof (ask again after the next checkpoint).

How it is checked (``verify_outcome``), with h the block's height:

1. the result is the transaction's: its ``height`` and ``index`` are the
   inclusion proof's, and its leaf (``node/core/state_root.py``: the transaction
   hash and the result's canonical JSON) leads by ``results_path`` (RFC 6962) to
   ``blocks[0].results_root`` in a tree of the block's size;
2. the state roots from root(h-1) through root(c), c = h + len(blocks) - 1,
   follow by ``chain_state_root`` (``node/core/state_root.py``); root(h) must be
   the header's ``state_root``;
3. a quorum of the validators of c's epoch signed CHECKPOINT(c, root(c))
   under that epoch's signing domain (``consensus.quorum.verify_checkpoint_proof``).

Why it holds: an honest validator signs a checkpoint only over the root it
computed by executing every block up to c itself; a quorum holds at least one
honest validator, and SHA-256 chains bind root(c) to the results root of h,
which binds the leaf. Epoch boundaries come right after checkpoints
(``consensus/epochs.py``), so h and the first checkpoint at or above it share
the epoch the inclusion proof already established.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from consensus.config import ConsensusConfig
from consensus.epochs import Epoch
from consensus.merkle import audit_path, root_from_path
from consensus.messages import Checkpoint
from consensus.quorum import CertificateError, verify_checkpoint_proof
from node.core.codec import INT64_MAX, CodecError, canonical_json
from node.core.hexstr import HEX64
from node.core.keys import ValidatorVerifier
from node.core.state_root import BlockDigests, chain_state_root, result_leaf

__all__ = [
    "MAX_CHAIN_BLOCKS",
    "Outcome",
    "OutcomeError",
    "outcome_json",
    "verify_outcome",
]

# a checkpoint is at most a checkpoint interval above the block; genesis bounds the
# interval far below this, which only stops a hostile proof from making a verifier spin
MAX_CHAIN_BLOCKS: Final = 1_000_000
RESULT_FIELDS: Final = ("code", "data", "height", "index", "message", "status")
OUTCOME_FIELDS: Final = (
    "blocks",
    "checkpoint",
    "prev_state_root",
    "result",
    "results_path",
    "results_size",
)
BLOCK_FIELDS: Final = ("content_digest", "results_root", "writes_digest")


class OutcomeError(ValueError):
    """An outcome that does not prove what it claims; the message says why."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A verified transaction result."""

    status: str  # "ok" | "rejected"
    code: str
    message: str
    data: dict[str, Any]
    checkpoint: int  # the certified height it was checked against

    @property
    def accepted(self) -> bool:
        return self.status == "ok"

    def statement(self) -> str:
        if self.accepted:
            return "committed and ACCEPTED"
        return f"committed but REJECTED: {self.code}"

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "data": self.data,
            "checkpoint": self.checkpoint,
            "statement": self.statement(),
        }


# ------------------------------------------------------------------ building
def outcome_json(
    *,
    tx_hash: str,
    records: Sequence[tuple[str, dict[str, Any]]],
    index: int,
    prev_state_root: bytes,
    blocks: Sequence[BlockDigests],
    checkpoint_height: int,
    signatures: Sequence[tuple[int, bytes]],
) -> dict[str, Any]:
    """The ``outcome`` part of a proof: ``records`` are (tx hash, result record) of
    every transaction of the block in order, ``blocks`` the digests of the block
    through the checkpoint, ``signatures`` the checkpoint's (validator, sig)."""
    leaves = [result_leaf(h, canonical_json(record)) for h, record in records]
    if records[index][0] != tx_hash:
        raise ValueError(f"transaction {index} of the block is not {tx_hash}")
    return {
        "result": dict(records[index][1]),
        "results_size": len(leaves),
        "results_path": [p.hex() for p in audit_path(leaves, index)],
        "prev_state_root": prev_state_root.hex(),
        "blocks": [b.to_json() for b in blocks],
        "checkpoint": {
            "height": checkpoint_height,
            "signatures": [{"validator": v, "sig": s.hex()} for v, s in signatures],
        },
    }


# ------------------------------------------------------------------ checking
def _obj(value: Any, fields: Sequence[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or sorted(value) != list(fields):
        raise OutcomeError(f"malformed outcome: {what} must have exactly {', '.join(fields)}")
    return value


def _int(value: Any, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= INT64_MAX:
        raise OutcomeError(f"malformed outcome: {what} must be an integer >= {low}")
    return value


def _hex32(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not HEX64.fullmatch(value):
        raise OutcomeError(f"malformed outcome: {what} must be 64 lower-case hex digits")
    return bytes.fromhex(value)


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise OutcomeError(f"malformed outcome: {what} must be a string")
    return value


def _signatures(value: Any, c: int, root: bytes) -> list[Checkpoint]:
    if not isinstance(value, list):
        raise OutcomeError("malformed outcome: checkpoint.signatures must be a list")
    out: list[Checkpoint] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or sorted(item) != ["sig", "validator"]:
            raise OutcomeError(f"malformed outcome: signature {i} must have validator, sig")
        sig = item["sig"]
        if not isinstance(sig, str) or not (
            len(sig) == 128 and HEX64.fullmatch(sig[:64]) and HEX64.fullmatch(sig[64:])
        ):
            raise OutcomeError(f"malformed outcome: signature {i} must be 128 hex digits")
        raw = bytes.fromhex(sig)
        out.append(Checkpoint(c, root, _int(item["validator"], f"signature {i} validator"), raw))
    return out


def verify_outcome(
    outcome: Any,
    *,
    chain_id: str,
    tx_hash: str,
    height: int,
    index: int,
    tree_size: int,
    header_state_root: str,
    epoch: Epoch,
) -> Outcome:
    """Check a proof's ``outcome`` for the transaction ``tx_hash`` at (``height``,
    ``index``) of a block of ``tree_size`` transactions whose header names
    ``header_state_root``; ``epoch``: the validator set of the block (established
    by the inclusion proof). Returns the result or raises ``OutcomeError``."""
    o = _obj(outcome, OUTCOME_FIELDS, "outcome")
    result = _obj(o["result"], RESULT_FIELDS, "outcome.result")
    status = _str(result["status"], "result.status")
    if status not in ("ok", "rejected"):
        raise OutcomeError(f"malformed outcome: result.status {status!r}")
    code, message = _str(result["code"], "result.code"), _str(result["message"], "message")
    if not isinstance(result["data"], dict):
        raise OutcomeError("malformed outcome: result.data must be an object")
    if (
        _int(result["height"], "result.height") != height
        or _int(result["index"], "result.index") != index
    ):
        raise OutcomeError("the result is of another height or index than the transaction")
    if _int(o["results_size"], "results_size", 1) != tree_size:
        raise OutcomeError(
            f"results tree of {o['results_size']} leaves for a block of {tree_size} transactions"
        )
    if not isinstance(o["results_path"], list):
        raise OutcomeError("malformed outcome: results_path must be a list")
    path = [_hex32(p, f"results_path[{i}]") for i, p in enumerate(o["results_path"])]
    blocks_json = o["blocks"]
    if not isinstance(blocks_json, list) or not 1 <= len(blocks_json) <= MAX_CHAIN_BLOCKS:
        raise OutcomeError("malformed outcome: blocks must list the block through the checkpoint")
    blocks: list[BlockDigests] = []
    for i, item in enumerate(blocks_json):
        b = _obj(item, BLOCK_FIELDS, f"blocks[{i}]")
        blocks.append(
            BlockDigests(
                _hex32(b["writes_digest"], f"blocks[{i}].writes_digest"),
                _hex32(b["content_digest"], f"blocks[{i}].content_digest"),
                _hex32(b["results_root"], f"blocks[{i}].results_root"),
            )
        )
    checkpoint = _obj(o["checkpoint"], ("height", "signatures"), "outcome.checkpoint")
    c = _int(checkpoint["height"], "checkpoint.height", 1)
    if c != height + len(blocks) - 1:
        raise OutcomeError(f"blocks {height}..{height + len(blocks) - 1} do not end at {c}")

    # 1. the result's leaf in the block's results root
    try:
        leaf = result_leaf(tx_hash, canonical_json(result))
    except CodecError as exc:
        raise OutcomeError(f"malformed outcome: result: {exc}") from None
    try:
        results_root = root_from_path(leaf, index, tree_size, path)
    except ValueError as exc:
        raise OutcomeError(f"results path is invalid: {exc}") from None
    if results_root != blocks[0].results:
        raise OutcomeError("the result is not in the block's results root")

    # 2. the state roots from h-1 to c
    root = chain_state_root(_hex32(o["prev_state_root"], "prev_state_root"), height, blocks[0])
    if root.hex() != header_state_root:
        raise OutcomeError(f"state root of block {height} is not the header's")
    for i, digests in enumerate(blocks[1:], start=1):
        root = chain_state_root(root, height + i, digests)

    # 3. a quorum of the epoch signed CHECKPOINT(c, root(c))
    config = ConsensusConfig(chain_id=chain_id, n=epoch.n, epoch=epoch.number)
    proof = _signatures(checkpoint["signatures"], c, root)
    try:
        verify_checkpoint_proof(config, ValidatorVerifier(list(epoch.validators)), c, root, proof)
    except CertificateError as exc:
        raise OutcomeError(str(exc)) from None
    return Outcome(status, code, message, dict(result["data"]), c)
