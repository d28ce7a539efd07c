"""Claim adjudication as a FHIR R4 ExplanationOfBenefit and settlement as a
PaymentReconciliation (node/ops/formats/fhir_eob.py), from real ledger answers: paid,
partly paid, denied (CO 110), voided, secondary (OA 23), replacement, remark codes;
FHIR R4 structure (fhir.resources R4B models); exact money; and
``hygeia client claims status --format fhir`` / ``remittance --format fhir``.

The scenarios here also feed tests/unit/test_formats_x12_835.py."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from fhir.resources.R4B.explanationofbenefit import ExplanationOfBenefit
from fhir.resources.R4B.paymentreconciliation import PaymentReconciliation

from node.ledger.domains import claims
from node.ops.formats import FormatError
from node.ops.formats.fhir_common import SYSTEM_MEMBER, SYSTEM_PATIENT_KEY
from node.ops.formats.fhir_eob import (
    CARC,
    RARC,
    SYSTEM_CLAIM,
    SYSTEM_COVERAGE,
    SYSTEM_PAYMENT,
    dumps,
    explanation_of_benefit,
    money,
    payment_reconciliation,
)
from tests.unit.test_cli_client import API, BLOCK_TIME_MS, FakeNode, run
from tests.unit.test_ledger_claims import (
    GTIN,
    PATIENT,
    Chain,
    claim,
    item,
    setup,
    submit,
    tx,
)
from tests.unit.test_ledger_claims_cob import cob_chain, view

T = 1_740_787_200_000  # 2025-03-01T00:00:00Z: the block the answers are read at


# ----------------------------------------------------------------- ledger scenarios
def _settle(chain: Chain, claim_id: str, ref: str, amount: int, insurer: str = "i1") -> None:
    body = {"provider": "h1", "claim_id": claim_id, "payment_ref": ref, "amount": amount}
    chain.ok(tx(insurer, "claim.settle", body))


def paid() -> list[dict[str, Any]]:
    """100.00 at 20 % coinsurance and a 10.00 copay: 72.00 approved, all paid."""
    chain = setup()
    submit(chain, claim("c-1"))
    _settle(chain, "c-1", "pay-1", 7_200)
    return [view(chain, "c-1")]


def partly_paid() -> list[dict[str, Any]]:
    """120.00 billed, 100.00 allowed (CO 45 20), deductible 20 (PR 1), copay 10 (PR 3),
    coinsurance 14 (PR 2): 56.00 approved, 30.00 paid so far."""
    chain = setup(deductible=2_000)
    submit(chain, claim("c-1", [item(price=12_000)]))
    _settle(chain, "c-1", "pay-1", 3_000)
    return [view(chain, "c-1")]


def denied_future() -> list[dict[str, Any]]:
    """A service dated the day after the block: CO 110."""
    chain = setup()
    submit(chain, claim("c-1", [item(date="2025-03-02")]))
    return [view(chain, "c-1")]


def voided() -> list[dict[str, Any]]:
    chain = setup()
    submit(chain, claim("c-1"))
    chain.ok(tx("h1", "claim.void", {"provider": "h1", "claim_id": "c-1", "reason": "typo"}))
    return [view(chain, "c-1")]


def cob() -> list[dict[str, Any]]:
    """The primary (i1) pays 72.00 and leaves 28.00; the secondary (i2) pays those."""
    chain = cob_chain()
    submit(chain, claim("c-1"))
    _settle(chain, "c-1", "pay-1", 7_200)
    submit(chain, claim("c-2", insurer="i2", primary_claim="c-1"))
    _settle(chain, "c-2", "pay-2", 2_800, insurer="i2")
    return [view(chain, "c-1"), view(chain, "c-2")]


def replaced() -> list[dict[str, Any]]:
    chain = setup()
    submit(chain, claim("c-1"))
    submit(chain, claim("c-2", replaces="c-1"))
    return [view(chain, "c-1"), view(chain, "c-2")]


def duplicate() -> list[dict[str, Any]]:
    chain = setup()
    submit(chain, claim("c-1"))
    submit(chain, claim("c-2"))
    return [view(chain, "c-2")]


def evidence_mismatch() -> list[dict[str, Any]]:
    chain = setup()
    submit(chain, claim("c-1", evidence=["rec-x"]))  # no such record anchored
    return [view(chain, "c-1")]


def evidence_missing() -> list[dict[str, Any]]:
    chain = setup(evidence_required=True)
    submit(chain, claim("c-1"))
    return [view(chain, "c-1")]


def drug_not_dispensed() -> list[dict[str, Any]]:
    chain = setup()
    submit(chain, claim("c-1", [item("J1100", price=2_000, gtin=GTIN, serial="S1")]))
    return [view(chain, "c-1")]


def claims_of(*ids: str) -> list[dict[str, Any]]:
    """c-1 (72.00) and c-2 (J1100: 20.00, copay 10, coinsurance 2: 8.00), both paid."""
    chain = setup()
    submit(chain, claim("c-1"))
    submit(chain, claim("c-2", [item("J1100", price=2_000)]))
    _settle(chain, "c-1", "pay-1", 7_200)
    _settle(chain, "c-2", "pay-2", 800)
    return [view(chain, i) for i in ids]


def payment_reversed() -> list[dict[str, Any]]:
    """pay-1 (72.00) reversed, then pay-2 (72.00)."""
    chain = setup()
    submit(chain, claim("c-1"))
    _settle(chain, "c-1", "pay-1", 7_200)
    body = {"provider": "h1", "claim_id": "c-1", "payment_ref": "pay-1", "reason": "wrong"}
    chain.ok(tx("i1", "claim.reverse", body))
    _settle(chain, "c-1", "pay-2", 7_200)
    return [view(chain, "c-1")]


def policy_answer() -> dict[str, Any]:
    found = claims._q_policy(setup().state(), {"policy_id": "gold"}, {})
    assert found is not None
    return found


# ----------------------------------------------------------------- helpers
def eob(claim_: dict[str, Any]) -> dict[str, Any]:
    out = explanation_of_benefit(claim_, "EUR")
    ExplanationOfBenefit.model_validate(out)  # FHIR R4 structure
    return out


def codes(concept: dict[str, Any]) -> tuple[str, str]:
    (c,) = concept["coding"]
    return c["system"], c["code"]


def amounts(entry: dict[str, Any]) -> dict[str, Decimal]:
    """An item's (or the total's) adjudication amounts by category code."""
    return {
        codes(a["category"])[1]: a["amount"]["value"]
        for a in entry["adjudication"]
        if "reason" not in a
    }


def reasons(entry: dict[str, Any]) -> list[tuple[str, str, str, Decimal | None]]:
    """(category, group or '', CARC/RARC, amount) of an item's reason entries."""
    out = []
    for a in entry["adjudication"]:
        if "reason" in a:
            group = a["extension"][0]["valueCode"] if "extension" in a else ""
            system, code = codes(a["reason"])
            kind = "CARC" if system == CARC else "RARC" if system == RARC else system
            amount = a["amount"]["value"] if "amount" in a else None
            out.append((codes(a["category"])[1], group, f"{kind} {code}", amount))
    return out


