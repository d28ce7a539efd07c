"""``hygeia client ...`` against a fake node: the URLs asked, the transactions sent, the output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from node.api.remote import ClientError
from node.cli.client import client
from node.core.keys import generate_key, load_key, public_key_hex, save_key, verify
from node.ledger.domains.governance import rotation_proof_message

API = "http://node.test:26657"
TX_HASH = "ab" * 32
BLOCK_TIME_MS = 1_700_000_000_000


class FakeNode:
    """Answers the client API's requests from canned data and records each one."""

    def __init__(self, tx_status: str = "committed") -> None:
        self.gets: list[str] = []
        self.posted: list[dict[str, Any]] = []
        self.tx_status = tx_status
        self.routes: dict[str, Any] = {
            "/v1/info": {"chain_id": "hygeia-test"},
            "/v1/members": {"block_time_ms": BLOCK_TIME_MS, "members": []},
        }

    def __call__(self, method: str, url: str, body: bytes | None = None, **_: Any) -> Any:
        assert url.startswith(API + "/"), url
        path = url[len(API) :]
        if method == "POST":
            assert path == "/v1/txs" and body is not None
            self.posted.append(json.loads(body))
            return {"hash": TX_HASH}
        self.gets.append(path)
        if path == f"/v1/txs/{TX_HASH}":
            result = {"status": self.tx_status}
            return {"status": self.tx_status, "height": 1, "index": 0, "result": result}
        if path.split("?")[0] in self.routes:
            return self.routes[path.split("?")[0]]
        raise ClientError(f"{url}: 404 not_found: no such thing", 404, "not_found")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "member.json"
    save_key(path, generate_key())
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(client, list(args), catch_exceptions=False)


def test_gov_queries_ask_the_node_once_under_v1(node: FakeNode) -> None:
    node.routes["/v1/proposals"] = {"proposals": []}
    node.routes["/v1/members/clinic-9"] = {"id": "clinic-9"}
    assert run("gov", "proposals", "--api", API, "--status", "open").exit_code == 0
    assert run("gov", "members", "clinic-9", "--api", API).exit_code == 0
    assert run("gov", "members", "--api", API).exit_code == 0
    assert node.gets == ["/v1/proposals?status=open", "/v1/members/clinic-9", "/v1/members"]


def test_gov_proposal_expires_after_the_latest_block_time(node: FakeNode, key_file: Path) -> None:
    result = run(
        "gov", "propose-suspend", "--id", "clinic-9", "--api", API, "--key", str(key_file),
        "--no-wait",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"hash": TX_HASH, "status": "pending"}
    (tx,) = node.posted
    assert tx["type"] == "gov.propose"
    assert tx["body"] == {
        "action": {"type": "suspend-member", "id": "clinic-9"},
        "expires_ms": BLOCK_TIME_MS + 72 * 3_600_000,
    }


def test_every_client_group_waits_for_the_commit_unless_told_not_to(
    node: FakeNode, key_file: Path
) -> None:
    """Without --no-wait a submission is followed to its status (GET /v1/txs/{hash})."""
    result = run("gov", "propose-suspend", "--id", "clinic-9", "--api", API, "--key", str(key_file))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == "committed"
    assert node.gets[-1] == f"/v1/txs/{TX_HASH}"


def test_client_tx_exits_1_for_a_hash_the_node_does_not_know(node: FakeNode) -> None:
    node.tx_status = "unknown"
    result = run("tx", TX_HASH, "--api", API)
    assert result.exit_code == 1
    assert json.loads(result.output)["status"] == "unknown"
    node.tx_status = "pending"
    assert run("tx", TX_HASH, "--api", API).exit_code == 0


def test_gov_rotate_key_proves_the_new_key_for_its_member(
    node: FakeNode, key_file: Path, tmp_path: Path
) -> None:
    old = public_key_hex(load_key(key_file))
    node.routes["/v1/members"] = {"members": [{"id": "clinic-9", "keys": [old]}]}
    new_file = tmp_path / "new.json"
    save_key(new_file, generate_key())
    new = public_key_hex(load_key(new_file))
    result = run(
        "gov", "rotate-key", "--new-key", str(new_file), "--api", API, "--key", str(key_file)
    )
    assert result.exit_code == 0, result.output
    (tx,) = node.posted
    assert tx["type"] == "member.rotate_key" and tx["body"]["new_key"] == new
    message = rotation_proof_message("hygeia-test", "clinic-9", old, new)
    assert verify(bytes.fromhex(new), message, bytes.fromhex(tx["body"]["proof"]))


