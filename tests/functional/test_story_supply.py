"""Functional story: the drug supply chain on a 4-node testnet, through ``hygeia client``.

The testnet's members: node0 hospital-0, node1 manufacturer-1, node2 pharmacy-2,
node3 insurer-3. The network is made with ``hygeia testnet init`` and run with
``hygeia testnet start`` (one process per node), all as subprocesses of the
test, and stopped with SIGINT (what Ctrl-C sends) at the end.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.httpclient import ClientError, request_json
from node.ledger.supply import with_check_digit
from node.testnet import node_ports

HYGEIA = [sys.executable, "-m", "node.cli"]
GTIN = with_check_digit("0061414177777")
LOT, EXP = "LOT-F1", "301231"
SSCC = with_check_digit("10614141" + "000000042")


def _free(base: int) -> bool:
    socks = []
    try:
        for i in range(4):
            for port in node_ports(base, i):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def _base_port() -> int:
    rng = random.Random(os.getpid() * 7919 + time.monotonic_ns())
    for _ in range(200):
        base = 20000 + 40 * rng.randrange(300)
        if _free(base):
            return base
    raise RuntimeError("no free ports for a testnet")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HYGEIA_")}


@pytest.fixture
def testnet(tmp_path: Path) -> Iterator[dict[str, Any]]:
    out = tmp_path / "net"
    subprocess.run(
        [
            *HYGEIA,
            "testnet",
            "init",
            "--validators",
            "4",
            "--out",
            str(out),
            "--base-port",
            str(_base_port()),
        ],
        check=True,
        env=_env(),
        capture_output=True,
    )
    meta: dict[str, Any] = json.loads((out / "testnet.json").read_text())
    log = (tmp_path / "testnet.log").open("wb")
    proc = subprocess.Popen(
        [*HYGEIA, "testnet", "start", "--dir", str(out)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
    )
    try:
        deadline = time.monotonic() + 60
        for node in meta["nodes"]:
            while True:
                assert proc.poll() is None, "testnet start exited"
                try:
                    request_json("GET", node["api"] + "/v1/info", timeout=2)
                    break
                except ClientError:
                    assert time.monotonic() < deadline, "nodes did not come up"
                    time.sleep(0.2)
        meta["dir"] = out
        yield meta
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if proc.returncode not in (0, -signal.SIGINT):
            print((tmp_path / "testnet.log").read_text(errors="replace")[-4000:])


def client(meta: dict[str, Any], node: int, *args: str, key: bool = True) -> tuple[int, Any]:
    """``hygeia client supply ARGS`` against node ``node`` (signed with its member key)."""
    cmd = [*HYGEIA, "client", "supply", args[0], "--api", meta["nodes"][node]["api"]]
    if key:
        cmd += [
            "--key",
            str(Path(meta["nodes"][node]["home"]) / "member_key.json"),
            "--timeout",
            "60",
        ]
    done = subprocess.run(
        [*cmd, *args[1:]], capture_output=True, text=True, env=_env(), timeout=120
    )
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
    assert code == 0 and ans["verified"] is False and ans["reasons"] == ["already-dispensed"]
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