# ----------------------------------------------------------------- ExplanationOfBenefit
def test_a_paid_claim_is_a_complete_active_eob_paid_in_full() -> None:
    (c,) = paid()
    r = eob(c)
    assert (r["id"], r["status"], r["outcome"], r["use"]) == (
        c["submitted"]["tx"],
        "active",
        "complete",
        "claim",
    )
    assert r["identifier"] == [{"system": SYSTEM_CLAIM, "value": "h1/c-1"}]
    assert r["created"] == "2025-03-01T00:00:04.000Z"
    assert r["patient"]["identifier"] == {"system": SYSTEM_PATIENT_KEY, "value": PATIENT}
    assert r["insurer"]["identifier"] == {"system": SYSTEM_MEMBER, "value": "i1"}
    assert r["provider"]["identifier"] == {"system": SYSTEM_MEMBER, "value": "h1"}
    assert r["insurance"] == [
        {
            "focal": True,
            "coverage": {
                "type": "Coverage",
                "identifier": {"system": SYSTEM_COVERAGE, "value": f"i1/{PATIENT}"},
            },
        }
    ]
    (it,) = r["item"]
    assert amounts(it) == {
        "submitted": Decimal("100.00"),
        "eligible": Decimal("100.00"),
        "copay": Decimal("10.00"),
        "benefit": Decimal("72.00"),
    }
    assert reasons(it) == [
        ("adjustmentreason", "PR", "CARC 3", Decimal("10.00")),
        ("adjustmentreason", "PR", "CARC 2", Decimal("18.00")),
    ]
    assert codes(r["payment"]["type"])[1] == "complete"
    assert r["payment"]["amount"] == {"value": Decimal("72.00"), "currency": "EUR"}
    assert "related" not in r and codes(r["type"])[1] == "professional"


def test_a_partly_paid_claim_shows_co45_pr1_pr3_pr2_and_a_partial_payment() -> None:
    (c,) = partly_paid()
    r = eob(c)
    (it,) = r["item"]
    assert amounts(it)["deductible"] == Decimal("20.00")
    assert reasons(it) == [
        ("adjustmentreason", "CO", "CARC 45", Decimal("20.00")),
        ("adjustmentreason", "PR", "CARC 1", Decimal("20.00")),
        ("adjustmentreason", "PR", "CARC 3", Decimal("10.00")),
        ("adjustmentreason", "PR", "CARC 2", Decimal("14.00")),
    ]
    assert codes(r["payment"]["type"])[1] == "partial"
    assert r["payment"]["amount"]["value"] == Decimal("30.00")