def test_rejected_transaction_exits_1_with_its_status(node: FakeNode, key_file: Path) -> None:
    node.tx_status = "rejected"
    result = run("claims", "enroll", "--api", API, "--key", str(key_file), "--wait",
                 "--coverage-id", "c1", "--patient", "aa" * 32, "--policy", "p1",
                 "--start", "2026-01-01", "--end", "2026-12-31")  # fmt: skip
    assert result.exit_code == 1
    assert json.loads(result.output)["status"] == "rejected"
    assert node.gets[-1] == f"/v1/txs/{TX_HASH}"


def test_anchor_and_trial_documents_are_their_sha256(
    node: FakeNode, key_file: Path, tmp_path: Path
) -> None:
    doc = tmp_path / "protocol.pdf"
    doc.write_bytes(b"protocol v1\n" * 100_000)
    digest = hashlib.sha256(doc.read_bytes()).hexdigest()
    result = run("anchor", "--api", API, "--key", str(key_file), "--file", str(doc))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["digest"] == digest
    outcome = "o1=" + "cd" * 32
    result = run("trials", "register", "--api", API, "--key", str(key_file),
                 "--trial-id", "NCT01234567", "--title", "T", "--protocol-file", str(doc),
                 "--sap", "ef" * 32, "--primary", outcome)  # fmt: skip
    assert result.exit_code == 0, result.output
    anchored, registered = (tx["body"] for tx in node.posted)
    assert anchored["digest"] == registered["protocol_commitment"] == digest


def test_tx_and_query_errors_are_one_line(node: FakeNode) -> None:
    result = CliRunner().invoke(client, ["tx", "cd" * 32, "--api", API])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {API}/v1/txs/{'cd' * 32}: 404 not_found: no such thing"
    ]
    result = CliRunner().invoke(client, ["trials", "show", "--api", API, "--trial-id", "X"])
    assert result.exit_code == 1
    assert "404 not_found" in result.output


def test_query_parameters_are_encoded(node: FakeNode) -> None:
    node.routes["/v1/trials"] = {"trials": []}
    node.routes["/v1/claims-statements/insurers/ins 1"] = {"claims": []}
    assert run("trials", "list", "--api", API, "--sponsor", "a&b=c").exit_code == 0
    assert run("trials", "list", "--api", API).exit_code == 0
    result = run("claims", "statement", "--api", API, "--insurer", "ins 1", "--limit", "5")
    assert result.exit_code == 0
    assert node.gets == [
        "/v1/trials?sponsor=a%26b%3Dc",
        "/v1/trials",
        "/v1/claims-statements/insurers/ins 1?limit=5",
    ]


def test_ehr_anchor_versions_follow_the_latest_and_verify_exits_1_if_unanchored(
    node: FakeNode, key_file: Path
) -> None:
    args = ["ehr", "record-anchor", "--api", API, "--key", str(key_file), "--record-id", "r/1",
            "--patient", "aa" * 32, "--type", "Observation", "--commitment", "bb" * 32]  # fmt: skip
    assert run(*args, "--no-wait").exit_code == 0
    node.routes["/v1/ehr/records/r%2F1"] = {"version": 3, "version_id": "v3"}
    assert run(*args, "--no-wait").exit_code == 0
    first, second = (tx["body"] for tx in node.posted)
    assert first["version"] == 1 and "replaces" not in first
    assert second["version"] == 4 and second["replaces"] == "v3"
    result = run("ehr", "verify", "--api", API, "--commitment", "cc" * 32)
    assert result.exit_code == 1
    assert json.loads(result.output) == {"commitment": "cc" * 32, "anchored": False}
    node.routes["/v1/ehr/commitments/" + "bb" * 32] = {"record_id": "r/1"}
    result = run("ehr", "verify", "--api", API, "--commitment", "bb" * 32)
    assert result.exit_code == 0
    assert json.loads(result.output) == {
        "commitment": "bb" * 32,
        "anchored": True,
        "record_id": "r/1",
    }


def test_ehr_erase_sends_record_erase_and_waits(node: FakeNode, key_file: Path) -> None:
    args = ["ehr", "erase", "--api", API, "--key", str(key_file), "--record-id", "r-1"]
    result = run(*args, "--reason", "legal-order")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == "committed"
    assert node.gets[-1] == f"/v1/txs/{TX_HASH}"
    (tx,) = node.posted
    assert tx["type"] == "record.erase"
    assert tx["body"] == {"record_id": "r-1", "reason": "legal-order"}
    assert tx["signer"] == public_key_hex(load_key(key_file))
    node.tx_status = "rejected"
    assert run(*args, "--reason", "patient-request").exit_code == 1
    result = CliRunner().invoke(client, [*args, "--reason", "forgotten"])
    assert result.exit_code == 2 and len(node.posted) == 2


