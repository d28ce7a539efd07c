"""Functional story: insurance claims on a 4-node network, through ``hygeia client claims``.

Real processes: ``hygeia testnet init`` then ``hygeia testnet start`` (node0 is a
hospital, node3 an insurer); every step is a ``hygeia client`` command.
"""

from __future__ import annotations

import datetime
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.setup import testnet
from tests.functional.framework import cli_testnet, hygeia_json, wait_until


@pytest.fixture
def network(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with cli_testnet(tmp_path) as meta:
        yield meta


def test_claim_story_publish_enroll_submit_duplicate_settle_statement(
    network: dict[str, Any], tmp_path: Path
) -> None:
    """The insurer (node3) publishes a policy and enrolls a patient key; the hospital
    (node0) submits a claim that is approved with the exact benefit; the same service
    again is flagged as a duplicate and denied; the insurer settles; the hospital's
    statement and the claim's status show it paid, nothing outstanding."""
    nodes = network["nodes"]
    hospital_api, insurer_api = nodes[0]["api"], nodes[3]["api"]
    hospital_key = str(Path(nodes[0]["home"]) / testnet.MEMBER_KEY_FILE)
    insurer_key = str(Path(nodes[3]["home"]) / testnet.MEMBER_KEY_FILE)
    patient = secrets.token_hex(32)
    today = datetime.datetime.now(datetime.UTC).date().isoformat()

    policy = {
        "policy_id": "story-gold",
        "currency": "EUR",
        "services": [{"code": "99213", "allowed": 10_000}],
        "copay_bp": 2_000,
        "copay_fixed": 1_000,
    }
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(policy), encoding="utf-8")
    tx = ["--api", insurer_api, "--key", insurer_key, "--wait", "--timeout", "60"]
    published = hygeia_json("client", "claims", "publish-policy", *tx, "--file", str(policy_file))
    assert published["status"] == "committed", published
    assert published["result"]["data"]["version"] == 1
    enrolled = hygeia_json(
        "client", "claims", "enroll", *tx, "--coverage-id", "cov-story", "--patient", patient,
        "--policy", "story-gold", "--start", "2000-01-01", "--end", "2099-12-31",
    )  # fmt: skip
    assert enrolled["status"] == "committed", enrolled

    def submit(claim_id: str) -> dict[str, Any]:
        out: dict[str, Any] = hygeia_json(
            "client", "claims", "submit", "--api", hospital_api, "--key", hospital_key,
            "--wait", "--timeout", "60",
            "--claim-id", claim_id, "--patient", patient, "--insurer", "insurer-3",
            "--item", f"99213:2:12000:{today}", "--diagnosis", "J20.9",
        )  # fmt: skip
        assert out["status"] == "committed", out
        data: dict[str, Any] = out["result"]["data"]
        return data

    # 2 x 12,000 against 2 x 10,000 allowed: 20,000 eligible, 1,000 copay, 20 % of 19,000
    eob = submit("story-1")
    assert eob["decision"] == "approved" and eob["flags"] == []
    assert eob["totals"]["benefit"] == 15_200
    dup = submit("story-2")
    assert dup["decision"] == "denied"
    assert [f["code"] for f in dup["flags"]] == ["duplicate"]
    assert dup["flags"][0]["original"]["claim_id"] == "story-1"

    settled = hygeia_json(
        "client", "claims", "settle", *tx, "--provider", "hospital-0", "--claim-id", "story-1",
        "--payment-ref", "TRN-0001", "--amount", "15200",
    )  # fmt: skip
    assert settled["status"] == "committed", settled
    assert settled["result"]["data"]["outstanding"] == 0

    statement = wait_until(
        "the hospital's statement on node1 to show the payment",
        lambda: hygeia_json(
            "client", "claims", "statement", "--api", nodes[1]["api"], "--provider", "hospital-0"
        ),
        lambda s: s["totals"]["paid"] == 15_200,
    )
    assert statement["pairs"] == [
        {"provider": "hospital-0", "insurer": "insurer-3", "approved": 15_200, "paid": 15_200,
         "outstanding": 0, "claims": 2}
    ]  # fmt: skip
    status = hygeia_json(
        "client", "claims", "status", "--api", insurer_api, "--provider", "hospital-0",
        "--claim-id", "story-1",
    )  # fmt: skip
    assert (status["paid"], status["outstanding"], status["status"]) == (15_200, 0, "active")
    insurer_view = hygeia_json(
        "client", "claims", "statement", "--api", insurer_api, "--insurer", "insurer-3"
    )
    flagged = [c["claim_id"] for c in insurer_view["claims"] if "duplicate" in c["flags"]]
    assert flagged == ["story-2"]
