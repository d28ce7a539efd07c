"""``epoch.attest``: the validators of one epoch sign the next, on chain.

What it is for: an inclusion proof made after a validator change must convince a
verifier that holds only ``genesis.json`` (``node/core/epoch_link.py``). Each
validator of epoch e-1 signs epoch e's statement (``attestation_bytes``: chain id,
number, first height, node keys) with its node key and commits the signature
here; ``GET /v1/proofs`` copies a quorum of them into the proof. Nodes submit
their own attestation as soon as they execute the change
(``node/engine/epoch_attester.py``); nobody else can.

Transaction type
----------------
``epoch.attest``, signed by a *node key* (not a member key): a validator of epoch
``epoch - 1``. Body: ``{"epoch": e >= 1, "signature": <128 lower-case hex>}``.
Rejections:

* ``unknown-epoch``: the state holds no epoch e (not committed yet, or e = 0);
* ``not-a-validator``: the signer is not a node key of epoch e-1 (admission
  refuses it too: ``signer-not-allowed``);
* ``already-attested``: this validator's attestation of e is on chain already;
* ``bad-signature``: the signature does not verify over epoch e's statement.

State: ``epochattest/<e, 10 digits>/<index, 4 digits>`` -> ``{"validator": index in
epoch e-1, "node_key", "signature", "height"}`` (canonical JSON, integers only),
read in key order, so index order. ``epochattest/`` is not under ``epoch/``.
"""

from __future__ import annotations

from typing import Any, Final, TypedDict, cast

from node.core.epoch_link import attestation_bytes, link_json, quorum_of
from node.core.hexstr import HEX128
from node.core.keys import verify
from node.ledger.context import ExecContext
from node.ledger.domain import Domain
from node.ledger.registry import TxType
from node.ledger.result import Rejection
from node.ledger.schema import Int, Obj, Str
from node.ledger.state import BlockState
from node.ledger.validators import EpochRecord, epoch_at, epoch_key, load_epochs

__all__ = [
    "ATTEST_PREFIX",
    "DOMAIN",
    "EPOCH_ATTEST",
    "Attestation",
    "NotAttested",
    "attestation_key",
    "attestations_of",
    "links_through",
    "statement_of",
]

ATTEST_PREFIX: Final = b"epochattest/"


class Attestation(TypedDict):
    """One stored attestation (``epochattest/<epoch>/<index>``)."""

    validator: int
    node_key: str
    signature: str
    height: int


def epoch_prefix(epoch: int) -> bytes:
    return ATTEST_PREFIX + f"{epoch:010d}/".encode()


def attestation_key(epoch: int, index: int) -> bytes:
    return epoch_prefix(epoch) + f"{index:04d}".encode()


def attestations_of(state: BlockState, epoch: int) -> list[Attestation]:
    """The attestations of ``epoch`` on chain, in validator index order."""
    return [cast(Attestation, v) for _, v in state.iter_prefix(epoch_prefix(epoch))]


def statement_of(chain_id: str, record: EpochRecord) -> bytes:
    """What epoch ``record.epoch - 1``'s validators sign for ``record``."""
    return attestation_bytes(
        chain_id, record.epoch, record.from_height, [v.node_key for v in record.validators]
    )


class NotAttested(LookupError):
    """A link a proof needs lacks a quorum of attestations on chain (yet)."""

    def __init__(self, epoch: int, have: int, need: int) -> None:
        super().__init__(
            f"epoch {epoch} has {have} attestations on chain, a quorum is {need}: "
            "the validators submit theirs as they execute the change; retry shortly"
        )
        self.epoch, self.have, self.need = epoch, have, need


def links_through(state: BlockState, height: int) -> list[dict[str, Any]]:
    """The links (``node.core.epoch_link``) of every epoch from 1 through the one that
    certifies ``height``, each with the first quorum of attestations in index order;
    ``NotAttested`` if one has fewer on chain."""
    records = load_epochs(state)
    if not records:
        return []
    last = epoch_at(records, height).epoch
    links: list[dict[str, Any]] = []
    for record in records[1 : last + 1]:
        need = quorum_of(len(records[record.epoch - 1].validators))
        found = attestations_of(state, record.epoch)
        if len(found) < need:
            raise NotAttested(record.epoch, len(found), need)
        links.append(
            link_json(
                record.epoch,
                record.from_height,
                [v.node_key for v in record.validators],
                [(a["validator"], a["signature"]) for a in found[:need]],
            )
        )
    return links


def _record(state: BlockState, epoch: int) -> EpochRecord | None:
    raw = state.get(epoch_key(epoch))
    return EpochRecord.from_json(raw) if raw is not None else None


def _signer_index(ctx: ExecContext) -> tuple[EpochRecord, int]:
    """The attested epoch's predecessor and the signer's index in it, or a Rejection.
    Reads one key the body names: the epoch the signer attests from (cheap enough
    for admission, as a member lookup is)."""
    epoch = ctx.tx.body.get("epoch") if isinstance(ctx.tx.body, dict) else None
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise Rejection("unknown-epoch", "body.epoch must be an epoch number >= 1")
    previous = _record(ctx.state, epoch - 1)
    index = previous.index_of(ctx.tx.signer) if previous is not None else None
    if previous is None or index is None:
        raise Rejection(
            "not-a-validator",
            f"signer is not a node key of epoch {epoch - 1}, the set that attests epoch {epoch}",
        )
    return previous, index


def _authorize(ctx: ExecContext) -> None:
    _signer_index(ctx)


def _apply(ctx: ExecContext) -> dict[str, Any]:
    _, index = _signer_index(ctx)
    epoch: int = ctx.tx.body["epoch"]
    record = _record(ctx.state, epoch)
    if record is None:
        raise Rejection("unknown-epoch", f"no epoch {epoch} is committed")
    key = attestation_key(epoch, index)
    if ctx.state.get(key) is not None:
        raise Rejection(
            "already-attested", f"validator {index} of epoch {epoch - 1} attested epoch {epoch}"
        )
    signature: str = ctx.tx.body["signature"]
    if not verify(
        bytes.fromhex(ctx.tx.signer),
        statement_of(ctx.block.chain_id, record),
        bytes.fromhex(signature),
    ):
        raise Rejection(
            "bad-signature",
            f"the signature is not the signer's over epoch {epoch}'s statement "
            "(docs/governance.md, 'Epoch attestations')",
        )
    entry: Attestation = {
        "validator": index,
        "node_key": ctx.tx.signer,
        "signature": signature,
        "height": ctx.block.height,
    }
    ctx.state.put(key, dict(entry))
    return {"epoch": epoch, "validator": index}


EPOCH_ATTEST = TxType(
    name="epoch.attest",
    schema=Obj({"epoch": Int(min=1), "signature": Str(max_len=128, min_len=128, pattern=HEX128)}),
    authorize=_authorize,
    apply=_apply,
    summary="a validator of the previous epoch signs a new validator set (for proofs)",
)

DOMAIN = Domain(name="epochs", tx_types=(EPOCH_ATTEST,))