def test_ehr_review_closes_a_break_glass_review(node: FakeNode, key_file: Path) -> None:
    args = ["ehr", "review", "--api", API, "--key", str(key_file), "--emergency", "ef" * 32]
    result = run(*args, "--finding", "unjustified")
    assert result.exit_code == 0, result.output
    (tx,) = node.posted
    assert tx["type"] == "access.review"
    assert tx["body"] == {"emergency": "ef" * 32, "finding": "unjustified"}
    result = CliRunner().invoke(client, [*args, "--finding", "fine"])
    assert result.exit_code == 2 and len(node.posted) == 1


# ------------------------------------------------------------------ validators
NODE_KEY = "cd" * 32


def test_gov_propose_add_validator_sends_the_action(
    node: FakeNode, key_file: Path, tmp_path: Path
) -> None:
    """--node-key is 64 hex or a key file (a node's node_key.json): only its public key goes."""
    node_file = tmp_path / "node_key.json"
    save_key(node_file, generate_key())
    args = ["--member", "clinic-9", "--name", "node4", "--p2p", "10.0.0.4:26656"]
    for given, sent in (
        (NODE_KEY, NODE_KEY),
        (str(node_file), public_key_hex(load_key(node_file))),
    ):
        result = run("gov", "propose-add-validator", *args, "--node-key", given,
                     "--api", API, "--key", str(key_file), "--note", "joins")  # fmt: skip
        assert result.exit_code == 0, result.output
        tx = node.posted[-1]
        assert tx["type"] == "gov.propose"
        assert tx["body"] == {
            "action": {"type": "add-validator", "member": "clinic-9", "name": "node4",
                       "node_key": sent, "p2p": "10.0.0.4:26656"},
            "expires_ms": BLOCK_TIME_MS + 72 * 3_600_000,
            "note": "joins",
        }  # fmt: skip


def test_gov_propose_remove_and_replace_validator_key(node: FakeNode, key_file: Path) -> None:
    common = ["--api", API, "--key", str(key_file), "--expires-in", "1"]
    result = run("gov", "propose-remove-validator", "--node-key", NODE_KEY, *common)
    assert result.exit_code == 0, result.output
    result = run("gov", "propose-replace-validator-key", "--node-key", NODE_KEY,
                 "--new-node-key", "ef" * 32, "--p2p", "[2001:db8::1]:26656", *common)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [t["body"]["action"] for t in node.posted] == [
        {"type": "remove-validator", "node_key": NODE_KEY},
        {"type": "replace-validator-key", "node_key": NODE_KEY, "new_node_key": "ef" * 32,
         "p2p": "[2001:db8::1]:26656"},
    ]  # fmt: skip
    assert node.posted[0]["body"]["expires_ms"] == BLOCK_TIME_MS + 3_600_000


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--node-key", NODE_KEY, "--p2p", "localhost"], "--p2p: expected host:port"),
        (["--node-key", NODE_KEY, "--p2p", "h:0"], "--p2p: port in 'h:0' must be in 1..65535"),
        (["--node-key", "nope", "--p2p", "h:1"], "neither 64 lowercase hex nor a key file"),
    ],
)
def test_gov_validator_proposals_check_keys_and_addresses_before_signing(
    node: FakeNode, key_file: Path, extra: list[str], message: str
) -> None:
    result = run("gov", "propose-add-validator", "--member", "m", "--name", "n", *extra,
                 "--api", API, "--key", str(key_file))  # fmt: skip
    assert result.exit_code == 1 and message in result.output, result.output
    assert node.posted == []


def test_client_validators_prints_the_set(node: FakeNode) -> None:
    answer = {"epoch": 1, "from_height": 49, "validators": [], "pending": None}
    node.routes["/v1/validators"] = answer
    result = run("validators", "--api", API)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == answer
    assert run("validators", "--api", API, "--height", "7").exit_code == 0
    assert node.gets == ["/v1/validators", "/v1/validators?height=7"]
    bad = run("validators", "--api", API, "--height", "-1")
    assert bad.exit_code == 2 and node.gets == ["/v1/validators", "/v1/validators?height=7"]


# ------------------------------------------------------------------ supply (issue 16)
# Kept together at the end of the file: the supply client's scans, undo, whole receive
# and verify exit status.
SUPPLY_GTIN = "09501101530003"
SUPPLY_HRI = f"(01){SUPPLY_GTIN}(21)PACK0001(10)LOT1(17)301200"
SUPPLY_RAW = f"]d201{SUPPLY_GTIN}17301200" + "10LOT1\x1d21PACK0002"


