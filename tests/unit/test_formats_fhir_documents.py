"""Record anchors as FHIR R4 DocumentReferences (node/ops/formats/fhir_documents.py):
identifiers, status, replaces, erasure, the commitment kept out of attachment.hash,
FHIR R4 structure (fhir.resources R4B models), and ``ehr history --format fhir``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from node.ops.formats.fhir_common import (
    EXT_ERASED,
    LOINC,
    RESOURCE_TYPES,
    SYSTEM_COMMITMENT,
    SYSTEM_MEMBER,
    SYSTEM_PATIENT_KEY,
    SYSTEM_RECORD,
    SYSTEM_VERSION,
)
from node.ops.formats.fhir_documents import document_reference, history_to_bundle
from tests.unit.test_cli_client import API, FakeNode, run

KEY = "ab" * 32
V1, V2 = "11" * 32, "33" * 32


def version(n: int, type_: str = "Observation") -> dict[str, Any]:
    vid, replaces = (V1, None) if n == 1 else (V2, V1)
    return {
        "record_id": "rpt-1",
        "patient": KEY,
        "custodian": "hospital-1",
        "type": type_,
        "version": n,
        "version_id": vid,
        "replaces": replaces,
        "commitment": f"{n}c" * 32,
        "height": 3 + n,
        "time": 1_700_000_000_000 + n,
        "tx": vid,
    }


def history(erased: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"record_id": "rpt-1", "erased": erased, "versions": [version(1), version(2, "11506-3")]}


def test_identifiers_subject_custodian_and_date() -> None:
    d = document_reference(version(1), latest=1)
    assert d["id"] == V1
    assert d["masterIdentifier"] == {"system": SYSTEM_VERSION, "value": V1}
    assert d["identifier"] == [
        {"system": SYSTEM_RECORD, "value": "rpt-1"},
        {"system": SYSTEM_COMMITMENT, "value": "1c" * 32},
    ]
    assert d["subject"] == {"identifier": {"system": SYSTEM_PATIENT_KEY, "value": KEY}}
    assert d["custodian"] == {"identifier": {"system": SYSTEM_MEMBER, "value": "hospital-1"}}
    assert d["date"] == "2023-11-14T22:13:20.001Z"


def test_the_commitment_is_never_in_attachment_hash() -> None:
    """FHIR's attachment.hash is a base64 SHA-1 of the bytes; the salted SHA-256 is not one."""
    for n in (1, 2):
        attachment = document_reference(version(n), latest=2)["content"][0]["attachment"]
        assert "hash" not in attachment and "1c" * 32 not in json.dumps(attachment)


def test_type_is_loinc_or_a_resource_type() -> None:
    fhir = document_reference(version(1), latest=1)
    assert fhir["type"]["coding"] == [{"system": RESOURCE_TYPES, "code": "Observation"}]
    assert fhir["content"][0]["attachment"]["contentType"] == "application/fhir+json"
    loinc = document_reference(version(2, "11506-3"), latest=2)
    assert loinc["type"]["coding"] == [{"system": LOINC, "code": "11506-3"}]
    assert "contentType" not in loinc["content"][0]["attachment"]


def test_the_latest_version_is_current_and_replaces_the_one_before() -> None:
    b = history_to_bundle(history())
    first, second = (e["resource"] for e in b["entry"])
    assert (first["status"], second["status"]) == ("superseded", "current")
    assert "relatesTo" not in first
    assert second["relatesTo"] == [
        {"code": "replaces", "target": {"identifier": {"system": SYSTEM_VERSION, "value": V1}}}
    ]
    # a page that stops short of the latest version: told by the caller
    paged = history_to_bundle({**history(), "versions": [version(2)]}, latest=3)
    assert paged["entry"][0]["resource"]["status"] == "superseded"


def test_an_erased_record_carries_the_reason_and_entered_in_error_only_for_that() -> None:
    erased = {"height": 9, "time": 5, "reason": "patient-request", "tx": "99" * 32}
    b = history_to_bundle(history(erased))
    for e in b["entry"]:
        assert e["resource"]["extension"] == [{"url": EXT_ERASED, "valueCode": "patient-request"}]
        assert e["resource"]["status"] in ("current", "superseded")
    wrong = history_to_bundle(history({**erased, "reason": "entered-in-error"}))
    assert {e["resource"]["status"] for e in wrong["entry"]} == {"entered-in-error"}
    assert all("extension" not in e["resource"] for e in history_to_bundle(history())["entry"])


def test_the_bundle_is_valid_fhir_r4() -> None:
    for answer in (
        history(),
        history({"height": 9, "time": 5, "reason": "legal-order", "tx": "9"}),
    ):
        parsed = Bundle.model_validate(history_to_bundle(answer))
        assert [type(e.resource).__name__ for e in parsed.entry or []] == ["DocumentReference"] * 2
    bad = document_reference(version(1), latest=1)
    del bad["content"]  # required 1..*
    with pytest.raises(ValueError):
        Bundle.model_validate(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": bad}]}
        )


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    fake = FakeNode()
    monkeypatch.setattr("node.cli.clients.common.request_json", fake)
    return fake


def test_history_format_fhir_asks_for_the_latest_version(node: FakeNode) -> None:
    node.routes["/v1/ehr/records/rpt-1/history"] = {**history(), "versions": [version(1)]}
    node.routes["/v1/ehr/records/rpt-1"] = version(2)
    result = run("ehr", "history", "rpt-1", "--api", API, "--format", "fhir")
    assert result.exit_code == 0, result.output
    entry = json.loads(result.output)["entry"]
    assert len(entry) == 1 and entry[0]["resource"]["status"] == "superseded"
    plain = run("ehr", "history", "rpt-1", "--api", API)
    assert json.loads(plain.output)["versions"] == [version(1)]
