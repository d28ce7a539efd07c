"""Functional story: a record travels between hospitals under the patient's consent,
on 4 real node processes, driven through ``hygeia`` (docs/document-exchange.md).

Layout: ``hygeia testnet init --validators 4``, then the genesis is rewritten
before the first start so that node0's member is hospital A (``hospital-0``),
node1's hospital B (``hospital-1``) and node3's a clinic (``clinic-3``). Each
institution talks to its own node. It checks that:

- A publishes a FHIR resource with ``hygeia client ehr publish``; the patient
  grants B ``TREAT``; ``hygeia client ehr fetch`` on B's node commits B's ticket,
  fetches the document from A's node, checks the commitment and writes the very
  bytes A published;
- the patient revokes: B's next fetch with the same ticket is refused
  (``consent-revoked``);
- the clinic breaks the glass (a 4 s window) and fetches inside the window, and
  is refused (``emergency-expired``) once block time has passed it;
- A erases the record: every fetch answers ``erased``, and A's store no longer
  holds the version;
- the patient's accounting of disclosures lists exactly the tickets of the
  successful fetches, on every node.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from pathlib import Path
from typing import Any

from node.core.keys import load_key
from node.core.tx import build_tx
from tests.functional.framework import cli_testnet, hygeia_json, run_hygeia, wait_until

WINDOW_MS = 4_000


def three_institutions(genesis: dict[str, Any]) -> None:
    """Node1's member becomes hospital-1 and node3's clinic-3 (validators follow)."""
    for index, (new_id, role) in {1: ("hospital-1", "hospital"), 3: ("clinic-3", "clinic")}.items():
        member = genesis["members"][index]
        for validator in genesis["validators"]:
            if validator["member"] == member["id"]:
                validator["member"] = new_id
        member.update({"id": new_id, "name": new_id.title(), "roles": [role]})


def _fetch_args(api: str, key: Path, version: str, out: Path, *extra: str | Path) -> list[Any]:
    return [
        "client", "ehr", "fetch", "--api", api, "--key", key,
        "--version", version, "--out", out, *extra,
    ]  # fmt: skip


def _refused(args: list[Any]) -> str:
    """The refusal code a failing ``hygeia client ehr fetch`` reports."""
    done = run_hygeia(*args, ok=False)
    assert done.returncode == 1, (done.stdout, done.stderr)
    return done.stdout + done.stderr


def _wait_committed(api: str, tx_hash: str) -> dict[str, Any]:
    status: dict[str, Any] = wait_until(
        f"tx {tx_hash[:12]} committed on {api}",
        lambda: hygeia_json("client", "tx", tx_hash, "--api", api, ok=False),  # 1: unknown
        lambda st: st["status"] == "committed",
    )
    return status


def _block_time(api: str, height: int) -> int:
    with urllib.request.urlopen(f"{api}/v1/blocks/{height}", timeout=10) as resp:
        return int(json.loads(resp.read())["header"]["timestamp"])


def _post_tx(api: str, wire: bytes) -> None:
    req = urllib.request.Request(
        f"{api}/v1/txs", data=wire, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 202


def test_document_exchange_story(tmp_path: Path) -> None:
    with cli_testnet(tmp_path, edit_genesis=three_institutions) as meta:
        nodes = meta["nodes"]
        api_a, api_b, api_c = nodes[0]["api"], nodes[1]["api"], nodes[3]["api"]
        home_a = Path(nodes[0]["home"])
        key_a, key_b, key_c = (Path(nodes[i]["home"]) / "member_key.json" for i in (0, 1, 3))
        patient_key = tmp_path / "patient_key.json"
        patient = hygeia_json("client", "ehr", "patient-key", "--out", patient_key)["patient"]
        enrol = hygeia_json(
            "client", "ehr", "enroll", "--api", api_a, "--key", key_a, "--patient-key", patient_key
        )
        assert enrol["result"]["status"] == "ok", enrol

        # hospital A publishes (decimals kept as written: the commitment is over JCS)
        resource = tmp_path / "hba1c.json"
        resource.write_text(
            '{"resourceType": "Observation", "status": "final",\n'
            ' "code": {"text": "HbA1c"}, "valueQuantity": {"value": 6.30, "unit": "%"}}\n',
            encoding="utf-8",
        )
        published = hygeia_json(
            "client", "ehr", "publish", "--api", api_a, "--key", key_a, "--fhir", resource,
            "--patient", patient, "--record-id", "obs-hba1c-1",
        )  # fmt: skip
        version = published["version_id"]

        # the patient grants B treatment access; B's fetch commits the ticket and verifies
        grant = hygeia_json(
            "client", "ehr", "consent-grant", "--api", api_b, "--key", patient_key,
            "--grantee", "hospital-1", "--purpose", "TREAT", "--valid-for", "3600",
        )  # fmt: skip
        consent = grant["result"]["data"]["consent_id"]
        out_b = tmp_path / "b.json"
        got = hygeia_json(
            *_fetch_args(api_b, key_b, version, out_b, "--purpose", "TREAT", "--consent", consent)
        )
        assert out_b.read_bytes() == resource.read_bytes()
        ticket_b = got["ticket"]

        # the patient revokes: B's next fetch under that ticket is refused
        revoke = hygeia_json(
            "client", "ehr", "consent-revoke", "--api", api_a, "--key", patient_key,
            "--consent", consent,
        )  # fmt: skip
        assert revoke["result"]["status"] == "ok", revoke
        again = _fetch_args(api_b, key_b, version, tmp_path / "b2.json", "--access", ticket_b)
        assert "consent-revoked" in _refused(again)

        # the clinic breaks the glass for a few seconds: answered inside the window only
        clinic = load_key(key_c)
        body = {"record_id": "obs-hba1c-1", "reason": "ETREAT", "duration_ms": WINDOW_MS}
        emergency = build_tx(meta["chain_id"], "access.emergency", body, clinic, 1)
        _post_tx(api_c, emergency.wire)
        status = _wait_committed(api_c, emergency.hash)
        out_c = tmp_path / "c.json"
        hygeia_json(*_fetch_args(api_c, key_c, version, out_c, "--access", emergency.hash))
        assert out_c.read_bytes() == resource.read_bytes()
        start = _block_time(api_a, int(status["height"]))

        def block_time_on_a() -> int:
            filler = hygeia_json(
                "client", "anchor", "--api", api_a, "--key", key_a, "--wait",
                "--digest", secrets.token_hex(32),
            )  # fmt: skip
            return _block_time(api_a, int(filler["height"]))

        wait_until(
            "a block on A's node past the window", block_time_on_a, lambda t: t >= start + WINDOW_MS
        )
        late = _fetch_args(api_c, key_c, version, tmp_path / "c2.json", "--access", emergency.hash)
        assert "emergency-expired" in _refused(late)

        # A erases the record: every fetch answers erased, A's store has let it go
        erased = hygeia_json(
            "client", "ehr", "erase", "--api", api_a, "--key", key_a,
            "--record-id", "obs-hba1c-1", "--reason", "patient-request",
        )  # fmt: skip
        assert erased["result"]["status"] == "ok", erased
        for api, key, ticket in ((api_b, key_b, ticket_b), (api_c, key_c, emergency.hash)):
            args = _fetch_args(api, key, version, tmp_path / "x.json", "--access", ticket)
            assert "erased" in _refused(args)
        wait_until(
            "A's store to drop the version",
            lambda: [p.name for p in (home_a / "documents").rglob("*.doc")],
            lambda files: files == [],
        )

        # the accounting of disclosures: exactly the successful fetches' tickets
        for node in nodes:
            _wait_committed(node["api"], erased["hash"])
            shown = hygeia_json(
                "client", "ehr", "disclosures", "--api", node["api"], "--patient-key", patient_key
            )["disclosures"]
            assert sorted(e["tx"] for e in shown) == sorted([ticket_b, emergency.hash]), shown
