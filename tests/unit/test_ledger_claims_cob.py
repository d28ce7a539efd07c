"""Claims: coordination of benefits (``claim.submit`` with ``primary_claim``,
node/ledger/domains/claims_cob.py): a secondary payer's claim cites the primary's and
pays at most what it left to the patient; a true duplicate is still caught."""

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
    reasons,
    setup,
    submit,
    tx,
)


def cob_chain(**silver: Any) -> Chain:
    """i1's gold (20 % and 1,000 fixed copay: 10,000 pays 7,200, leaves 2,800) and
    i2's silver (10 % coinsurance unless overridden), the patient enrolled in both."""
    chain = setup()
    terms = {"copay_bp": 1_000, "copay_fixed": 0, "preauth_codes": [], **silver}
    chain.ok(tx("i2", "policy.publish", policy(policy_id="silver", **terms)))
    chain.ok(tx("i2", "coverage.enroll", enroll(policy_id="silver", coverage_id="cov-s")))
    return chain


def view(chain: Chain, claim_id: str) -> dict[str, Any]:
    found = claims._claim_view(chain.state(), "h1", claim_id)
    assert found is not None
    return found


def test_secondary_pays_what_the_primary_left_to_the_patient() -> None:
    """Gold pays 7,200 and leaves 2,800; silver would pay 9,000 as primary, so as
    secondary it pays the 2,800: OA 23 for the primary's part, nothing left to the patient."""
    chain = cob_chain()
    assert submit(chain, claim("c-1"))["totals"]["patient_responsibility"] == 2_800
    out = submit(chain, claim("c-2", insurer="i2", primary_claim="c-1"))
    (it,) = out["items"]
    assert out["flags"] == [] and out["decision"] == "approved"
    assert out["cob"] == {"primary_claim": "c-1", "prior_payers": ["i1"]}
    assert it["cob"] == {"primary_item": 1, "left": 2_800}
    assert reasons(it) == [("OA", "23", 7_200)]
    assert (it["benefit"], it["patient_responsibility"]) == (2_800, 0)
    assert it["submitted"] == it["benefit"] + sum(a for _, _, a in reasons(it))
    assert view(chain, "c-1")["cited_by"] == ["c-2"]
    st = claims._q_insurer_statement(chain.state(), {"member": "i2"}, {})
    assert st["totals"]["approved"] == 2_800


def test_secondary_pays_at_most_what_its_own_policy_pays() -> None:
    """Silver with a 9,500 deductible would pay 450 as primary: it pays 450, and the
    patient's 2,350 is silver's own deductible (PR 1), which its accumulator counts."""
    chain = cob_chain(deductible=9_500)
    submit(chain, claim("c-1"))
    (it,) = submit(chain, claim("c-2", insurer="i2", primary_claim="c-1"))["items"]
    assert reasons(it) == [("OA", "23", 7_200), ("PR", "1", 2_350)]
    assert (it["benefit"], it["deductible"], it["patient_responsibility"]) == (450, 2_350, 2_350)
    acc = chain.state().get(accumulator_key("i2", PATIENT, "silver", 2025))
    assert acc == {"deductible_met": 2_350, "benefit": 450}


def test_a_line_the_primary_left_nothing_on_is_paid_nothing() -> None:
    """A line the primary denied to the provider (CO 96) leaves the patient nothing:
    the secondary pays nothing either (approved, all OA 23)."""
    chain = cob_chain(services=[{"code": "99213", "allowed": 10_000}, {"code": "X1", "allowed": 9}])
    line = item("X1", price=500)
    submit(chain, claim("c-1", [line]))
    (it,) = submit(chain, claim("c-2", [line], "i2", primary_claim="c-1"))["items"]
    assert (it["benefit"], it["decision"], reasons(it)) == (0, "approved", [("OA", "23", 500)])


def test_tertiary_payer_cites_the_secondary() -> None:
    """A third payer cites the secondary claim: it pays what the secondary left."""
    chain = cob_chain(deductible=9_500)
    chain.ok(tx("i3", "policy.publish", policy(policy_id="bronze", copay_bp=0, copay_fixed=0)))
    chain.ok(tx("i3", "coverage.enroll", enroll(policy_id="bronze", coverage_id="cov-b")))
    submit(chain, claim("c-1"))
    submit(chain, claim("c-2", insurer="i2", primary_claim="c-1"))
    out = submit(chain, claim("c-3", insurer="i3", primary_claim="c-2"))
    assert out["cob"]["prior_payers"] == ["i1", "i2"] and out["flags"] == []
    assert reasons(out["items"][0]) == [("OA", "23", 7_650)]
    assert out["totals"]["benefit"] == 2_350
    code = chain.code(tx("h1", "claim.submit", claim("c-4", insurer="i1", primary_claim="c-2")))
    assert code == "same-payer"  # i1 adjudicated it first


