"""FHIR R4 Consent <-> consent.grant (node/ops/formats/fhir_consent.py): every mapping
rule with a document it accepts and one it refuses, the round trip, the ledger's
schema, FHIR R4 structure (fhir.resources, R4B models) and the CLI's import-consent."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent

from node.core.keys import generate_key, load_key, public_key_hex, save_key
from node.ledger.domains.ehr import CONSENT_GRANT
from node.ops.formats import FormatError
from node.ops.formats.fhir_common import (
    CONSENT_ACTION,
    CONSENT_SCOPE,
    LOINC,
    RESOURCE_TYPES,
    SYSTEM_MEMBER,
    SYSTEM_PATIENT_KEY,
    SYSTEM_RECORD,
    V3_ACT_REASON,
    V3_PARTICIPATION_TYPE,
)
from node.ops.formats.fhir_consent import consent_to_fhir, consent_to_grant
from tests.unit.test_cli_client import API, TX_HASH, FakeNode, run

KEY = "ab" * 32
START, END = 1_700_000_000_000, 1_731_536_000_000


def fhir_consent(**provision: Any) -> dict[str, Any]:
    """A privacy consent permitting clinic-1 to access for treatment, 2023-11-14..2024-11-13."""
    base: dict[str, Any] = {
        "type": "permit",
        "period": {"start": "2023-11-14T22:13:20.000Z", "end": "2024-11-13T22:13:19.999Z"},
        "actor": [
            {
                "role": {"coding": [{"system": V3_PARTICIPATION_TYPE, "code": "IRCP"}]},
                "reference": {"identifier": {"system": SYSTEM_MEMBER, "value": "clinic-1"}},
            }
        ],
        "purpose": [{"system": V3_ACT_REASON, "code": "TREAT"}],
    }
    base.update(provision)
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
        "patient": {"reference": "Patient/123", "display": "Jane Doe"},
        "policyRule": {"coding": [{"system": "x", "code": "OPTIN"}]},
        "provision": {k: v for k, v in base.items() if v is not None},
    }


def refused(resource: Any, where: str) -> str:
    with pytest.raises(FormatError) as info:
        consent_to_grant(resource, KEY)
    assert info.value.path == where, str(info.value)
    return str(info.value)


# ----------------------------------------------------------------- the mapping
def test_a_privacy_consent_becomes_a_grant_of_scope_all() -> None:
    """Actor -> grantee, purposes -> purpose, period -> integer ms (end made exclusive)."""
    body = consent_to_grant(fhir_consent(), KEY)
    assert body == {
        "grantee": "clinic-1",
        "scope": "all",
        "purpose": ["TREAT"],
        "period": {"start": START, "end": END},
    }
    CONSENT_GRANT.schema.check(body, "body")  # the ledger's own schema accepts it


def test_the_patient_is_never_copied_and_no_personal_data_is_sent() -> None:
    """Consent.patient (a name, a server reference) stays out of the body; a key in our
    pseudonym system must be the signer's."""
    doc = fhir_consent()
    text = json.dumps(consent_to_grant(doc, KEY))
    assert "Jane" not in text and "Patient/123" not in text and KEY not in text
    doc["patient"] = {"identifier": {"system": SYSTEM_PATIENT_KEY, "value": KEY.upper()}}
    assert consent_to_grant(doc, KEY)["grantee"] == "clinic-1"
    doc["patient"]["identifier"]["value"] = "cd" * 32
    refused(doc, "patient.identifier")
    with pytest.raises(FormatError, match="64 lowercase hex"):
        consent_to_grant(fhir_consent(), "Jane Doe")


def test_resource_type_status_and_scope() -> None:
    assert consent_to_grant(fhir_consent(), KEY)
    refused({**fhir_consent(), "resourceType": "Patient"}, "resourceType")
    refused([], "Consent")
    for status in ("proposed", "draft", "rejected", "inactive", "entered-in-error"):
        refused({**fhir_consent(), "status": status}, "status")
    research = {"coding": [{"system": CONSENT_SCOPE, "code": "research"}]}
    refused({**fhir_consent(), "scope": research}, "scope")
    refused({k: v for k, v in fhir_consent().items() if k != "scope"}, "scope")