def test_a_future_service_is_denied_co110_without_payment() -> None:
    r = eob(denied_future()[0])
    assert (r["outcome"], r["disposition"]) == ("complete", "denied")
    assert reasons(r["item"][0]) == [("denialreason", "CO", "CARC 110", Decimal("100.00"))]
    assert "payment" not in r


def test_a_partly_approved_claim_has_a_partial_outcome() -> None:
    chain = setup()
    submit(chain, claim("c-1", [item(), item("J1100", price=2_000, date="2025-03-02")]))
    r = eob(view(chain, "c-1"))
    assert (r["outcome"], r["disposition"]) == ("partial", "partial")
    assert [reasons(i)[0][0] for i in r["item"]] == ["adjustmentreason", "denialreason"]


def test_a_voided_claim_is_a_cancelled_eob() -> None:
    r = eob(voided()[0])
    assert (r["status"], r["disposition"]) == ("cancelled", "voided")
    assert eob(paid()[0])["status"] == "active"


def test_a_secondary_claim_lists_the_prior_payer_and_cites_the_primary() -> None:
    primary, secondary = cob()
    r = eob(secondary)
    assert [(i["focal"], i["coverage"]["identifier"]["value"]) for i in r["insurance"]] == [
        (False, f"i1/{PATIENT}"),
        (True, f"i2/{PATIENT}"),
    ]
    assert r["related"] == [
        {
            "claim": {"identifier": {"system": SYSTEM_CLAIM, "value": "h1/c-1"}},
            "relationship": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship",
                        "code": "associated",
                    }
                ]
            },
        }
    ]
    assert reasons(r["item"][0]) == [("adjustmentreason", "OA", "CARC 23", Decimal("72.00"))]
    p = eob(primary)
    assert len(p["insurance"]) == 1 and "related" not in p


def test_a_replacement_relates_to_the_prior_claim() -> None:
    original, replacement = replaced()
    r = eob(replacement)
    assert [codes(x["relationship"])[1] for x in r["related"]] == ["prior"]
    assert r["related"][0]["claim"]["identifier"]["value"] == "h1/c-1"
    assert eob(original)["status"] == "cancelled"


@pytest.mark.parametrize(
    ("scenario", "carc", "rarc"),
    [
        (duplicate, "CARC 18", "RARC M86"),
        (evidence_mismatch, "CARC 16", "RARC N225"),
        (drug_not_dispensed, "CARC 16", "RARC M119"),
        (evidence_missing, "CARC 252", "RARC N706"),
    ],
)
def test_remark_codes_follow_the_denials(scenario: Any, carc: str, rarc: str) -> None:
    r = eob(scenario()[0])
    got = reasons(r["item"][0])
    assert [g[2] for g in got] == [carc, rarc]
    assert got[1][3] is None  # a remark carries no amount
    assert all(g[2].startswith("CARC") for g in reasons(eob(paid()[0])["item"][0]))


def test_evidence_and_a_drug_pack_are_shown() -> None:
    r = eob(evidence_mismatch()[0])
    assert r["supportingInfo"][0]["valueReference"]["identifier"]["value"] == "rec-x"
    d = eob(drug_not_dispensed()[0])
    assert codes(d["type"])[1] == "pharmacy"
    assert d["item"][0]["udi"] == [{"type": "Device", "display": f"(01){GTIN}(21)S1"}]
    assert "udi" not in eob(paid()[0])["item"][0]


def test_the_structure_check_refuses_an_off_spec_eob() -> None:
    bad = eob(paid()[0])
    del bad["outcome"]
    with pytest.raises(ValueError):
        ExplanationOfBenefit.model_validate(bad)


def test_an_answer_that_does_not_hold_together_is_refused() -> None:
    (c,) = paid()
    with pytest.raises(FormatError, match="paid"):
        explanation_of_benefit({**c, "paid": 10_000}, "EUR")
    with pytest.raises(FormatError, match="currency"):
        explanation_of_benefit(c, "euro")
    with pytest.raises(FormatError):
        explanation_of_benefit({**c, "items": "all"}, "EUR")


# ----------------------------------------------------------------- money and JSON
def test_money_is_exact_in_the_currency_minor_unit() -> None:
    assert money(7_200, "EUR") == {"value": Decimal("72.00"), "currency": "EUR"}
    assert money(7_200, "JPY")["value"] == Decimal("7200")
    assert str(money(-5, "KWD")["value"]) == "-0.005"


