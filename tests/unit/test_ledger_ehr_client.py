"""Health records: the client's local commitments and the queries' place in the OpenAPI document."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import click
import pytest

from node.api.openapi import openapi_document
from node.cli.clients import ehr as client
from node.core.codec import canonical_json


def test_fhir_commitment_is_salted_sha256_of_canonical_json(tmp_path: Path) -> None:
    """The commitment is SHA-256(salt || canonical JSON), whatever the file's layout."""
    resource = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    pretty, compact = tmp_path / "a.json", tmp_path / "b.json"
    pretty.write_text(json.dumps(resource, indent=4))
    compact.write_text(json.dumps(resource, separators=(",", ":"), sort_keys=True))
    data_a, parsed = client.fhir_bytes(pretty)
    data_b, _ = client.fhir_bytes(compact)
    assert data_a == data_b == canonical_json(resource) and parsed == resource
    salt = b"\x07" * 32
    assert client.commitment_of(salt, data_a) == hashlib.sha256(salt + data_a).hexdigest()
    assert client.salt_path(pretty) == tmp_path / "a.json.salt"


def test_fhir_refuses_non_resources_and_decimals(tmp_path: Path) -> None:
    """No resourceType, or a decimal (no canonical JSON), is a clear error pointing to --file."""
    f = tmp_path / "r.json"
    f.write_text('{"status": "final"}')
    with pytest.raises(click.ClickException, match="resourceType"):
        client.fhir_bytes(f)
    f.write_text('{"resourceType": "Observation", "valueQuantity": {"value": 7.2}}')
    with pytest.raises(click.ClickException, match="--file"):
        client.fhir_bytes(f)


def test_salt_file_is_read_back_and_checked(tmp_path: Path) -> None:
    """A salt file holds 32 bytes in hex; anything else is refused."""
    good, bad = tmp_path / "good.salt", tmp_path / "bad.salt"
    good.write_text("ab" * 32 + "\n")
    bad.write_text("abcd\n")
    assert client.read_salt(good) == b"\xab" * 32
    with pytest.raises(click.ClickException):
        client.read_salt(bad)


def test_ehr_queries_are_in_the_openapi_document() -> None:
    """Every health-records query is listed under /v1 in the OpenAPI document."""
    paths = openapi_document()["paths"]
    for p in (
        "/v1/ehr/records/{record_id}",
        "/v1/ehr/records/{record_id}/history",
        "/v1/ehr/records/{record_id}/may-access",
        "/v1/ehr/versions/{version_id}",
        "/v1/ehr/commitments/{commitment}",
        "/v1/ehr/patients/{key}",
        "/v1/ehr/patients/{key}/consents",
        "/v1/ehr/patients/{key}/disclosures",
        "/v1/ehr/emergency-accesses",
    ):
        assert p in paths, p