def test_only_a_permit_provision_is_granted() -> None:
    refused(fhir_consent(type="deny"), "provision.type")
    refused(fhir_consent(type=None), "provision.type")
    refused({k: v for k, v in fhir_consent().items() if k != "provision"}, "provision")


@pytest.mark.parametrize(
    "element, value",
    [
        ("securityLabel", [{"system": "http://x", "code": "R"}]),
        ("code", [{"coding": [{"system": LOINC, "code": "11506-3"}]}]),
        ("dataPeriod", {"start": "2020-01-01"}),
        ("provision", [{"type": "deny"}]),
        ("modifierExtension", [{"url": "http://x", "valueBoolean": True}]),
    ],
)
def test_restrictions_the_ledger_cannot_enforce_are_refused(element: str, value: Any) -> None:
    """A narrowing the ledger cannot express is refused, never dropped (no wider grant)."""
    refused(fhir_consent(**{element: value}), f"provision.{element}")


def test_a_modifier_extension_on_the_consent_is_refused() -> None:
    refused({**fhir_consent(), "modifierExtension": [{"url": "http://x"}]}, "modifierExtension")


def test_one_recipient_actor_named_by_member_identifier() -> None:
    doc = fhir_consent()
    actor = doc["provision"]["actor"][0]
    two = fhir_consent(actor=[actor, copy.deepcopy(actor)])
    assert "has 2 actors" in refused(two, "provision.actor")
    refused(fhir_consent(actor=None), "provision.actor")
    prcp = copy.deepcopy(actor)
    prcp["role"]["coding"][0]["code"] = "PRCP"
    assert consent_to_grant(fhir_consent(actor=[prcp]), KEY)["grantee"] == "clinic-1"
    custodian = copy.deepcopy(actor)
    custodian["role"]["coding"][0]["code"] = "CST"
    refused(fhir_consent(actor=[custodian]), "provision.actor[0].role")
    literal = {**actor, "reference": {"reference": "Organization/42"}}
    refused(fhir_consent(actor=[literal]), "provision.actor[0].reference.identifier")
    npi = copy.deepcopy(actor)
    npi["reference"]["identifier"]["system"] = "http://hl7.org/fhir/sid/us-npi"
    refused(fhir_consent(actor=[npi]), "provision.actor[0].reference.identifier.system")
    bad = copy.deepcopy(actor)
    bad["reference"]["identifier"]["value"] = "Dr. Jane Doe"
    refused(fhir_consent(actor=[bad]), "provision.actor[0].reference.identifier.value")


def test_purposes_are_v3_act_reason_codes_of_the_ledger() -> None:
    two = [
        {"system": V3_ACT_REASON, "code": "HRESCH"},
        {"system": V3_ACT_REASON, "code": "TREAT"},
        {"system": V3_ACT_REASON, "code": "TREAT"},
    ]
    assert consent_to_grant(fhir_consent(purpose=two), KEY)["purpose"] == ["HRESCH", "TREAT"]
    refused(
        fhir_consent(purpose=[{"system": "http://x", "code": "TREAT"}]),
        "provision.purpose[0].system",
    )
    refused(
        fhir_consent(purpose=[{"system": V3_ACT_REASON, "code": "MARKT"}]),
        "provision.purpose[0].code",
    )
    refused(fhir_consent(purpose=None), "provision.purpose")


def test_the_period_maps_to_integer_ms_with_an_exclusive_end() -> None:
    days = fhir_consent(period={"start": "2024-01-01", "end": "2024-01-31"})
    period = consent_to_grant(days, KEY)["period"]
    assert period == {"start": 1_704_067_200_000, "end": 1_706_745_600_000}  # Feb 1, 00:00 UTC
    assert all(isinstance(v, int) for v in period.values())
    open_start = fhir_consent(period={"end": "2024-01-31"})
    assert consent_to_grant(open_start, KEY)["period"]["start"] == 0
    refused(fhir_consent(period={"start": "2024-01-01"}), "provision.period.end")
    refused(fhir_consent(period=None), "provision.period")
    refused(fhir_consent(period={"start": "2024-02-01", "end": "2024-01-31"}), "provision.period")
    refused(fhir_consent(period={"end": "2024-01-31T10:00:00"}), "provision.period.end")


