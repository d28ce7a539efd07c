"""``hygeia export`` against a real node: a patient's accounting of disclosures, a drug
serial's custody history, a trial's audit report and a range of blocks.

One validator runs in this event loop (``tests/integration/test_node.py``'s
``Cluster``, real LevelDB and HTTP) with extra genesis members (a clinic, a
manufacturer, a distributor, a pharmacy, a sponsor); the chain state is built
with real signed transactions, stage by stage. Each export runs as a real
``hygeia export`` process; every JSON Line is compared with what was committed,
and the transaction each line names has an inclusion proof (``GET
/v1/proofs/<tx>``) that verifies against genesis and places it at the line's
height and index.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nacl.signing
import pytest

from node.api.remote import ClientError, signed_request
from node.core.keys import key_from_seed, public_key_hex
from node.core.proof import verify_proof
from node.core.tx import Tx, build_tx
from node.ledger.gs1 import with_check_digit
from node.ops import export as ex
from node.setup.genesis import Genesis, Member, parse_genesis, write_genesis
from tests.integration.cluster import Cluster, get_json, wait_until

HYGEIA = [sys.executable, "-m", "node.cli"]
GTIN = with_check_digit("0061414100003")
LOT, EXPIRY = "LOT-7", "301231"
NCT = "NCT07654321"

KEYS = {
    name: key_from_seed(bytes([0x40 + i]) * 32)
    for i, name in enumerate(["clinic-b", "mfr", "dist", "pharm", "sponsor"])
}
ROLES = {
    "clinic-b": "clinic",
    "mfr": "manufacturer",
    "dist": "distributor",
    "pharm": "pharmacy",
    "sponsor": "sponsor",
}
PATIENT = key_from_seed(b"\x51" * 32)
OTHER_PATIENT = key_from_seed(b"\x52" * 32)


def h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def outcome(oid: str, text: str | None = None) -> dict[str, str]:
    return {"id": oid, "commitment": h(text or f"outcome-{oid}")}


@dataclass
class Story:
    """The committed transactions an export is compared with (hashes in commit order)."""

    disclosures: list[tuple[str, str, bool]]  # (tx, kind, emergency) of PATIENT
    custody: list[tuple[str, str]]  # (tx, step) of GTIN/S1
    trial_timeline: list[tuple[str, str]]  # (tx, event)
    trial_flags: list[tuple[str, str]]  # (tx, code)
    trial_data: list[tuple[str, int]]  # (tx, seq)


class Chain:
    """The cluster's one node, and signing with the story's keys."""

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.keys: dict[str, nacl.signing.SigningKey] = {
            "hospital": c.homes[0].member_key,
            **KEYS,
            "patient": PATIENT,
            "other-patient": OTHER_PATIENT,
        }
        self.nonce = 0

    def tx(self, who: str, tx_type: str, body: dict[str, Any]) -> Tx:
        self.nonce += 1
        return build_tx(self.c.chain_id, tx_type, body, self.keys[who], self.nonce)

    async def commit(self, *txs: Tx) -> list[dict[str, Any]]:
        """Submit ``txs`` together, wait until all are in the chain; their tx statuses."""
        node = self.c.node(0)
        for t in txs:
            await node.submit_tx(t.wire)
        hashes = [t.hash for t in txs]
        await wait_until(
            f"{len(hashes)} txs in the chain (committed or rejected)",
            lambda: {x[:12]: node.tx_status(x)["status"] for x in hashes},
            lambda st: all(v in ("committed", "rejected") for v in st.values()),
        )
        return [node.tx_status(x) for x in hashes]

    async def ok(self, *txs: Tx) -> list[dict[str, Any]]:
        out = await self.commit(*txs)
        for t, st in zip(txs, out, strict=True):
            assert st["result"]["status"] == "ok", (t.type, st)
        return out


def add_members(c: Cluster) -> None:
    """Every home's genesis gets the story's members (before any node starts)."""
    g = c.genesis
    extra = tuple(
        Member(m, m.title(), (role,), (public_key_hex(KEYS[m]),)) for m, role in ROLES.items()
    )
    draft = Genesis(g.chain_id, g.genesis_time, g.consensus, g.validators, g.members + extra)
    genesis = parse_genesis(draft.to_json())
    for home in c.homes:
        write_genesis(home.path / "genesis.json", genesis)
    c.genesis = genesis


async def build_story(chain: Chain) -> Story:
    p, q = public_key_hex(PATIENT), public_key_hex(OTHER_PATIENT)
    t = chain.tx
    # ---- health records: two patients, two records of P, one of Q
    await chain.ok(
        t("hospital", "patient.enroll", {"patient": p}),
        t("hospital", "patient.enroll", {"patient": q}),
    )
    anchors = [
        ("rec-1", p, "DiagnosticReport"),
        ("rec-2", p, "DiagnosticReport"),
        ("rec-q", q, "DiagnosticReport"),
    ]
    await chain.ok(
        *(
            t(
                "hospital",
                "record.anchor",
                {"record_id": rid, "patient": who, "type": rt, "commitment": h(rid), "version": 1},
            )
            for rid, who, rt in anchors
        )
    )
    period = {"start": 0, "end": 10**15}
    grant_p = t(
        "patient",
        "consent.grant",
        {"grantee": "clinic-b", "scope": "all", "purpose": ["TREAT"], "period": period},
    )
    grant_q = t(
        "other-patient",
        "consent.grant",
        {"grantee": "clinic-b", "scope": "all", "purpose": ["TREAT"], "period": period},
    )
    st_p, st_q = await chain.ok(grant_p, grant_q)
    consent_p = st_p["result"]["data"]["consent_id"]
    consent_q = st_q["result"]["data"]["consent_id"]

    def access(record: str, consent: str) -> Tx:
        body = {"record_id": record, "purpose": "TREAT", "consent_id": consent}
        return t("clinic-b", "access.log", body)

    a1, aq = access("rec-1", consent_p), access("rec-q", consent_q)
    await chain.ok(a1, aq)
    a2 = access("rec-2", consent_p)
    await chain.ok(a2)
    await chain.ok(t("patient", "consent.revoke", {"consent_id": consent_p}))
    (denied,) = await chain.commit(access("rec-1", consent_p))
    assert denied["result"]["code"] == "consent-revoked", denied
    glass = t(
        "clinic-b",
        "access.emergency",
        {"record_id": "rec-2", "reason": "ETREAT", "duration_ms": 1_800_000},
    )
    await chain.ok(glass)

    # ---- supply: S1 and S2 commissioned; S1 goes mfr -> dist -> pharm and is dispensed
    def drug(who: str, tx_type: str, serials: list[str], **extra: str) -> Tx:
        return t(who, tx_type, {"gtin": GTIN, "serials": serials, **extra})

    commission = drug("mfr", "drug.commission", ["S1", "S2"], lot=LOT, expiry=EXPIRY)
    await chain.ok(commission)
    steps = [
        (drug("mfr", "drug.ship", ["S1"], to="dist"), "shipping"),
        (drug("dist", "drug.receive", ["S1"]), "receiving"),
        (drug("dist", "drug.ship", ["S1"], to="pharm"), "shipping"),
        (drug("pharm", "drug.receive", ["S1"]), "receiving"),
    ]
    custody = [(commission.hash, "commissioning")]
    for step, name in steps:
        await chain.ok(step)
        custody.append((step.hash, name))
    # the manufacturer, no longer the custodian, ships S1 again: refused, not custody
    (refused,) = await chain.ok(drug("mfr", "drug.ship", ["S1"], to="pharm"))
    assert refused["result"]["data"]["outcome"] == "refused", refused
    dispense = drug("pharm", "drug.dispense", ["S1"])
    await chain.ok(dispense)
    custody.append((dispense.hash, "dispensing"))

    # ---- trial: registered, enrolment, outcome changed after it (flagged), data, lock,
    # results that switch outcomes (flagged)
    p1, s1, s2 = outcome("P1"), outcome("S1"), outcome("S2")
    register = t(
        "sponsor",
        "trial.register",
        {
            "trial_id": NCT,
            "brief_title": "Drug X versus placebo",
            "protocol_commitment": h("protocol-v1"),
            "sap_commitment": h("sap-v1"),
            "primary_outcomes": [p1],
            "secondary_outcomes": [s1, s2],
            "sites": ["hospital-0", "clinic-b"],
        },
    )
    await chain.ok(register)
    alice = h("participant-alice")
    await chain.ok(
        t(
            "hospital",
            "trial.consent",
            {"trial_id": NCT, "participant": alice, "protocol_version": 1},
        )
    )
    enrol = t("hospital", "trial.enroll", {"trial_id": NCT, "participant": alice})
    await chain.ok(enrol)
    amend = t(
        "sponsor",
        "trial.amend",
        {
            "trial_id": NCT,
            "reason_code": "outcome-change",
            "reason": "new primary outcome",
            "protocol_commitment": h("protocol-v2"),
            "primary_outcomes": [outcome("P1", "a different measure")],
        },
    )
    (amended,) = await chain.ok(amend)
    assert amended["result"]["data"]["flagged"] is True
    data1 = t(
        "hospital", "trial.data", {"trial_id": NCT, "merkle_root": h("b1"), "record_count": 5}
    )
    data2 = t(
        "clinic-b", "trial.data", {"trial_id": NCT, "merkle_root": h("b2"), "record_count": 7}
    )
    await chain.ok(data1)
    await chain.ok(data2)
    lock = t("sponsor", "trial.lock", {"trial_id": NCT, "lock_commitment": h("lock")})
    await chain.ok(lock)
    results = t(
        "sponsor",
        "trial.results",
        {
            "trial_id": NCT,
            "primary_outcomes": [p1],
            "secondary_outcomes": [s1],  # S2 silently dropped
            "results_commitment": h("results"),
        },
    )
    (reported,) = await chain.ok(results)
    assert reported["result"]["data"]["outcome_switching"] is True
    return Story(
        disclosures=[
            (a1.hash, "access", False),
            (a2.hash, "access", False),
            (glass.hash, "emergency", True),
        ],
        custody=custody,
        trial_timeline=[
            (register.hash, "registered"),
            (enrol.hash, "first-enrolment"),
            (amend.hash, "amended"),
            (lock.hash, "locked"),
            (results.hash, "results"),
        ],
        trial_flags=[
            (amend.hash, "outcomes-changed-after-enrolment"),
            (results.hash, "outcome-missing"),
        ],
        trial_data=[(data1.hash, 1), (data2.hash, 2)],
    )


async def hygeia(*args: str | Path) -> tuple[int, str, str]:
    """Run ``hygeia ARGS`` as a process without blocking the node's event loop."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYGEIA_")}
    proc = await asyncio.create_subprocess_exec(
        *HYGEIA,
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def export(out: Path, *args: str | Path) -> list[dict[str, Any]]:
    code, stdout, stderr = await hygeia("export", *args, "--out", out)
    assert code == 0, (stdout, stderr)
    text = out.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    assert stdout.strip() == f"wrote {len(lines)} lines to {out}"
    assert text.endswith("\n") or not text
    assert not out.with_name(out.name + ".partial").exists()
    return lines


def _signed_disclosures(api: str, key: nacl.signing.SigningKey) -> list[dict[str, Any]]:
    """``node.ops.export.disclosures`` of ``key``'s patient, each GET signed by ``key``."""

    def fetch(path: str) -> Any:
        try:
            return signed_request("GET", api.rstrip("/") + path, None, key)[1]
        except ClientError as err:
            if err.status == 404:
                return None
            raise

    return list(ex.disclosures(fetch, public_key_hex(key)))


async def check_proofs(
    c: Cluster, session: aiohttp.ClientSession, lines: list[dict[str, Any]]
) -> None:
    """Every line's tx has a proof that verifies and agrees with the line."""
    keys = [v.public_key for v in c.genesis.validators]
    for line in lines:
        status, proof = await get_json(session, f"{c.homes[0].api_url}/v1/proofs/{line['tx']}")
        assert status == 200, proof
        result = verify_proof(proof, c.chain_id, keys)
        assert (result.tx_hash, result.height, result.index) == (
            line["tx"],
            line["height"],
            line["index"],
        ), line


@pytest.fixture
async def story(
    make_cluster: Callable[..., Cluster],
) -> tuple[Cluster, Story]:
    c = make_cluster(1)
    add_members(c)
    await c.start(0)
    return c, await build_story(Chain(c))


async def test_export_disclosures_custody_and_trial(
    story: tuple[Cluster, Story],
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """Each export lists exactly what was committed, in order, and each line's tx proves."""
    c, s = story
    api = c.homes[0].api_url
    patient = public_key_hex(PATIENT)

    # accounting of disclosures: P's accepted accesses and the break-glass, oldest first;
    # not Q's access, not the access refused after the revocation. A patient's data is read
    # by signed requests only (docs/privacy.md): `hygeia export` signs none, so the export
    # is read here through node.ops.export with requests signed by P's key
    code, _, err = await hygeia(
        "export", "--api", api, "--disclosures", patient, "--out", tmp_path / "d.jsonl"
    )
    assert code == 1 and "401 signature-required" in err, err
    lines = await asyncio.to_thread(_signed_disclosures, api, PATIENT)
    assert [(x["tx"], x["record"]["kind"], x["record"]["emergency"]) for x in lines] == (
        s.disclosures
    )
    assert all(x["kind"] == "disclosure" and x["record"]["patient"] == patient for x in lines)
    assert [x["record"]["record_id"] for x in lines] == ["rec-1", "rec-2", "rec-2"]
    assert [x["record"]["agent"] for x in lines] == ["clinic-b"] * 3
    assert lines[2]["record"]["purpose"] == "ETREAT"
    assert lines[2]["record"]["consent_id"] is None
    assert [x["height"] for x in lines] == sorted(x["height"] for x in lines)
    await check_proofs(c, http, lines)

    # custody: commissioning first, then each accepted step in order; the refused ship is
    # not custody
    lines = await export(tmp_path / "c.jsonl", "--home", c.homes[0].path, "--serial", GTIN, "S1")
    assert [(x["tx"], x["record"]["step"]) for x in lines] == s.custody
    assert all(x["kind"] == "custody" for x in lines)
    assert [x["record"]["by"] for x in lines] == ["mfr", "mfr", "dist", "dist", "pharm", "pharm"]
    assert (lines[0]["record"]["lot"], lines[0]["record"]["expiry"]) == (LOT, EXPIRY)
    assert [lines[1]["record"]["to"], lines[3]["record"]["to"]] == ["dist", "pharm"]
    assert lines[-1]["record"]["disposition"] == "dispensed"
    await check_proofs(c, http, lines)
    s2 = await export(tmp_path / "c2.jsonl", "--api", api, "--serial", GTIN, "S2")
    assert [(x["tx"], x["record"]["step"]) for x in s2] == [s.custody[0]]

    # trial audit report: the timeline in chain order, the findings (the amendment after
    # enrolment and the dropped outcome), then the data commitments
    lines = await export(tmp_path / "t.jsonl", "--api", api, "--trial", NCT)
    assert all(x["kind"] == "trial" for x in lines)
    by_section: dict[str, list[dict[str, Any]]] = {}
    for x in lines:
        by_section.setdefault(x["record"]["section"], []).append(x)
    assert [x["record"]["section"] for x in lines] == (
        ["timeline"] * 5 + ["flag"] * 2 + ["data"] * 2
    )
    assert [(x["tx"], x["record"]["event"]) for x in by_section["timeline"]] == s.trial_timeline
    assert [(x["tx"], x["record"]["code"]) for x in by_section["flag"]] == s.trial_flags
    changed, missing = (x["record"] for x in by_section["flag"])
    assert (changed["changed"], changed["protocol_version"]) == (["P1"], 2)
    assert missing["outcome_id"] == "S2"
    assert [(x["tx"], x["record"]["seq"]) for x in by_section["data"]] == s.trial_data
    assert [x["record"]["record_count"] for x in by_section["data"]] == [5, 7]
    await check_proofs(c, http, lines)

    # one proof through the command line, as an auditor would check it offline
    proof = tmp_path / "proof.json"
    code, _, err = await hygeia("client", "proof", lines[-1]["tx"], "--api", api, "--out", proof)
    assert code == 0, err
    code, out, err = await hygeia(
        "proof", "verify", proof, "--genesis", c.homes[0].path / "genesis.json"
    )
    assert code == 0 and out.startswith("VALID") and lines[-1]["tx"] in out, (out, err)


async def test_export_blocks_range(
    story: tuple[Cluster, Story],
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """--blocks FROM:TO lists every transaction of those heights, in chain order."""
    c, s = story
    api = c.homes[0].api_url
    tip = c.node(0).applier.tip.height
    everything = await export(tmp_path / "all.jsonl", "--api", api, "--blocks", "1:latest")
    want = [(h, i, x) for h in range(1, tip + 1) for i, x in enumerate(c.block(0, h)["tx_hashes"])]
    assert [(x["height"], x["index"], x["tx"]) for x in everything] == want
    assert {x for x, _ in s.custody} <= {x["tx"] for x in everything}
    mid = await export(tmp_path / "mid.jsonl", "--api", api, "--blocks", f"3:{tip - 1}")
    assert mid == [x for x in everything if 3 <= x["height"] <= tip - 1]
    assert all(x["block_hash"] == c.block(0, x["height"])["hash"] for x in mid)
    await check_proofs(c, http, mid)
    after_tip = await export(tmp_path / "none.jsonl", "--api", api, "--blocks", f"{tip + 1}:")
    assert after_tip == []


async def test_export_errors_are_one_line_and_exit_1(
    make_cluster: Callable[..., Cluster],
    tmp_path: Path,
) -> None:
    """Unknown patient, serial or trial, a bad height range, a missing home, no node:
    one ``Error:`` line naming what is wrong, exit code 1, no output file left behind."""
    c = make_cluster(1)
    await c.start(0)
    api = c.homes[0].api_url
    missing = tmp_path / "no-such-home"
    cases = [
        # a patient's data: an unsigned read is refused before anything else (docs/privacy.md)
        (("--disclosures", "ab" * 32), "401 signature-required"),
        (("--disclosures", "not-a-key"), "401 signature-required"),
        (("--serial", GTIN, "S9"), f"serial S9 of GTIN {GTIN} was never commissioned"),
        (("--trial", "NCT00000001"), "trial NCT00000001 is not registered"),
        (("--blocks", "5:2"), "--blocks '5:2': expected FROM:TO with 1 <= FROM <= TO"),
        (("--blocks", "0:3"), "--blocks '0:3': expected FROM:TO with 1 <= FROM <= TO"),
        (("--blocks", "one:two"), "--blocks 'one:two': expected FROM:TO"),
        (("--blocks", "1:100000"), "--blocks '1:100000': the chain ends at height"),
    ]
    out = tmp_path / "x.jsonl"
    for args, message in [
        *((("--api", api, *a), m) for a, m in cases),
        (("--home", missing, "--trial", NCT), f"{missing / 'config.toml'}: not found"),
        (("--api", "http://127.0.0.1:9", "--trial", NCT), "cannot reach the node"),
    ]:
        code, stdout, stderr = await hygeia("export", *args, "--out", out)
        assert code == 1, (args, stdout, stderr)
        assert stderr.startswith("Error: ") and stderr.count("\n") == 1, (args, stderr)
        assert message in stderr, (args, stderr)
        assert not out.exists() and not out.with_name(out.name + ".partial").exists(), args