def test_dumps_writes_decimals_as_json_numbers() -> None:
    r = eob(partly_paid()[0])
    text = dumps(r)
    assert '"value": 56.00' in text and "56.0000" not in text
    assert json.loads(text, parse_float=Decimal) == r
    plain = {"a": [1, "x", None, True], "b": {}, "c": []}
    assert dumps(plain) == json.dumps(plain, indent=2, sort_keys=True)


# ----------------------------------------------------------------- PaymentReconciliation
def test_a_payment_reconciliation_lists_each_payment() -> None:
    r = payment_reconciliation(claims_of("c-1", "c-2"), currency="EUR", time_ms=T, trace="b-1")
    PaymentReconciliation.model_validate(r)
    assert (r["status"], r["outcome"], r["paymentDate"]) == ("active", "complete", "2025-03-01")
    assert r["created"] == "2025-03-01T00:00:00.000Z"
    assert r["paymentAmount"] == {"value": Decimal("80.00"), "currency": "EUR"}
    assert r["paymentIdentifier"] == {"value": "b-1"}
    assert r["paymentIssuer"]["identifier"]["value"] == "i1"
    assert r["requestor"]["identifier"]["value"] == "h1"
    assert [
        (codes(d["type"])[1], d["identifier"]["value"], d["request"]["identifier"]["value"])
        for d in r["detail"]
    ] == [("payment", "i1/pay-1", "h1/c-1"), ("payment", "i1/pay-2", "h1/c-2")]
    assert r["detail"][0]["identifier"]["system"] == SYSTEM_PAYMENT


def test_a_reversed_payment_is_offset_by_an_adjustment() -> None:
    r = payment_reconciliation(payment_reversed(), currency="EUR", time_ms=T, trace="pay-2")
    PaymentReconciliation.model_validate(r)
    assert [(codes(d["type"])[1], d["amount"]["value"]) for d in r["detail"]] == [
        ("payment", Decimal("72.00")),
        ("adjustment", Decimal("-72.00")),
        ("payment", Decimal("72.00")),
    ]
    assert r["paymentAmount"]["value"] == Decimal("72.00")
    unpaid = payment_reconciliation(denied_future(), currency="EUR", time_ms=T, trace="t")
    PaymentReconciliation.model_validate(unpaid)
    assert "detail" not in unpaid and unpaid["paymentAmount"]["value"] == Decimal("0.00")


def test_a_payment_reconciliation_is_of_one_provider_at_one_insurer() -> None:
    primary, secondary = cob()
    with pytest.raises(FormatError, match="one provider at one insurer"):
        payment_reconciliation([primary, secondary], currency="EUR", time_ms=T, trace="t")
    with pytest.raises(FormatError, match="trace"):
        payment_reconciliation([primary], currency="EUR", time_ms=T, trace="")


# ----------------------------------------------------------------- the commands
@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    fake = FakeNode()
    monkeypatch.setattr("node.cli.clients.common.request_json", fake)
    fake.routes["/v1/policies/gold"] = policy_answer()
    return fake


def test_status_format_fhir_prints_the_eob_and_json_the_answer(node: FakeNode) -> None:
    (c,) = partly_paid()
    node.routes["/v1/claims/h1/c-1"] = c
    args = ("claims", "status", "--api", API, "--provider", "h1", "--claim-id", "c-1")
    plain = run(*args)
    assert plain.exit_code == 0 and json.loads(plain.output) == c
    fhir = run(*args, "--format", "fhir")
    assert fhir.exit_code == 0, fhir.output
    assert json.loads(fhir.output, parse_float=Decimal) == explanation_of_benefit(c, "EUR")
    assert "/v1/policies/gold" in node.gets  # the currency, from the pricing policy


def test_status_format_fhir_ends_with_the_reason_for_a_bad_answer(node: FakeNode) -> None:
    node.routes["/v1/claims/h1/c-1"] = {**paid()[0], "paid": -1}
    out = run(
        "claims", "status", "--api", API, "--provider", "h1", "--claim-id", "c-1",
        "--format", "fhir",
    )  # fmt: skip
    assert out.exit_code != 0 and "cannot convert" in out.output


def test_remittance_format_fhir_prints_a_payment_reconciliation(node: FakeNode) -> None:
    (c,) = paid()
    node.routes["/v1/claims/h1/c-1"] = c
    out = run(
        "claims", "remittance", "--api", API, "--provider", "h1", "--claim-id", "c-1",
        "--format", "fhir",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    want = payment_reconciliation([c], currency="EUR", time_ms=BLOCK_TIME_MS, trace="pay-1")
    assert json.loads(out.output, parse_float=Decimal) == want
