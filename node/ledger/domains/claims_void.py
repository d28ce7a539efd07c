"""A provider voids or replaces its own unpaid claim (X12 837 ``CLM05-3`` claim
frequency code 8, void/cancel of prior claim, and 7, replacement of prior claim,
citing the original as the payer claim control number ``REF*F8``).

``claim.void`` (provider) withdraws a claim; ``claim.submit`` with ``replaces``
voids the original and adjudicates the new claim in the same transaction. Either
needs the claim to be the signer's own, active (not voided, not reversed by the
insurer), with nothing paid (every settlement reversed) and cited by no active
secondary claim. Voiding gives back, line by line in order, what the claim took:
its deductible and benefit from the accumulators, its duplicate-index (or
coordination-of-benefits) keys, its citation of a primary claim, and its benefit
from the pair's ``approved``. The insurer's whole-claim ``claim.reverse`` gives
back the same (``release``).
"""

from __future__ import annotations

from typing import Any

from node.ledger.context import ExecContext
from node.ledger.domains import claims_cob
from node.ledger.domains.claims_core import (
    ID,
    REASON,
    accumulator_key,
    authorize_provider,
    claim_key,
    claim_state_key,
    cob_key,
    insurer_index_key,
    ledger_add,
    line_duplicate_key,
    member_id,
)
from node.ledger.registry import TxType
from node.ledger.result import Rejection
from node.ledger.schema import Obj, Str
from node.ledger.state import BlockState


def voidable(
    state: BlockState, provider: str, claim_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The claim and its settlement state, if its provider may void it; else raise
    ``unknown-claim``, ``already-voided``, ``claim-reversed``, ``claim-paid`` or
    ``claim-cited``."""
    st = state.get(claim_state_key(provider, claim_id))
    if st is None:
        raise Rejection("unknown-claim", f"no claim {claim_id} of {provider}")
    if st["status"] == "voided":
        raise Rejection("already-voided", f"claim {claim_id} is voided")
    if st["status"] != "active":
        raise Rejection("claim-reversed", f"claim {claim_id} is reversed by its insurer")
    if st["paid"] != 0:
        raise Rejection("claim-paid", f"claim {claim_id} has {st['paid']} paid: not voidable")
    if st.get("cited_by"):
        raise Rejection(
            "claim-cited", f"claim {claim_id} is cited by {', '.join(st['cited_by'])}: void those"
        )
    claim: dict[str, Any] = state.get(claim_key(provider, claim_id))
    return claim, st


def release(state: BlockState, claim: dict[str, Any]) -> None:
    """Give back what an active claim took, line by line in order: its deductible and
    benefit from the accumulators, the duplicate-index or coordination-of-benefits key
    each line holds; then its citation of a primary claim."""
    insurer, patient, provider = claim["insurer"], claim["patient"], claim["provider"]
    for item in claim["items"]:
        if item["policy_id"] is not None:
            akey = accumulator_key(insurer, patient, item["policy_id"], claim["year"])
            acc = state.get(akey)
            acc["deductible_met"] -= item["deductible"]
            acc["benefit"] -= item["benefit"]
            state.put(akey, acc)
        dkey = line_duplicate_key(patient, provider, item)
        key = cob_key(insurer, dkey) if "cob" in claim else dkey
        entry = state.get(key)
        if entry is not None and (entry["provider"], entry["claim_id"]) == (
            provider,
            claim["claim_id"],
        ):
            state.delete(key)
    if "cob" in claim:
        claims_cob.drop_citation(state, provider, claim["cob"]["primary_claim"], claim["claim_id"])


def void(
    ctx: ExecContext,
    claim: dict[str, Any],
    st: dict[str, Any],
    reason: str,
    replaced_by: str | None = None,
) -> None:
    """Void an active, unpaid claim (``voidable`` checked it): ``release`` it, mark it
    ``voided`` (with the replacing claim's id, if any) and take its benefit off the
    pair's ``approved``."""
    state = ctx.state
    provider, claim_id, insurer = claim["provider"], claim["claim_id"], claim["insurer"]
    release(state, claim)
    st["status"] = "voided"
    st["void"] = {
        "reason": reason,
        "height": ctx.block.height,
        "tx": ctx.tx.hash,
        **({"replaced_by": replaced_by} if replaced_by is not None else {}),
    }
    state.put(claim_state_key(provider, claim_id), st)
    state.put(insurer_index_key(insurer, provider, claim_id), "voided")
    ledger_add(state, provider, insurer, -st["benefit"], 0)


def _void(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    provider = member_id(ctx)
    if body["provider"] != provider:
        raise Rejection("not-owner", f"claim {body['claim_id']} is {body['provider']}'s")
    claim, st = voidable(ctx.state, provider, body["claim_id"])
    void(ctx, claim, st, body["reason"])
    return {"claim_id": body["claim_id"], "status": "voided"}


CLAIM_VOID = TxType(
    "claim.void",
    Obj(
        {
            "provider": Str(pattern=ID),
            "claim_id": Str(pattern=ID),
            "reason": Str(pattern=REASON),
        }
    ),
    authorize_provider,
    _void,
    "the provider voids its own unpaid claim (X12 claim frequency 8)",
)
