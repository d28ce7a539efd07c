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
(Written against the CLI with subprocess; the shared functional framework
had not landed when this story was written.)
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from node import testnet

NCT = "NCT04000001"
STARTUP_TIMEOUT = 60.0


def h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def _free(ports: list[int]) -> bool:
    socks = []
    try:
        for p in ports:
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def _base_port() -> int:
    stride = testnet.PORT_STRIDE * 4
    slots = (32000 - 20000) // stride
    start = (os.getpid() * 7919 + int(time.time())) % slots
    for k in range(slots):
        base = 20000 + ((start + k) % slots) * stride
        if _free([p for i in range(4) for p in testnet.node_ports(base, i)]):
            return base
    raise RuntimeError("no free ports")


def hygeia(*args: str, ok: bool = True) -> tuple[int, Any]:
    """Run ``hygeia ARGS``; return (exit code, parsed JSON stdout or text)."""
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if ok and proc.returncode != 0:
        raise AssertionError(f"hygeia {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        return proc.returncode, proc.stdout + proc.stderr


class Net:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "testnet.log"
        self.meta: dict[str, Any] = {}

    def init(self) -> None:
        out = self.root / "net"
        hygeia(
            "testnet",
            "init",
            "--validators",
            "4",
            "--out",
            str(out),
            "--base-port",
            str(_base_port()),
        )
        self.meta = json.loads((out / "testnet.json").read_text())
        # give node1's member the sponsor role too, in every home's genesis.json
        for node in self.meta["nodes"]:
            path = Path(node["home"]) / "genesis.json"
            genesis = json.loads(path.read_text())
            member = genesis["members"][1]
            assert member["id"] == "manufacturer-1", member
            member["roles"] = ["manufacturer", "sponsor"]
            path.write_text(json.dumps(genesis, indent=2) + "\n")

    def start(self) -> None:
        with self.log.open("wb") as fh:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "node.cli",
                    "testnet",
                    "start",
                    "--dir",
                    str(self.root / "net"),
                ],
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        for i in range(4):
            while True:
                assert self.proc.poll() is None, self.tail()
                try:
                    with urllib.request.urlopen(self.api(i) + "/v1/info", timeout=2) as resp:
                        json.loads(resp.read())
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"node{i} API not up\n{self.tail()}") from None
                    time.sleep(0.2)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""

    def api(self, i: int) -> str:
        return str(self.meta["nodes"][i]["api"])

    def key(self, i: int) -> str:
        return str(Path(self.meta["nodes"][i]["home"]) / testnet.MEMBER_KEY_FILE)


@pytest.fixture
def net(tmp_path: Path) -> Any:
    n = Net(tmp_path)
    n.init()
    n.start()
    try:
        yield n
    except BaseException:
        print(n.tail())
        raise
    finally:
        n.stop()


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
    # a hospital cannot register (not a sponsor)
    rejected = tx(net, "register", 0, site, "--title", "t", "--protocol", h("x"), "--sap", h("y"),
                  "--primary", f"P1={p1}", ok=False)  # fmt: skip
    assert rejected["result"]["code"] == "unauthorized"
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