def test_supply_verify_exits_1_unless_verified(node: FakeNode) -> None:
    """``supply verify`` prints the answer and exits 1 when the pack is not verified."""
    args = ["supply", "verify", "--api", API, "--gtin", SUPPLY_GTIN, "--serial", "S1",
            "--lot", "L1", "--expiry", "301231"]  # fmt: skip
    node.routes["/v1/supply/verify"] = {"verified": False, "reasons": ["already-dispensed"]}
    result = run(*args)
    assert result.exit_code == 1
    assert json.loads(result.output)["reasons"] == ["already-dispensed"]
    node.routes["/v1/supply/verify"] = {"verified": True, "reasons": []}
    assert run(*args).exit_code == 0
    query = f"gtin={SUPPLY_GTIN}&serial=S1&lot=L1&expiry=301231"
    assert node.gets[-1] == f"/v1/supply/verify?{query}"


def test_supply_verify_sends_the_scan_as_scanned(node: FakeNode) -> None:
    """``--scan`` goes to the node as ``scan=`` (GS encoded %1D); an unreadable scan, or
    a scan with the four options, ends the command before the node is asked."""
    node.routes["/v1/supply/verify"] = {"verified": True, "reasons": []}
    assert run("supply", "verify", "--api", API, "--scan", SUPPLY_RAW).exit_code == 0
    assert node.gets == [f"/v1/supply/verify?scan=%5Dd201{SUPPLY_GTIN}1730120010LOT1%1D21PACK0002"]
    bad = run("supply", "verify", "--api", API, "--scan", "(01)123")
    assert bad.exit_code == 1 and "AI (01) gtin must be 14 characters" in bad.output
    both = run("supply", "verify", "--api", API, "--scan", SUPPLY_HRI, "--serial", "S1")
    assert both.exit_code == 1 and "give --scan, or" in both.output
    assert run("supply", "verify", "--api", API, "--gtin", SUPPLY_GTIN).exit_code == 1
    assert len(node.gets) == 1


def test_supply_dispense_and_undispense_from_scans(node: FakeNode, key_file: Path) -> None:
    """Scanned packs give the GTIN, the serials and the lot and expiry to check; scans
    of two GTINs are refused; ``undispense`` sends drug.undispense."""
    common = ["--api", API, "--key", str(key_file)]
    result = run("supply", "dispense", *common, "--scan", SUPPLY_HRI, "--scan", SUPPLY_RAW)
    assert result.exit_code == 0, result.output
    result = run("supply", "undispense", *common, "--scan", SUPPLY_HRI)
    assert result.exit_code == 0, result.output
    dispense, undispense = node.posted
    assert dispense["type"] == "drug.dispense"
    assert dispense["body"] == {"gtin": SUPPLY_GTIN, "serials": ["PACK0001", "PACK0002"],
                                "lot": "LOT1", "expiry": "301200"}  # fmt: skip
    assert undispense["type"] == "drug.undispense"
    assert undispense["body"] == {"gtin": SUPPLY_GTIN, "serials": ["PACK0001"]}
    other = "(01)00614141000036(21)X"
    mixed = run("supply", "ship", *common, "--to", "p", "--scan", SUPPLY_HRI, "--scan", other)
    assert mixed.exit_code == 1 and "more than one GTIN" in mixed.output
    assert len(node.posted) == 2


def test_supply_receive_a_whole_shipment_or_sscc(node: FakeNode, key_file: Path) -> None:
    """``receive --shipment`` or ``--sscc`` alone sends a whole receive (no GTIN)."""
    common = ["--api", API, "--key", str(key_file)]
    assert run("supply", "receive", *common, "--shipment", "ab" * 32).exit_code == 0
    assert run("supply", "receive", *common, "--sscc", "106141411234567897").exit_code == 0
    assert run("supply", "receive", *common, "--gtin", SUPPLY_GTIN, "--serial", "S1",
               "--shipment", "ab" * 32).exit_code == 0  # fmt: skip
    assert [tx["body"] for tx in node.posted] == [
        {"shipment": "ab" * 32},
        {"sscc": "106141411234567897"},
        {"gtin": SUPPLY_GTIN, "serials": ["S1"], "shipment": "ab" * 32},
    ]
    assert run("supply", "receive", *common).exit_code == 1
    bad = run("supply", "receive", *common, "--serial", "S1", "--gtin", SUPPLY_GTIN,
              "--sscc", "106141411234567897")  # fmt: skip
    assert bad.exit_code == 1 and len(node.posted) == 3
