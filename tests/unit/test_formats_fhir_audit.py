"""The accounting of disclosures as FHIR R4 AuditEvents (node/ops/formats/fhir_audit.py):
break-glass flagged or not, the review extension, entities, FHIR R4 structure
(fhir.resources R4B models), and ``hygeia client ehr disclosures --format fhir``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from node.ops.formats.fhir_audit import audit_event, disclosures_to_bundle
from node.ops.formats.fhir_common import (
    EXT_REVIEW,
    SYSTEM_CHAIN,
    SYSTEM_CONSENT,
    SYSTEM_MEMBER,
    SYSTEM_PATIENT_KEY,
    SYSTEM_RECORD,
    V3_ACT_REASON,
)
from tests.unit.test_cli_client import API, FakeNode, run

KEY = "ab" * 32
T = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z


def event(kind: str = "access", **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": kind,
        "emergency": kind == "emergency",
        "record_id": "rpt-1",
        "version": 2,
        "agent": "clinic-1",
        "purpose": "TREAT",
        "consent_id": "cd" * 32,
        "reason": None,
        "period": None,
        "patient": KEY,
        "height": 7,
        "time": T,
        "tx": "ee" * 32,
    }
    if kind == "emergency":
        base |= {
            "purpose": "ETREAT",
            "reason": "ETREAT",
            "consent_id": None,
            "review": None,
            "period": {"start": T, "end": T + 3_600_000},
        }
    return base | extra


def purposes(resource: dict[str, Any]) -> list[str]:
    return [c["coding"][0]["code"] for c in resource["purposeOfEvent"]]


def test_an_access_under_consent_is_a_successful_read_not_flagged() -> None:
    r = audit_event(event(), "hygeia-test")
    assert (r["id"], r["action"], r["outcome"]) == ("ee" * 32, "R", "0")
    assert r["recorded"] == "2023-11-14T22:13:20.123Z"
    assert purposes(r) == ["TREAT"] and "period" not in r and "extension" not in r
    assert r["purposeOfEvent"][0]["coding"][0]["system"] == V3_ACT_REASON
    assert r["agent"] == [
        {
            "who": {"identifier": {"system": SYSTEM_MEMBER, "value": "clinic-1"}},
            "requestor": True,
            "purposeOfUse": r["purposeOfEvent"],
        }
    ]
    assert r["source"]["observer"]["identifier"] == {"system": SYSTEM_CHAIN, "value": "hygeia-test"}
    whats = [e["what"]["identifier"] for e in r["entity"]]
    assert whats == [
        {"system": SYSTEM_RECORD, "value": "rpt-1"},
        {"system": SYSTEM_PATIENT_KEY, "value": KEY},
        {"system": SYSTEM_CONSENT, "value": "cd" * 32},
    ]
    assert r["entity"][0]["detail"] == [{"type": "version", "valueString": "2"}]


def test_a_break_glass_access_is_flagged_btg_with_its_window() -> None:
    r = audit_event(event("emergency"), "hygeia-test")
    assert purposes(r) == ["ETREAT", "BTG"]
    assert r["period"] == {"start": "2023-11-14T22:13:20.123Z", "end": "2023-11-14T23:13:20.122Z"}
    assert len(r["entity"]) == 2  # no consent
    btg = audit_event(event("emergency", purpose="BTG", reason="BTG"), "c")
    assert purposes(btg) == ["BTG"]  # flagged once


def test_the_review_finding_is_carried_once_the_review_is_closed() -> None:
    assert "extension" not in audit_event(event("emergency"), "c")
    reviewed = event("emergency", review={"finding": "unjustified", "reviewer": "auditor-1"})
    assert audit_event(reviewed, "c")["extension"] == [
        {"url": EXT_REVIEW, "valueCode": "unjustified"}
    ]


def test_a_custodian_access_has_no_consent_entity() -> None:
    r = audit_event(event("custodian", consent_id=None), "c")
    assert purposes(r) == ["TREAT"] and len(r["entity"]) == 2


@pytest.mark.parametrize("type_", ["collection", "searchset"])
def test_the_bundle_is_valid_fhir_r4(type_: str) -> None:
    answer = {
        "patient": KEY,
        "disclosures": [
            event(),
            event("emergency", tx="ff" * 32),
            event("custodian", consent_id=None),
        ],
    }
    b = disclosures_to_bundle(answer, "hygeia-test", type_)
    parsed = Bundle.model_validate(b)
    assert parsed.type == type_ and len(parsed.entry or []) == 3
    assert [e["resource"]["resourceType"] for e in b["entry"]] == ["AuditEvent"] * 3
    assert ("total" in b) == (type_ == "searchset")
    empty = disclosures_to_bundle({"patient": KEY, "disclosures": []}, "c")
    Bundle.model_validate(empty)
    assert "entry" not in empty


def test_the_bundle_check_refuses_an_off_spec_audit_event() -> None:
    """An AuditEvent without its required ``source`` is refused by the structure check."""
    bad = audit_event(event(), "c")
    del bad["source"]
    with pytest.raises(ValueError):
        Bundle.model_validate(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": bad}]}
        )


# ----------------------------------------------------------------- the command
@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    fake = FakeNode()
    monkeypatch.setattr("node.cli.clients.common.request_json", fake)
    return fake


def test_disclosures_format_fhir_prints_a_bundle_and_json_the_answer(node: FakeNode) -> None:
    answer = {"patient": KEY, "disclosures": [event("emergency")]}
    node.routes[f"/v1/ehr/patients/{KEY}/disclosures"] = answer
    plain = run("ehr", "disclosures", "--api", API, "--patient", KEY)
    assert plain.exit_code == 0 and json.loads(plain.output) == answer
    fhir = run("ehr", "disclosures", "--api", API, "--patient", KEY, "--format", "fhir")
    assert fhir.exit_code == 0, fhir.output
    assert json.loads(fhir.output) == disclosures_to_bundle(answer, "hygeia-test")