def test_an_action_must_permit_access() -> None:
    access = [{"coding": [{"system": CONSENT_ACTION, "code": "access"}]}]
    assert consent_to_grant(fhir_consent(action=access), KEY)["scope"] == "all"
    correct = [{"coding": [{"system": CONSENT_ACTION, "code": "correct"}]}]
    refused(fhir_consent(action=correct), "provision.action")


def test_data_by_record_identifier_is_scope_records() -> None:
    data = [
        {"meaning": "instance", "reference": {"identifier": {"system": SYSTEM_RECORD, "value": r}}}
        for r in ("rpt-2", "rpt-1", "rpt-2")
    ]
    body = consent_to_grant(fhir_consent(data=data), KEY)
    assert (body["scope"], body["data"]) == ("records", ["rpt-1", "rpt-2"])
    CONSENT_GRANT.schema.check(body, "body")
    related = [{**data[0], "meaning": "related"}]
    refused(fhir_consent(data=related), "provision.data[0].meaning")
    literal = [{"meaning": "instance", "reference": {"reference": "DocumentReference/1"}}]
    refused(fhir_consent(data=literal), "provision.data[0].reference.identifier")
    many = [
        {
            "meaning": "instance",
            "reference": {"identifier": {"system": SYSTEM_RECORD, "value": f"r{i}"}},
        }
        for i in range(65)
    ]
    refused(fhir_consent(data=many), "provision.data")
    refused(
        fhir_consent(data=data, **{"class": [{"system": LOINC, "code": "11506-3"}]}), "provision"
    )


def test_class_by_resource_type_or_loinc_is_scope_types() -> None:
    classes = [
        {"system": RESOURCE_TYPES, "code": "Observation"},
        {"system": LOINC, "code": "11506-3"},
    ]
    body = consent_to_grant(fhir_consent(**{"class": classes}), KEY)
    assert (body["scope"], body["class"]) == ("types", ["11506-3", "Observation"])
    CONSENT_GRANT.schema.check(body, "body")
    refused(
        fhir_consent(**{"class": [{"system": "http://snomed.info/sct", "code": "X"}]}),
        "provision.class[0].system",
    )
    refused(
        fhir_consent(**{"class": [{"system": RESOURCE_TYPES, "code": "not a type"}]}),
        "provision.class[0].code",
    )


# ----------------------------------------------------------------- export and structure
@pytest.mark.parametrize(
    "scope, extra",
    [("all", {}), ("records", {"data": ["rpt-1", "rpt-2"]}), ("types", {"class": ["Observation"]})],
)
def test_export_is_valid_fhir_r4_and_imports_back_to_the_same_grant(
    scope: str, extra: dict[str, Any]
) -> None:
    body = {
        "grantee": "clinic-1",
        "scope": scope,
        "purpose": ["COC", "TREAT"],
        "period": {"start": START, "end": END},
        **extra,
    }
    stored = {
        "data": [],
        "class": [],
        **body,
        "patient": KEY,
        "consent_id": "cd" * 32,
        "time": START,
        "revoked": None,
        "status": "active",
    }
    resource = consent_to_fhir(stored)
    Consent.model_validate(resource)
    assert resource["patient"]["identifier"] == {"system": SYSTEM_PATIENT_KEY, "value": KEY}
    assert consent_to_grant(resource, KEY) == body


def test_an_exported_revoked_consent_is_inactive_and_not_imported() -> None:
    stored = {
        "grantee": "clinic-1",
        "scope": "all",
        "purpose": ["TREAT"],
        "data": [],
        "class": [],
        "period": {"start": START, "end": END},
        "patient": KEY,
        "revoked": {"height": 9},
    }
    resource = consent_to_fhir(stored)
    assert resource["status"] == "inactive"
    refused(resource, "status")


