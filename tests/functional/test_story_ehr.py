"""Functional story: health records on a 4-node network, driven only through ``hygeia``.

Layout (kept simple on purpose): ``hygeia testnet init --validators 4`` gives
node i's member the role ``MEMBER_ROLES[i]`` (hospital, manufacturer,
pharmacy, insurer). Before the first start, the test rewrites the genesis of
every home identically so that node1's member becomes a clinic, ``clinic-1``
("hospital B"); node0's member ``hospital-0`` is hospital A. The network then
runs under ``hygeia testnet start --dir`` (``cli_testnet``) and every step is a
``hygeia client`` command, as a hospital's operator would type it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from tests.functional.framework import cli_testnet, hygeia_json, run_hygeia, wait_until


def make_b_a_clinic(genesis: dict[str, Any]) -> None:
    """Node1's member becomes clinic-1 (and its validator names the new id)."""
    member = genesis["members"][1]
    for validator in genesis["validators"]:
        if validator["member"] == member["id"]:
            validator["member"] = "clinic-1"
    member.update({"id": "clinic-1", "name": "Clinic 1", "roles": ["clinic"]})


def test_health_records_story(tmp_path: Path) -> None:
    """Hospital A enrols a patient and anchors two records (one from a FHIR resource,
    salted locally); the patient grants clinic B treatment access; B's access is
    accepted; the patient revokes and B's next access is rejected (consent-revoked);
    B breaks the glass and that access is flagged; the patient's accounting of
    disclosures lists both accesses; the FHIR resource verifies against its anchor;
    every node answers the same; the first anchor's inclusion proof verifies offline."""
    with cli_testnet(tmp_path, edit_genesis=make_b_a_clinic) as meta:
        nodes = meta["nodes"]
        api_a, api_b = nodes[0]["api"], nodes[1]["api"]
        key_a = Path(nodes[0]["home"]) / "member_key.json"
        key_b = Path(nodes[1]["home"]) / "member_key.json"
        genesis = Path(nodes[0]["home"]) / "genesis.json"
        patient_key = tmp_path / "patient_key.json"

        patient = hygeia_json("client", "ehr", "patient-key", "--out", patient_key)["patient"]
        r = hygeia_json(
            "client", "ehr", "enroll", "--api", api_a, "--key", key_a, "--patient-key", patient_key
        )
        assert r["status"] == "committed" and r["result"]["status"] == "ok", r

        # hospital A anchors a lab report from a FHIR resource, and a discharge summary
        resource = tmp_path / "report.json"
        resource.write_text(json.dumps({"resourceType": "DiagnosticReport", "status": "final"}))
        first = hygeia_json(
            "client",
            "ehr",
            "record-anchor",
            "--api",
            api_a,
            "--key",
            key_a,
            "--record-id",
            "rpt-001",
            "--patient",
            patient,
            "--fhir",
            resource,
        )
        assert first["result"]["status"] == "ok", first
        salt = Path(str(resource) + ".salt")
        assert salt.exists() and (salt.stat().st_mode & 0o777) == 0o600
        second = hygeia_json(
            "client",
            "ehr",
            "record-anchor",
            "--api",
            api_a,
            "--key",
            key_a,
            "--record-id",
            "dis-001",
            "--patient",
            patient,
            "--type",
            "18842-5",
            "--commitment",
            "ab" * 32,
        )
        assert second["result"]["status"] == "ok", second

        # the patient grants clinic B treatment access; B logs an access
        grant = hygeia_json(
            "client",
            "ehr",
            "consent-grant",
            "--api",
            api_b,
            "--key",
            patient_key,
            "--grantee",
            "clinic-1",
            "--purpose",
            "TREAT",
            "--valid-for",
            "3600",
        )
        consent = grant["result"]["data"]["consent_id"]
        may = hygeia_json(
            "client",
            "ehr",
            "may-access",
            "rpt-001",
            "--api",
            api_b,
            "--member",
            "clinic-1",
            "--purpose",
            "TREAT",
        )
        assert may["allowed"] is True and may["consent_id"] == consent
        access = ("client", "ehr", "access", "--api", api_b, "--key", key_b,
                  "--record", "rpt-001", "--purpose", "TREAT", "--consent", consent)  # fmt: skip
        acc = hygeia_json(*access)
        assert acc["result"]["status"] == "ok", acc

        # the patient revokes; B's next access is rejected with the reason
        rev = hygeia_json(
            "client",
            "ehr",
            "consent-revoke",
            "--api",
            api_a,
            "--key",
            patient_key,
            "--consent",
            consent,
        )
        assert rev["result"]["status"] == "ok", rev
        denied = run_hygeia(*access, ok=False)  # the same access again
        assert denied.returncode == 1
        assert json.loads(denied.stdout)["result"]["code"] == "consent-revoked"

        # break-glass by B: accepted without consent, flagged
        em = hygeia_json(
            "client",
            "ehr",
            "emergency",
            "--api",
            api_b,
            "--key",
            key_b,
            "--record",
            "dis-001",
            "--reason",
            "ETREAT",
            "--minutes",
            "30",
        )
        assert em["result"]["data"]["emergency"] is True
        height = em["height"]

        # the patient's accounting of disclosures lists all of it, on every node
        want = [
            ("access", False, "rpt-001", "clinic-1", "TREAT", consent),
            ("emergency", True, "dis-001", "clinic-1", "ETREAT", None),
        ]
        for node in nodes:
            wait_until(
                f"the emergency access committed on {node['name']}",
                functools.partial(  # exit status 1 while the node does not know it
                    hygeia_json, "client", "tx", em["hash"], "--api", node["api"], ok=False
                ),
                lambda st: st["status"] == "committed",
            )
            d = hygeia_json(
                "client", "ehr", "disclosures", "--api", node["api"], "--patient-key", patient_key
            )["disclosures"]
            got = [
                (
                    e["kind"],
                    e["emergency"],
                    e["record_id"],
                    e["agent"],
                    e["purpose"],
                    e["consent_id"],
                )
                for e in d
            ]
            assert got == want, (node["name"], d)
            audit = hygeia_json("client", "ehr", "emergencies", "--api", node["api"])
            assert [e["height"] for e in audit["emergency_accesses"]] == [height]
        # a patient's consents are read by signed requests only (docs/privacy.md): unsigned
        # is refused, the grantee clinic B may not, hospital A (the enroller) may
        ask = ("client", "ehr", "consents", "--api", api_a, "--patient", patient)
        refused = run_hygeia(*ask, ok=False)
        assert refused.returncode == 1 and "401 signature-required" in refused.stderr
        refused = run_hygeia(*ask, "--key", key_b, ok=False)
        assert refused.returncode == 1 and "403 not-entitled" in refused.stderr
        consents = hygeia_json(*ask, "--key", key_a)
        assert consents["consents"][0]["status"] == "inactive"
        assert consents["consents"][0]["revoked"] is not None

        # the FHIR resource (with its salt) verifies; a changed resource does not
        v = hygeia_json("client", "ehr", "verify", "--api", api_b, "--fhir", resource)
        assert (v["anchored"], v["record_id"], v["version"], v["custodian"]) == (
            True,
            "rpt-001",
            1,
            "hospital-0",
        )
        resource.write_text(json.dumps({"resourceType": "DiagnosticReport", "status": "amended"}))
        changed = run_hygeia(
            "client", "ehr", "verify", "--api", api_b, "--fhir", resource, ok=False
        )
        assert changed.returncode == 1

        # a proof of the first anchor verifies offline against genesis
        proof = tmp_path / "proof.json"
        run_hygeia("client", "proof", first["hash"], "--api", nodes[2]["api"], "--out", proof)
        out = run_hygeia("proof", "verify", proof, "--genesis", genesis)
        assert out.stdout.startswith("VALID") and first["hash"] in out.stdout
