"""Claims: a provider voids (``claim.void``, frequency 8) or replaces (``claim.submit``
with ``replaces``, frequency 7) its own unpaid claim (node/ledger/domains/claims_void.py)."""

from __future__ import annotations

from typing import Any

import pytest

from node.ledger.domains import claims
from node.ledger.domains.claims_core import accumulator_key
from tests.unit.test_ledger_claims import (
    PATIENT,
    PATIENT2,
    Chain,
    claim,
    enroll,
    item,
    policy,
    setup,
    submit,
    tx,
)

VOID = {"provider": "h1", "claim_id": "c-1", "reason": "billed in error"}
SETTLE = {"provider": "h1", "claim_id": "c-1", "payment_ref": "pay-1", "amount": 1_000}


def view(chain: Chain, claim_id: str) -> dict[str, Any]:
    found = claims._claim_view(chain.state(), "h1", claim_id)
    assert found is not None
    return found


def accumulator(chain: Chain) -> Any:
    return chain.state().get(accumulator_key("i1", PATIENT, "gold", 2025))


def approved(chain: Chain) -> int:
    st = claims._q_provider_statement(chain.state(), {"member": "h1"}, {})
    total: int = st["totals"]["approved"]
    return total


def test_void_gives_back_accumulators_duplicate_keys_and_approved() -> None:
    """A voided claim's deductible and benefit leave the accumulators, its lines the
    duplicate index, its benefit the pair's approved; it shows voided, nothing outstanding."""
    chain = setup(deductible=3_000, copay_bp=0, copay_fixed=0)
    submit(chain, claim("c-1", [item(), item("J1100", price=2_000)]))
    assert accumulator(chain) == {"deductible_met": 3_000, "benefit": 9_000}
    assert approved(chain) == 9_000
    assert chain.ok(tx("h1", "claim.void", VOID)) == {"claim_id": "c-1", "status": "voided"}
    assert accumulator(chain) == {"deductible_met": 0, "benefit": 0}
    assert approved(chain) == 0
    v = view(chain, "c-1")
    assert (v["status"], v["outstanding"], v["void"]["reason"]) == ("voided", 0, "billed in error")
    insurer = claims._q_insurer_statement(chain.state(), {"member": "i1"}, {})
    assert insurer["claims"][0]["status"] == "voided"
    out = submit(chain, claim("c-2", [item(), item("J1100", price=2_000)]))
    assert out["flags"] == [] and out["items"][0]["deductible"] == 3_000


def test_a_claim_whose_payments_were_reversed_is_voidable() -> None:
    """Paid is what counts: settled then reversed leaves nothing paid."""
    chain = setup()
    submit(chain, claim("c-1"))
    chain.ok(tx("i1", "claim.settle", SETTLE))
    assert chain.code(tx("h1", "claim.void", VOID)) == "claim-paid"
    chain.ok(tx("i1", "claim.reverse", {**VOID, "payment_ref": "pay-1"}))
    chain.ok(tx("h1", "claim.void", VOID))


def test_void_rejections() -> None:
    """Another provider's claim, an unknown one, a voided one, one the insurer reversed;
    and the insurer can neither void, settle nor reverse a voided claim."""
    chain = setup()
    submit(chain, claim("c-1"))
    submit(chain, claim("c-2", [item("J1100", price=2_000)]))
    assert chain.code(tx("c1", "claim.void", VOID)) == "not-owner"
    assert chain.code(tx("i1", "claim.void", VOID)) == "unauthorized"
    assert chain.code(tx("h1", "claim.void", {**VOID, "claim_id": "nope"})) == "unknown-claim"
    chain.ok(tx("i1", "claim.reverse", {**VOID, "claim_id": "c-2"}))
    assert chain.code(tx("h1", "claim.void", {**VOID, "claim_id": "c-2"})) == "claim-reversed"
    chain.ok(tx("h1", "claim.void", VOID))
    assert chain.code(tx("h1", "claim.void", VOID)) == "already-voided"
    assert chain.code(tx("i1", "claim.settle", SETTLE)) == "claim-voided"
    assert chain.code(tx("i1", "claim.reverse", VOID)) == "claim-voided"