def test_true_duplicates_are_still_caught() -> None:
    """The same service again without a citation, at the same or the other payer, and a
    second secondary claim at the same payer, are duplicates (OA 18)."""
    chain = cob_chain()
    submit(chain, claim("c-1"))
    for claim_id, insurer in (("c-2", "i1"), ("c-3", "i2")):
        out = submit(chain, claim(claim_id, insurer=insurer))
        (flag,) = out["flags"]
        assert flag["code"] == "duplicate" and flag["original"]["claim_id"] == "c-1"
        assert flag["cross_insurer"] is (insurer == "i2")
    submit(chain, claim("c-4", insurer="i2", primary_claim="c-1"))
    out = submit(chain, claim("c-5", insurer="i2", primary_claim="c-1"))
    (flag,) = out["flags"]
    assert flag["code"] == "duplicate" and flag["original"]["claim_id"] == "c-4"
    assert reasons(out["items"][0])[0][:2] == ("OA", "18") and out["totals"]["benefit"] == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (claim("c-2", insurer="i2", primary_claim="nope"), "unknown-primary"),
        (claim("c-2", insurer="i1", primary_claim="c-1"), "same-payer"),
        (claim("c-2", insurer="i2", patient=PATIENT2, primary_claim="c-1"), "primary-mismatch"),
        (claim("c-2", [item("J1100")], "i2", primary_claim="c-1"), "primary-mismatch"),
        (claim("c-2", [item(qty=2, price=5_000)], "i2", primary_claim="c-1"), "primary-mismatch"),
        (claim("c-2", [item(), item("J1100")], "i2", primary_claim="c-1"), "primary-mismatch"),
    ],
)
def test_the_citation_is_checked(body: dict[str, Any], code: str) -> None:
    """The cited claim must exist, be of the same patient and services (code, date,
    pack, quantity, unit price) and at another payer."""
    chain = cob_chain()
    chain.ok(tx("i2", "coverage.enroll", enroll(PATIENT2, policy_id="silver", coverage_id="c2")))
    submit(chain, claim("c-1"))
    assert chain.code(tx("h1", "claim.submit", body)) == code


def test_a_reversed_or_voided_primary_cannot_be_cited() -> None:
    """Only an active claim is an adjudication to coordinate with."""
    chain = cob_chain()
    submit(chain, claim("c-1"))
    chain.ok(tx("i1", "claim.reverse", {"provider": "h1", "claim_id": "c-1", "reason": "x"}))
    secondary = claim("c-2", insurer="i2", primary_claim="c-1")
    assert chain.code(tx("h1", "claim.submit", secondary)) == "primary-inactive"
    submit(chain, claim("c-3"))
    chain.ok(tx("h1", "claim.void", {"provider": "h1", "claim_id": "c-3", "reason": "x"}))
    secondary = claim("c-4", insurer="i2", primary_claim="c-3")
    assert chain.code(tx("h1", "claim.submit", secondary)) == "primary-inactive"


def test_a_cited_primary_is_voided_only_after_its_secondary() -> None:
    """The provider voids the secondary first; that frees its per-payer key (a new
    secondary claim is no duplicate) and its citation, then the primary is voidable."""
    chain = cob_chain()
    submit(chain, claim("c-1"))
    submit(chain, claim("c-2", insurer="i2", primary_claim="c-1"))
    void = {"provider": "h1", "reason": "billed in error"}
    assert chain.code(tx("h1", "claim.void", {**void, "claim_id": "c-1"})) == "claim-cited"
    chain.ok(tx("h1", "claim.void", {**void, "claim_id": "c-2"}))
    assert "cited_by" not in view(chain, "c-1")
    out = submit(chain, claim("c-3", insurer="i2", primary_claim="c-1"))
    assert out["flags"] == [] and out["totals"]["benefit"] == 2_800
    chain.ok(tx("i2", "claim.reverse", {"provider": "h1", "claim_id": "c-3", "reason": "x"}))
    chain.ok(tx("h1", "claim.void", {**void, "claim_id": "c-1"}))
    assert view(chain, "c-1")["status"] == "voided"


def test_the_primary_insurer_may_reverse_a_cited_claim() -> None:
    """Citations bind the provider, not the primary payer: its reversal stands, and the
    secondary's later void drops the citation from the reversed claim."""
    chain = cob_chain()
    submit(chain, claim("c-1"))
    submit(chain, claim("c-2", insurer="i2", primary_claim="c-1"))
    chain.ok(tx("i1", "claim.reverse", {"provider": "h1", "claim_id": "c-1", "reason": "x"}))
    assert view(chain, "c-1")["status"] == "reversed" and view(chain, "c-2")["status"] == "active"
    chain.ok(tx("h1", "claim.void", {"provider": "h1", "claim_id": "c-2", "reason": "x"}))
    assert "cited_by" not in view(chain, "c-1")


def test_a_payer_that_paid_as_secondary_is_not_billed_again_as_primary() -> None:
    """The primary payer reverses its claim (freeing the shared duplicate key); the
    service billed to the secondary payer again, now as its primary, is a duplicate
    of the secondary claim that stands; billed to the primary payer again, it is not."""
    chain = cob_chain()
    submit(chain, claim("c-1"))
    submit(chain, claim("c-2", insurer="i2", primary_claim="c-1"))
    chain.ok(tx("i1", "claim.reverse", {"provider": "h1", "claim_id": "c-1", "reason": "x"}))
    out = submit(chain, claim("c-3", insurer="i2"))
    (flag,) = out["flags"]
    assert (flag["code"], flag["original"]["claim_id"], flag["cross_insurer"]) == (
        "duplicate",
        "c-2",
        False,
    )
    assert out["decision"] == "denied"
    again = submit(chain, claim("c-4"))
    assert again["flags"] == [] and again["decision"] != "denied"
