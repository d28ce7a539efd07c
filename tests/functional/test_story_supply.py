"""Functional story: the drug supply chain on a 4-node testnet, through ``hygeia client``.

The testnet's members: node0 hospital-0, node1 manufacturer-1, node2 pharmacy-2,
node3 insurer-3. The network is made with ``hygeia testnet init`` and run with
``hygeia testnet start`` (one process per node), all as subprocesses of the
test, and stopped with SIGINT (what Ctrl-C sends) at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.ledger.gs1 import with_check_digit
from tests.functional.framework import cli_testnet, run_hygeia

GTIN = with_check_digit("0061414177777")
LOT, EXP = "LOT-F1", "301231"
SSCC = with_check_digit("10614141" + "000000042")


@pytest.fixture
def testnet(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with cli_testnet(tmp_path) as meta:
        yield meta


def client(meta: dict[str, Any], node: int, *args: str, key: bool = True) -> tuple[int, Any]:
    """``hygeia client supply ARGS`` against node ``node`` (signed with its member key)."""
    cmd = ["client", "supply", args[0], "--api", meta["nodes"][node]["api"]]
    if key:
        cmd += [
            "--key",
            str(Path(meta["nodes"][node]["home"]) / "member_key.json"),
            "--timeout",
            "60",
        ]
    done = run_hygeia(*cmd, *args[1:], ok=False)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def accepted(result: tuple[int, Any]) -> dict[str, Any]:
    code, out = result
    assert code == 0, out
    assert out["status"] == "committed" and out["result"]["data"]["outcome"] == "accepted", out
    data: dict[str, Any] = out["result"]["data"]
    return data


def test_story_commission_ship_receive_dispense_verify_and_clone_alert(
    testnet: dict[str, Any],
) -> None:
    """The manufacturer commissions three packs and ships them to the pharmacy in a
    container (SSCC); the pharmacy receives them and dispenses one; anyone (the insurer's
    node) verifies it as dispensed with its custody history and a fresh pack as verified;
    a second dispense of the same serial (a clone, by the hospital) is refused with a
    clone-dispense alert that the manufacturer lists."""
    t = testnet
    serials = ["PACK0001", "PACK0002", "PACK0003"]
    sargs = [a for s in serials for a in ("--serial", s)]
    accepted(client(t, 1, "commission", "--gtin", GTIN, "--lot", LOT, "--expiry", EXP, *sargs))
    ship = accepted(
        client(t, 1, "ship", "--gtin", GTIN, "--to", "pharmacy-2", "--sscc", SSCC, *sargs)
    )
    accepted(client(t, 2, "receive", "--gtin", GTIN, "--shipment", ship["shipment"], *sargs))
    accepted(
        client(
            t, 2, "dispense", "--gtin", GTIN, "--serial", "PACK0001", "--lot", LOT, "--expiry", EXP
        )
    )

    code, ans = client(
        t,
        3,
        "verify",
        "--gtin",
        GTIN,
        "--serial",
        "PACK0001",
        "--lot",
        LOT,
        "--expiry",
        EXP,
        key=False,
    )
    assert code == 1 and ans["verified"] is False and ans["reasons"] == ["already-dispensed"]
    assert [e["step"] for e in ans["history"]] == [
        "commissioning",
        "shipping",
        "receiving",
        "dispensing",
    ]
    assert ans["history"][1]["sscc"] == SSCC and ans["pack"]["dispensed_by"] == "pharmacy-2"
    _, fresh = client(
        t,
        0,
        "verify",
        "--gtin",
        GTIN,
        "--serial",
        "PACK0002",
        "--lot",
        LOT,
        "--expiry",
        EXP,
        key=False,
    )
    assert fresh["verified"] is True and fresh["pack"]["custodian"] == "pharmacy-2"

    code, clone = client(t, 0, "dispense", "--gtin", GTIN, "--serial", "PACK0001")
    assert code == 3, clone
    data = clone["result"]["data"]
    assert data["outcome"] == "refused" and data["rules"] == ["clone-dispense"]

    _, listed = client(t, 1, "alerts", "--manufacturer", "manufacturer-1", key=False)
    [alert] = listed["alerts"]
    assert (alert["rule"], alert["serials"], alert["by"]) == (
        "clone-dispense",
        ["PACK0001"],
        "hospital-0",
    )
    _, hist = client(t, 2, "history", "--gtin", GTIN, "--serial", "PACK0001", key=False)
    assert hist["status"] == "dispensed" and hist["dispensed_by"] == "pharmacy-2"