def test_replacement_voids_the_original_and_adjudicates_the_new_claim() -> None:
    """The replacement's lines are no duplicates of the original's, and see the
    accumulators as if the original had never been: both take the same deductible."""
    chain = setup(deductible=3_000, copay_bp=0, copay_fixed=0)
    first = submit(chain, claim("c-1", [item(price=5_000)]))
    out = submit(chain, claim("c-2", [item(price=8_000)], replaces="c-1"))
    assert out["replaces"] == "c-1" and out["flags"] == []
    assert (first["items"][0]["deductible"], out["items"][0]["deductible"]) == (3_000, 3_000)
    assert out["totals"]["benefit"] == 5_000
    assert accumulator(chain) == {"deductible_met": 3_000, "benefit": 5_000}
    assert view(chain, "c-1")["void"] == {
        "reason": "replaced",
        "height": chain.height,
        "tx": view(chain, "c-1")["void"]["tx"],
        "replaced_by": "c-2",
    }
    assert approved(chain) == 5_000


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (claim("c-9", replaces="nope"), "unknown-claim"),
        (claim("c-9", replaces="c-paid"), "claim-paid"),
        (claim("c-9", replaces="c-void"), "already-voided"),
        (claim("c-9", replaces="c-rev"), "claim-reversed"),
        (claim("c-9", insurer="i2", replaces="c-1"), "replacement-mismatch"),
        (claim("c-9", patient=PATIENT2, replaces="c-1"), "replacement-mismatch"),
        (claim("c-1", replaces="c-1"), "claim-exists"),
    ],
)
def test_replacement_rejections(body: dict[str, Any], code: str) -> None:
    """Only the provider's active, unpaid claim, at the same insurer for the same patient."""
    chain = setup()
    chain.ok(tx("i2", "policy.publish", policy(policy_id="other")))
    chain.ok(tx("i2", "coverage.enroll", enroll(policy_id="other")))
    chain.jump("2025-03-04")
    for n, claim_id in enumerate(("c-1", "c-paid", "c-void", "c-rev"), 1):
        submit(chain, claim(claim_id, [item(date=f"2025-03-0{n}")]))
    chain.ok(tx("i1", "claim.settle", {**SETTLE, "claim_id": "c-paid"}))
    chain.ok(tx("h1", "claim.void", {**VOID, "claim_id": "c-void"}))
    chain.ok(tx("i1", "claim.reverse", {**VOID, "claim_id": "c-rev"}))
    assert chain.code(tx("h1", "claim.submit", body)) == code
    assert view(chain, "c-1")["status"] == "active"


def test_another_providers_claim_is_not_replaceable() -> None:
    """Claim ids are per provider: a clinic's ``replaces`` names its own claims only."""
    chain = setup()
    submit(chain, claim("c-1"))
    assert chain.code(tx("c1", "claim.submit", claim("c-2", replaces="c-1"))) == "unknown-claim"


def test_void_and_replacement_are_deterministic() -> None:
    """Two nodes executing the same blocks of submits, replacements and voids agree."""
    blocks = [
        [],
        [tx("i1", "policy.publish", policy(deductible=2_000, annual_limit=30_000))],
        [tx("i1", "coverage.enroll", enroll())],
        [tx("h1", "claim.submit", claim("c-1", [item(qty=2), item("J1100", price=2_000)]))],
        [tx("h1", "claim.submit", claim("c-2", [item(qty=3)], replaces="c-1"))],
        [tx("h1", "claim.void", {**VOID, "claim_id": "c-2"})],
    ]
    roots = []
    for _ in range(2):
        chain = Chain()
        for block in blocks:
            assert all(r.status == "ok" for r in chain.run(*block))
        roots.append(chain.root)
    assert roots[0] == roots[1]
