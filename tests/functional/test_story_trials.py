"""Functional story: a clinical trial on a 4-node testnet, driven only through ``hygeia client``.

The testnet is made with ``hygeia testnet init`` and run with ``hygeia testnet
start`` (one process per node). Its founding members have one role each
(node i: hospital, manufacturer, pharmacy, insurer). A trial needs a sponsor:
before the network starts, this test edits the ``genesis.json`` of *every*
home identically so that node1's member (``manufacturer-1``) also has the role
``sponsor`` (a drug manufacturer sponsoring its own trial). Genesis files must
be byte-for-byte the same on every node, hence one edit written to all four.
node0's member (``hospital-0``) is the trial site. Transactions and queries
go to different nodes on purpose: any node serves them once committed.
The network runs under ``cli_testnet`` of the functional framework.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.setup import testnet
from tests.functional.framework import cli_testnet, run_hygeia

NCT = "NCT04000001"


def h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def hygeia(*args: str, ok: bool = True) -> tuple[int, Any]:
    """Run ``hygeia ARGS``; return (exit code, parsed JSON stdout or text)."""
    proc = run_hygeia(*args, ok=ok)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        return proc.returncode, proc.stdout + proc.stderr


def add_sponsor_role(genesis: dict[str, Any]) -> None:
    """node1's member (manufacturer-1) is also a sponsor."""
    member = genesis["members"][1]
    assert member["id"] == "manufacturer-1", member
    member["roles"] = ["manufacturer", "sponsor"]


@dataclass
class Net:
    """The running testnet (``testnet.json``): each node's client API and member key."""

    meta: dict[str, Any]

    def api(self, i: int) -> str:
        return str(self.meta["nodes"][i]["api"])

    def key(self, i: int) -> str:
        return str(Path(self.meta["nodes"][i]["home"]) / testnet.MEMBER_KEY_FILE)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    with cli_testnet(tmp_path, edit_genesis=add_sponsor_role) as meta:
        yield Net(meta)


def tx(net: Net, cmd: str, node: int, signer: int, *args: str, ok: bool = True) -> dict[str, Any]:
    """``hygeia client trials CMD`` signed by node ``signer``'s member, sent to node ``node``."""
    code, out = hygeia(
        "client", "trials", cmd, "--api", net.api(node), "--key", net.key(signer),
        "--trial-id", NCT, "--wait", "--timeout", "60", *args, ok=False,
    )  # fmt: skip
    assert isinstance(out, dict), out
    if ok:
        assert code == 0 and out["status"] == "committed", out
        assert out["result"]["status"] == "ok", out
    else:
        assert code == 1 and out["status"] == "rejected", out
    return out


def test_trial_story_through_the_client(net: Net) -> None:
    """Register, consent, enrol, amend (re-consent needed), withdraw, data, lock and results
    with a switched outcome, through ``hygeia client trials`` on four nodes; every node's
    audit report shows the timeline, counts, data commitments and the outcome-switching flags."""
    sponsor, site = 1, 0
    alice, bob, carol = h("alice-salted"), h("bob-salted"), h("carol-salted")
    p1, s1, s2 = h("P1 desc"), h("S1 desc"), h("S2 desc")

    # the sponsor registers with one primary and two secondary outcomes, hospital-0 as site
    tx(net, "register", 1, sponsor, "--title", "Drug X vs placebo", "--protocol", h("protocol v1"),
       "--sap", h("sap v1"), "--primary", f"P1={p1}", "--secondary", f"S1={s1}",
       "--secondary", f"S2={s2}", "--site", "hospital-0")  # fmt: skip
    # a hospital cannot register (not a sponsor): refused at admission, never on the chain
    code, refused = hygeia(
        "client", "trials", "register", "--api", net.api(0), "--key", net.key(site),
        "--trial-id", NCT, "--title", "t", "--protocol", h("x"), "--sap", h("y"),
        "--primary", f"P1={p1}", ok=False,
    )  # fmt: skip
    assert code == 1 and "403 signer-not-allowed: trial.register: member" in refused, refused
    _, listed = hygeia(
        "client", "trials", "list", "--api", net.api(2), "--sponsor", "manufacturer-1"
    )
    assert [t["trial_id"] for t in listed["trials"]] == [NCT]

    # consent (to the current version, looked up by the client) and enrolment of alice
    tx(net, "consent", 2, site, "--participant", alice)
    tx(net, "consent", 2, site, "--participant", bob, "--protocol-version", "1")
    tx(net, "enroll", 3, site, "--participant", alice)
    # enrolment without consent is refused
    out = tx(net, "enroll", 3, site, "--participant", carol, ok=False)
    assert out["result"]["code"] == "no-consent"

    # an amendment without outcome change: bob's consent to v1 no longer suffices
    tx(net, "amend", 1, sponsor, "--reason-code", "eligibility", "--reason", "age 18-80",
       "--protocol", h("protocol v2"))  # fmt: skip
    out = tx(net, "enroll", 0, site, "--participant", bob, ok=False)
    assert out["result"]["code"] == "consent-outdated"
    tx(net, "consent", 0, site, "--participant", bob)  # re-consent to v2
    tx(net, "enroll", 0, site, "--participant", bob)
    tx(net, "withdraw", 0, site, "--participant", bob, "--reason-code", "adverse-event")

    # case-report-form batches, lock, no data after lock
    tx(net, "data", 0, site, "--merkle-root", h("batch 1"), "--count", "40")
    tx(net, "data", 1, site, "--merkle-root", h("batch 2"), "--count", "25")
    tx(net, "lock", 1, sponsor, "--commitment", h("db lock"))
    out = tx(net, "data", 0, site, "--merkle-root", h("batch 3"), "--count", "1", ok=False)
    assert out["result"]["code"] == "locked"

    # results: S2 dropped, S3 added, P1 reported as registered
    out = tx(net, "results", 1, sponsor, "--primary", f"P1={p1}", "--secondary", f"S1={s1}",
             "--secondary", f"S3={h('S3 desc')}", "--results-commitment", h("results"))  # fmt: skip
    assert out["result"]["data"]["outcome_switching"] is True

    reports = []
    for i in range(4):
        _, rep = hygeia("client", "trials", "report", "--api", net.api(i), "--trial-id", NCT)
        reports.append(rep)
    rep = reports[0]
    assert all(r == rep for r in reports), "nodes disagree on the audit report"
    assert [e["event"] for e in rep["timeline"]] == [
        "registered",
        "first-enrolment",
        "amended",
        "locked",
        "results",
    ]
    assert [a["protocol_version"] for a in rep["amendments"]] == [2]
    assert rep["counts"] == {
        "consents": 3,
        "participants": 2,
        "enrolments": 2,
        "withdrawals": 1,
        "data_batches": 2,
        "data_records": 65,
    }
    assert [b["merkle_root"] for b in rep["data"]["commitments"]] == [h("batch 1"), h("batch 2")]
    assert [(f["code"], f["outcome_id"]) for f in rep["flags"]] == [
        ("outcome-missing", "S2"),
        ("outcome-added", "S3"),
    ]
    assert rep["status"] == "completed" and rep["outcome_switching"] is True
