"""Coordination of benefits: a claim to a secondary (tertiary ...) payer that cites the
prior payer's adjudicated claim (``primary_claim`` of ``claim.submit``).

The cited claim must be one of the same provider (claim ids are per provider),
active (neither reversed nor voided), of the same patient, at a payer other than
this claim's insurer and every payer before it; each line of the citing claim must
be a service of the cited claim: the same code, date, pack, quantity and unit price
(its first such line). Such a claim is no duplicate of the cited one: its lines take
the per-payer key ``claims_core.cob_key`` instead of the shared duplicate index, and
``claims_pricing.coordinate`` prices them: the secondary pays at most what the
cited line left to the patient. The cited claim's settlement state lists the active
claims citing it (``cited_by``): its provider cannot void or replace it while any
does (docs/claims.md, "Coordination of benefits").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node.ledger.domains.claims_core import claim_key, claim_state_key
from node.ledger.result import Rejection
from node.ledger.state import BlockState


@dataclass(frozen=True)
class Citation:
    """A checked ``primary_claim``: the payers before this claim's insurer (primary
    first) and, per line of the citing claim, the cited line's sequence and what it
    left to the patient."""

    claim_id: str
    prior_payers: list[str]
    lines: list[int]
    left: list[int]

    def record(self) -> dict[str, Any]:
        """What the citing claim's explanation of benefits shows of it."""
        return {"primary_claim": self.claim_id, "prior_payers": self.prior_payers}


def _service(line: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """What makes two lines the same service (the duplicate index's fields)."""
    return (
        line["service_code"],
        line["service_date"],
        line.get("gtin", ""),
        line.get("serial", ""),
    )


def cite(state: BlockState, provider: str, body: Mapping[str, Any]) -> Citation:
    """Check ``body["primary_claim"]`` (module docstring) or raise: ``unknown-primary``,
    ``primary-inactive``, ``primary-mismatch`` (another patient, or a line that is not
    a service of the cited claim), ``same-payer``."""
    primary_id: str = body["primary_claim"]
    claim = state.get(claim_key(provider, primary_id))
    if claim is None:
        raise Rejection("unknown-primary", f"no claim {primary_id} of {provider}")
    st = state.get(claim_state_key(provider, primary_id))
    if st["status"] != "active":
        raise Rejection("primary-inactive", f"claim {primary_id} is {st['status']}")
    if claim["patient"] != body["patient"]:
        raise Rejection("primary-mismatch", f"claim {primary_id} is of another patient")
    prior: list[str] = [*claim.get("cob", {}).get("prior_payers", []), claim["insurer"]]
    if body["insurer"] in prior:
        raise Rejection(
            "same-payer", f"{body['insurer']} already adjudicated this service (claim {primary_id})"
        )
    services: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for line in claim["items"]:
        services.setdefault(_service(line), line)
    lines: list[int] = []
    left: list[int] = []
    for i, item in enumerate(body["items"]):
        line = services.get(_service(item))
        if line is None or (line["quantity"], line["unit_price"]) != (
            item["quantity"],
            item["unit_price"],
        ):
            raise Rejection(
                "primary-mismatch",
                f"body.items[{i}] is not a service of claim {primary_id} "
                "(same code, date, pack, quantity and unit price)",
            )
        lines.append(line["sequence"])
        left.append(line["patient_responsibility"])
    return Citation(primary_id, prior, lines, left)


def _cited_by(state: BlockState, provider: str, primary_id: str) -> tuple[bytes, dict[str, Any]]:
    key = claim_state_key(provider, primary_id)
    st: dict[str, Any] = state.get(key)
    return key, st


def add_citation(state: BlockState, provider: str, primary_id: str, claim_id: str) -> None:
    """``claim_id`` now cites ``primary_id`` (kept sorted: claim ids, not arrival order)."""
    key, st = _cited_by(state, provider, primary_id)
    st["cited_by"] = sorted({*st.get("cited_by", []), claim_id})
    state.put(key, st)


def drop_citation(state: BlockState, provider: str, primary_id: str, claim_id: str) -> None:
    """``claim_id`` (voided, replaced or reversed) no longer cites ``primary_id``."""
    key, st = _cited_by(state, provider, primary_id)
    rest = [c for c in st.get("cited_by", []) if c != claim_id]
    if rest:
        st["cited_by"] = rest
    else:
        st.pop("cited_by", None)
    state.put(key, st)