def test_the_structure_check_itself_refuses_off_spec_documents() -> None:
    """fhir.resources does refuse an unknown element and a missing required one (so the
    validations above mean something)."""
    resource = consent_to_fhir(
        {
            "grantee": "c",
            "scope": "all",
            "purpose": ["TREAT"],
            "patient": KEY,
            "period": {"start": START, "end": END},
        }
    )
    with pytest.raises(ValueError):
        Consent.model_validate({**resource, "grantee": "c"})
    with pytest.raises(ValueError):
        Consent.model_validate({k: v for k, v in resource.items() if k != "scope"})
    with pytest.raises(ValueError):
        Bundle.model_validate(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {**resource, "bogus": 1}}],
            }
        )


# ----------------------------------------------------------------- the command
@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    fake = FakeNode()
    monkeypatch.setattr("node.cli.clients.common.request_json", fake)
    return fake


def test_import_consent_signs_the_mapped_grant_with_the_patient_key(
    node: FakeNode, tmp_path: Path
) -> None:
    key_file, doc = tmp_path / "patient.json", tmp_path / "consent.json"
    save_key(key_file, generate_key())
    pub = public_key_hex(load_key(key_file))
    doc.write_text(json.dumps(fhir_consent()))
    dry = run(
        "ehr",
        "import-consent",
        "--api",
        API,
        "--key",
        str(key_file),
        "--fhir-consent",
        str(doc),
        "--dry-run",
    )
    assert dry.exit_code == 0 and json.loads(dry.output)["grantee"] == "clinic-1"
    assert node.posted == []
    result = run(
        "ehr", "import-consent", "--api", API, "--key", str(key_file), "--fhir-consent", str(doc)
    )
    assert result.exit_code == 0, result.output
    assert TX_HASH in result.output
    tx = node.posted[-1]
    assert tx["type"] == "consent.grant" and tx["signer"] == pub
    assert tx["body"] == consent_to_grant(fhir_consent(), pub)


def test_import_consent_refuses_an_unmappable_consent_and_sends_nothing(
    node: FakeNode, tmp_path: Path
) -> None:
    key_file, doc = tmp_path / "patient.json", tmp_path / "consent.json"
    save_key(key_file, generate_key())
    doc.write_text(json.dumps(fhir_consent(type="deny")))
    result = run(
        "ehr", "import-consent", "--api", API, "--key", str(key_file), "--fhir-consent", str(doc)
    )
    assert result.exit_code != 0 and "provision.type" in result.output
    doc.write_text("{not json")
    result = run(
        "ehr", "import-consent", "--api", API, "--key", str(key_file), "--fhir-consent", str(doc)
    )
    assert result.exit_code != 0 and "cannot import" in result.output
    assert node.posted == []


def test_consents_format_fhir_prints_consents_and_refuses_an_unwritable_time(
    node: FakeNode,
) -> None:
    stored = {
        "consent_id": "cd" * 32,
        "patient": KEY,
        "grantee": "clinic-1",
        "scope": "all",
        "data": [],
        "class": [],
        "purpose": ["TREAT"],
        "period": {"start": START, "end": END},
        "height": 3,
        "time": START,
        "revoked": None,
        "status": "active",
    }
    node.routes[f"/v1/ehr/patients/{KEY}/consents"] = {
        "patient": KEY,
        "time": START,
        "consents": [stored],
    }
    result = run("ehr", "consents", "--api", API, "--patient", KEY, "--format", "fhir")
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.output)
    Bundle.model_validate(bundle)
    assert bundle["entry"][0]["resource"] == consent_to_fhir(stored)
    far = {**stored, "period": {"start": START, "end": 10**18}}
    node.routes[f"/v1/ehr/patients/{KEY}/consents"]["consents"] = [far]
    result = run("ehr", "consents", "--api", API, "--patient", KEY, "--format", "fhir")
    assert result.exit_code != 0 and "cannot convert to FHIR R4" in result.output
