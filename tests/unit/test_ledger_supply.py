"""The drug supply chain domain: every tx type (valid, unauthorised, malformed, replay),
every counterfeit rule (triggered and not), verification reason codes, alerts, export."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from node.core.keys import key_from_seed, public_key_hex
from node.core.tx import Tx, build_tx
from node.ledger.context import BlockInfo
from node.ledger.domains import supply
from node.ledger.domains.supply import DOMAIN, list_alerts, serial_info, verify
from node.ledger.executor import Ledger
from node.ledger.gs1 import with_check_digit
from node.ledger.result import Rejection, TxResult
from node.ledger.state import BlockState
from storage.memory import MemoryChainStore
from tests.unit.ledger_helpers import execute_and_commit

CHAIN = "test-chain"
KEYS = {
    name: key_from_seed(bytes([i + 1]) * 32)
    for i, name in enumerate(["mfr", "mfr2", "dist", "pharm", "hosp", "reg", "ins", "outsider"])
}
ROLES = {
    "mfr": "manufacturer",
    "mfr2": "manufacturer",
    "dist": "distributor",
    "pharm": "pharmacy",
    "hosp": "hospital",
    "reg": "regulator",
    "ins": "insurer",
}
MEMBERS = [
    {"id": m, "name": m.title(), "roles": [r], "keys": [public_key_hex(KEYS[m])]}
    for m, r in ROLES.items()
]
GTIN = with_check_digit("0061414100003")
GTIN2 = with_check_digit("0061414199999")
LOT, EXP = "LOT-A1", "301231"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class Net:
    """A MemoryChainStore chain executing one block per call."""

    def __init__(self) -> None:
        self.store = MemoryChainStore()
        self.ledger = Ledger()
        self.height = 0
        self.root = b"\0" * 32
        self.nonce = 0
        self.block([])

    def tx(self, who: str, tx_type: str, body: dict[str, Any]) -> Tx:
        self.nonce += 1
        return build_tx(CHAIN, tx_type, body, KEYS[who], self.nonce)

    def block(self, txs: list[Tx], time_ms: int | None = None) -> list[TxResult]:
        self.height += 1
        block = BlockInfo(CHAIN, self.height, time_ms or T0 + 1000 * self.height, 0)
        out = execute_and_commit(self.store, self.ledger, block, txs, self.root, MEMBERS)
        self.root = out.state_root
        return out.results

    def run(self, who: str, tx_type: str, body: dict[str, Any]) -> TxResult:
        return self.block([self.tx(who, tx_type, body)])[0]

    def ok(self, who: str, tx_type: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.run(who, tx_type, body)
        assert r.status == "ok", (r.code, r.message)
        assert r.data["outcome"] == "accepted", r.data
        return r.data

    def refused(self, who: str, tx_type: str, body: dict[str, Any]) -> list[str]:
        r = self.run(who, tx_type, body)
        assert r.status == "ok", (r.code, r.message)
        assert r.data["outcome"] == "refused", r.data
        rules: list[str] = r.data["rules"]
        return rules

    @property
    def state(self) -> BlockState:
        return BlockState(self.store)

    def info(self, serial: str, gtin: str = GTIN) -> dict[str, Any]:
        found = serial_info(self.state, gtin, serial)
        assert found is not None
        return found

    # the happy path, step by step
    def commission(self, *serials: str, lot: str = LOT, exp: str = EXP) -> None:
        self.ok(
            "mfr",
            "drug.commission",
            {"gtin": GTIN, "lot": lot, "expiry": exp, "serials": list(serials)},
        )

    def ship(self, who: str, to: str, *serials: str) -> dict[str, Any]:
        return self.ok(who, "drug.ship", {"gtin": GTIN, "serials": list(serials), "to": to})

    def receive(self, who: str, *serials: str) -> None:
        self.ok(who, "drug.receive", {"gtin": GTIN, "serials": list(serials)})

    def at_pharmacy(self, *serials: str) -> None:
        self.commission(*serials)
        self.ship("mfr", "pharm", *serials)
        self.receive("pharm", *serials)


def body_of(tx_type: str, **over: Any) -> dict[str, Any]:
    base: dict[str, dict[str, Any]] = {
        "drug.commission": {"gtin": GTIN, "lot": LOT, "expiry": EXP, "serials": ["S1"]},
        "drug.ship": {"gtin": GTIN, "serials": ["S1"], "to": "pharm"},
        "drug.receive": {"gtin": GTIN, "serials": ["S1"]},
        "drug.dispense": {"gtin": GTIN, "serials": ["S1"]},
        "drug.decommission": {"gtin": GTIN, "serials": ["S1"], "reason": "destroyed"},
        "drug.recall": {"gtin": GTIN, "serials": ["S1"]},
        "drug.suspect": {"gtin": GTIN, "serials": ["S1"]},
        "drug.clear": {"gtin": GTIN, "serials": ["S1"]},
    }
    return {**base[tx_type], **over}


# ------------------------------------------------------------------ valid, per type
def test_valid_lifecycle_of_every_type() -> None:
    """commission, ship, receive, suspect, clear, dispense, recall and decommission each
    commit ok with outcome accepted, and serial_info follows the pack."""
    net = Net()
    net.commission("S1", "S2", "S3")
    assert net.info("S1")["status"] == "commissioned"
    assert net.info("S1")["custodian"] == "mfr"
    data = net.ship("mfr", "dist", "S1", "S2", "S3")
    assert data["to"] == "dist" and data["count"] == 3
    i = net.info("S1")
    assert (i["status"], i["custodian"], i["recipient"]) == ("in_transit", "mfr", "dist")
    net.receive("dist", "S1", "S2", "S3")
    assert (net.info("S1")["status"], net.info("S1")["custodian"]) == ("held", "dist")
    net.ok(
        "dist",
        "drug.ship",
        {"gtin": GTIN, "serials": ["S1", "S2", "S3"], "to": "pharm", "sscc": "106141411234567897"},
    )
    net.ok("pharm", "drug.receive", {"gtin": GTIN, "serials": ["S1", "S2", "S3"]})
    net.ok("ins", "drug.suspect", {"gtin": GTIN, "serials": ["S2"], "reason": "odd-print"})
    assert net.info("S2")["suspect"] is True
    net.ok("mfr", "drug.clear", {"gtin": GTIN, "serials": ["S2"]})
    assert net.info("S2")["suspect"] is False
    net.ok("pharm", "drug.dispense", {"gtin": GTIN, "serials": ["S1"], "lot": LOT, "expiry": EXP})
    i = net.info("S1")
    assert (i["status"], i["dispensed_by"], i["custodian"]) == ("dispensed", "pharm", "pharm")
    net.ok("reg", "drug.recall", {"gtin": GTIN, "serials": ["S3"], "reason": "FDA-class-II"})
    assert net.info("S3")["recalled"] is True
    net.ok("pharm", "drug.decommission", {"gtin": GTIN, "serials": ["S3"], "reason": "destroyed"})
    assert net.info("S3")["status"] == "decommissioned"
    assert net.info("S2")["status"] == "held"
    assert list_alerts(net.state) == []


def test_serial_info_export_shape() -> None:
    """serial_info returns the fields the claims engine relies on, None for unknown serials."""
    net = Net()
    net.at_pharmacy("S1")
    info = net.info("S1")
    for key in (
        "gtin",
        "serial",
        "lot",
        "expiry",
        "status",
        "custodian",
        "dispensed_by",
        "recalled",
        "suspect",
    ):
        assert key in info
    assert (info["gtin"], info["serial"], info["lot"], info["expiry"]) == (GTIN, "S1", LOT, EXP)
    assert info["dispensed_by"] is None and info["recalled"] is False
    assert serial_info(net.state, GTIN, "NOPE") is None


def test_lot_recall_and_lot_suspect_reach_every_serial_without_touching_them() -> None:
    """A lot-level recall/suspect is one key; serial_info and verify see it for each pack;
    clearing the lot lifts the lot's suspect flag."""
    net = Net()
    net.commission("S1", "S2")
    net.commission("S9", lot="LOT-B")
    net.ok("pharm", "drug.suspect", {"gtin": GTIN, "lot": LOT})
    assert net.info("S1")["suspect"] and net.info("S2")["suspect"]
    assert not net.info("S9")["suspect"]
    net.ok("reg", "drug.clear", {"gtin": GTIN, "lot": LOT})
    assert not net.info("S1")["suspect"]
    net.ok("mfr", "drug.recall", {"gtin": GTIN, "lot": LOT, "reason": "sterility"})
    assert net.info("S1")["recalled"] and net.info("S2")["recalled"]
    assert not net.info("S9")["recalled"]
    assert net.run("mfr", "drug.recall", {"gtin": GTIN, "lot": "NOLOT"}).code == "unknown-lot"


# ------------------------------------------------------------------ unauthorised
@pytest.mark.parametrize(
    ("who", "tx_type"),
    [
        ("pharm", "drug.commission"),
        ("outsider", "drug.commission"),
        ("outsider", "drug.ship"),
        ("outsider", "drug.receive"),
        ("dist", "drug.dispense"),
        ("outsider", "drug.dispense"),
        ("outsider", "drug.decommission"),
        ("pharm", "drug.recall"),
        ("mfr2", "drug.recall"),
        ("outsider", "drug.suspect"),
        ("pharm", "drug.clear"),
        ("mfr2", "drug.clear"),
    ],
)
def test_unauthorised_signers_are_rejected_without_state_change(who: str, tx_type: str) -> None:
    """A non-member, a member lacking the role, or a manufacturer not owning the GTIN
    gets ``unauthorized``; the pack is unchanged."""
    net = Net()
    net.at_pharmacy("S1")
    before = net.info("S1")
    r = net.run(who, tx_type, body_of(tx_type))
    assert (r.status, r.code) == ("rejected", "unauthorized")
    assert net.info("S1") == before


# ------------------------------------------------------------------ malformed
@pytest.mark.parametrize(
    ("tx_type", "over", "where"),
    [
        ("drug.commission", {"gtin": "00614141000037"}, "body.gtin"),  # check digit
        ("drug.commission", {"gtin": "0061414100003"}, "body.gtin"),  # 13 digits
        ("drug.commission", {"expiry": "2030-12-31"}, "body.expiry"),
        ("drug.commission", {"expiry": "301332"}, "body.expiry"),
        ("drug.commission", {"lot": "L" * 21}, "body.lot"),
        ("drug.commission", {"serials": []}, "body.serials"),
        ("drug.commission", {"serials": ["S1", "S1"]}, "body.serials[1]"),
        ("drug.commission", {"serials": [f"S{i}" for i in range(1001)]}, "body.serials"),
        ("drug.commission", {"serials": ["has space"]}, "body.serials[0]"),
        ("drug.commission", {"serials": ["x" * 21]}, "body.serials[0]"),
        ("drug.commission", {"patient": "Jane"}, "body.patient"),
        ("drug.ship", {"sscc": "106141411234567890"}, "body.sscc"),
        ("drug.ship", {"to": ""}, "body.to"),
        ("drug.receive", {"shipment": "xyz"}, "body.shipment"),
        ("drug.dispense", {"expiry": "30123"}, "body.expiry"),
        ("drug.decommission", {"reason": "lost"}, "body.reason"),
        ("drug.recall", {"reason": "free text with spaces"}, "body.reason"),
        ("drug.suspect", {"serials": "S1"}, "body.serials"),
        ("drug.clear", {"gtin": 614141000036}, "body.gtin"),
    ],
)
def test_malformed_bodies_are_refused_with_their_path(
    tx_type: str, over: dict[str, Any], where: str
) -> None:
    """Schema errors (GS1 formats, bounds, unknown fields) name the field at admission."""
    tx = build_tx(CHAIN, tx_type, body_of(tx_type, **over), KEYS["mfr"], 0)
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx)
    assert err.value.code == "malformed" and where in err.value.message


@pytest.mark.parametrize("tx_type", ["drug.recall", "drug.suspect", "drug.clear"])
def test_flag_txs_need_exactly_one_of_lot_or_serials(tx_type: str) -> None:
    """recall/suspect/clear with both lot and serials, or neither, are rejected as malformed."""
    net = Net()
    net.commission("S1")
    both = net.run("mfr", tx_type, {"gtin": GTIN, "lot": LOT, "serials": ["S1"]})
    neither = net.run("mfr", tx_type, {"gtin": GTIN})
    assert both.code == "malformed" and neither.code == "malformed"


def test_ship_to_oneself_or_to_a_non_member_is_rejected() -> None:
    """The recipient must be another active member (a rejection, no alert)."""
    net = Net()
    net.commission("S1")
    assert net.run("mfr", "drug.ship", body_of("drug.ship", to="mfr")).code == "malformed"
    assert net.run("mfr", "drug.ship", body_of("drug.ship", to="ghost")).code == (
        "unknown-recipient"
    )
    assert net.info("S1")["status"] == "commissioned"


def test_commission_rules_that_are_rejections() -> None:
    """Another manufacturer's GTIN, a lot's expiry changed, a recalled lot: rejected."""
    net = Net()
    net.commission("S1")
    other = {"gtin": GTIN, "lot": LOT, "expiry": EXP, "serials": ["Z1"]}
    assert net.run("mfr2", "drug.commission", other).code == "not-gtin-owner"
    changed = {"gtin": GTIN, "lot": LOT, "expiry": "311231", "serials": ["Z1"]}
    assert net.run("mfr", "drug.commission", changed).code == "expiry-conflict"
    net.ok("mfr", "drug.recall", {"gtin": GTIN, "lot": LOT})
    assert net.run("mfr", "drug.commission", body_of("drug.commission", serials=["Z2"])).code == (
        "lot-recalled"
    )


# ------------------------------------------------------------------ replay
@pytest.mark.parametrize(
    "tx_type",
    [
        "drug.commission",
        "drug.ship",
        "drug.receive",
        "drug.dispense",
        "drug.decommission",
        "drug.recall",
        "drug.suspect",
        "drug.clear",
    ],
)
def test_replay_of_every_type_is_rejected(tx_type: str) -> None:
    """The same signed transaction again (same block, later block) is rejected as a replay."""
    net = Net()
    setup: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
        "drug.commission": [],
        "drug.ship": [("mfr", "drug.commission", body_of("drug.commission"))],
        "drug.receive": [
            ("mfr", "drug.commission", body_of("drug.commission")),
            ("mfr", "drug.ship", body_of("drug.ship")),
        ],
    }
    for step in setup.get(tx_type, []):
        net.ok(*step)
    if tx_type not in setup:
        net.at_pharmacy("S1")
    signer = {
        "drug.commission": "mfr",
        "drug.ship": "mfr",
        "drug.receive": "pharm",
        "drug.dispense": "pharm",
        "drug.decommission": "pharm",
        "drug.recall": "mfr",
        "drug.suspect": "ins",
        "drug.clear": "mfr",
    }[tx_type]
    tx = net.tx(signer, tx_type, body_of(tx_type))
    first, again = net.block([tx, tx])
    assert first.status == "ok" and first.data["outcome"] == "accepted"
    assert (again.status, again.code) == ("rejected", "replay")
    assert net.block([tx])[0].code == "replay"


# ------------------------------------------------------------------ counterfeit rules
def test_duplicate_commission_raises_an_alert_and_commissions_nothing() -> None:
    """Commissioning a serial that exists is refused as a whole with a duplicate-commission
    alert (the fresh serial of the same tx is not commissioned either); fresh serials pass."""
    net = Net()
    net.commission("S1")
    rules = net.refused("mfr", "drug.commission", body_of("drug.commission", serials=["S2", "S1"]))
    assert rules == ["duplicate-commission"]
    assert serial_info(net.state, GTIN, "S2") is None
    [alert] = list_alerts(net.state)
    assert (alert["serials"], alert["manufacturer"], alert["by"]) == (["S1"], "mfr", "mfr")
    net.commission("S2", "S3")  # must not alert
    assert len(list_alerts(net.state)) == 1


def test_ship_by_non_custodian_raises_an_alert_and_custodian_ship_does_not() -> None:
    """A member not holding the pack (here the manufacturer after it shipped it on, and a
    pharmacy) cannot ship it: non-custodian alert, pack unchanged; the holder can."""
    net = Net()
    net.at_pharmacy("S1")
    assert net.refused("mfr", "drug.ship", body_of("drug.ship", to="dist")) == ["non-custodian"]
    assert net.refused("dist", "drug.ship", body_of("drug.ship")) == ["non-custodian"]
    assert (net.info("S1")["status"], net.info("S1")["custodian"]) == ("held", "pharm")
    net.ship("pharm", "hosp", "S1")  # must not alert
    assert [a["rule"] for a in list_alerts(net.state)] == ["non-custodian", "non-custodian"]


def test_ship_of_a_pack_in_transit_is_refused() -> None:
    """Shipping again before the receiver received is a non-custodian movement."""
    net = Net()
    net.commission("S1")
    net.ship("mfr", "dist", "S1")
    assert net.refused("mfr", "drug.ship", body_of("drug.ship")) == ["non-custodian"]
    assert net.info("S1")["recipient"] == "dist"


def test_receive_without_matching_ship_raises_an_alert() -> None:
    """Receiving a held pack, a pack shipped to someone else, or naming another shipment
    is refused with receive-without-ship; the addressed recipient's receive passes."""
    net = Net()
    net.commission("S1")
    assert net.refused("dist", "drug.receive", body_of("drug.receive")) == ["receive-without-ship"]
    data = net.ship("mfr", "pharm", "S1")
    assert net.refused("dist", "drug.receive", body_of("drug.receive")) == ["receive-without-ship"]
    wrong = body_of("drug.receive", shipment="ab" * 32)
    assert net.refused("pharm", "drug.receive", wrong) == ["receive-without-ship"]
    assert net.info("S1")["status"] == "in_transit"
    net.ok("pharm", "drug.receive", body_of("drug.receive", shipment=data["shipment"]))
    assert net.info("S1")["custodian"] == "pharm"
    assert len(list_alerts(net.state)) == 3


def test_second_dispense_is_a_clone_alert() -> None:
    """The first dispense passes; a second one of the same serial, by the same or another
    dispenser, is refused with clone-dispense and the first dispenser stays recorded."""
    net = Net()
    net.at_pharmacy("S1")
    net.ok("pharm", "drug.dispense", body_of("drug.dispense"))
    assert list_alerts(net.state) == []
    assert net.refused("pharm", "drug.dispense", body_of("drug.dispense")) == ["clone-dispense"]
    assert net.refused("hosp", "drug.dispense", body_of("drug.dispense")) == ["clone-dispense"]
    assert net.info("S1")["dispensed_by"] == "pharm"
    alerts = list_alerts(net.state, gtin=GTIN)
    assert [a["by"] for a in alerts] == ["pharm", "hosp"]
    assert {a["tx_type"] for a in alerts} == {"drug.dispense"}


def test_dispense_by_a_non_holder_and_of_unknown_serials() -> None:
    """A pharmacy dispensing a pack it does not hold gets non-custodian; a serial never
    commissioned gets unknown-serial; both in one tx give two alerts, nothing dispensed."""
    net = Net()
    net.at_pharmacy("S1")
    r = net.run("hosp", "drug.dispense", body_of("drug.dispense", serials=["S1", "FAKE"]))
    assert r.data["outcome"] == "refused"
    assert r.data["rules"] == ["non-custodian", "unknown-serial"]
    assert len(r.data["alerts"]) == 2
    assert net.info("S1")["status"] == "held"


def test_unknown_serial_movements_alert() -> None:
    """Ship, receive and decommission of a serial never commissioned raise unknown-serial."""
    net = Net()
    net.commission("S1")
    for who, t in (("mfr", "drug.ship"), ("pharm", "drug.receive"), ("mfr", "drug.decommission")):
        assert net.refused(who, t, body_of(t, serials=["GHOST"])) == ["unknown-serial"]


@pytest.mark.parametrize("how", ["serials", "lot"])
def test_movement_of_a_recalled_serial_raises_an_alert(how: str) -> None:
    """After a recall (of the serial or of its lot) ship, receive and dispense are refused
    with recalled-movement; destroying the recalled pack is allowed (no alert)."""
    net = Net()
    net.commission("S1", "S2")
    net.ship("mfr", "pharm", "S2")
    target = {"serials": ["S1", "S2"]} if how == "serials" else {"lot": LOT}
    net.ok("mfr", "drug.recall", {"gtin": GTIN, **target})
    assert net.refused("mfr", "drug.ship", body_of("drug.ship")) == ["recalled-movement"]
    assert net.refused("pharm", "drug.receive", body_of("drug.receive", serials=["S2"])) == [
        "recalled-movement"
    ]
    assert net.info("S2")["status"] == "in_transit"
    net.ok("mfr", "drug.decommission", body_of("drug.decommission"))
    assert net.info("S1")["status"] == "decommissioned"
    assert [a["rule"] for a in list_alerts(net.state)] == ["recalled-movement"] * 2


def test_recalled_pack_cannot_be_dispensed_but_its_lot_sibling_of_another_lot_can() -> None:
    """A recall of one lot blocks dispensing its packs only; another lot's pack dispenses."""
    net = Net()
    net.commission("S1")
    net.commission("S9", lot="LOT-B")
    net.ship("mfr", "pharm", "S1", "S9")
    net.receive("pharm", "S1", "S9")
    net.ok("mfr", "drug.recall", {"gtin": GTIN, "lot": LOT})
    assert net.refused("pharm", "drug.dispense", body_of("drug.dispense")) == ["recalled-movement"]
    net.ok("pharm", "drug.dispense", body_of("drug.dispense", serials=["S9"]))


def test_movement_of_a_decommissioned_serial_raises_an_alert() -> None:
    """A destroyed or dispensed pack cannot be shipped, received, decommissioned again or
    dispensed (decommissioned-movement); an active pack can be decommissioned."""
    net = Net()
    net.at_pharmacy("S1", "S2")
    net.ok("pharm", "drug.decommission", body_of("drug.decommission", reason="expired"))
    net.ok("pharm", "drug.dispense", body_of("drug.dispense", serials=["S2"]))
    for s in ("S1", "S2"):
        assert net.refused("pharm", "drug.ship", body_of("drug.ship", to="hosp", serials=[s])) == [
            "decommissioned-movement"
        ]
        assert net.refused(
            "pharm", "drug.decommission", body_of("drug.decommission", serials=[s])
        ) == ["decommissioned-movement"]
    assert net.refused("pharm", "drug.dispense", body_of("drug.dispense")) == [
        "decommissioned-movement"
    ]


def test_decommission_authority() -> None:
    """Only the holder, the shipper reporting a theft in transit, or a regulator may
    decommission; anyone else gets a non-custodian alert."""
    net = Net()
    net.commission("S1", "S2", "S3")
    assert net.refused("pharm", "drug.decommission", body_of("drug.decommission")) == [
        "non-custodian"
    ]
    net.ship("mfr", "pharm", "S2")
    net.ok(
        "mfr", "drug.decommission", body_of("drug.decommission", serials=["S2"], reason="stolen")
    )
    assert net.info("S2")["status"] == "decommissioned"
    net.ok(
        "reg", "drug.decommission", body_of("drug.decommission", serials=["S3"], reason="sample")
    )
    net.ok("mfr", "drug.decommission", body_of("drug.decommission"))


def test_suspect_pack_cannot_be_dispensed_until_cleared() -> None:
    """A suspect pack's dispense is refused (suspect-dispense); after drug.clear it passes."""
    net = Net()
    net.at_pharmacy("S1")
    net.ok("hosp", "drug.suspect", body_of("drug.suspect"))
    assert net.refused("pharm", "drug.dispense", body_of("drug.dispense")) == ["suspect-dispense"]
    net.ship("pharm", "dist", "S1")  # quarantine moves of a suspect pack are allowed
    net.receive("dist", "S1")
    net.ship("dist", "pharm", "S1")
    net.receive("pharm", "S1")
    net.ok("mfr", "drug.clear", body_of("drug.clear"))
    net.ok("pharm", "drug.dispense", body_of("drug.dispense"))


def test_dispense_with_scanned_lot_or_expiry_mismatch_alerts() -> None:
    """A dispense whose scanned lot or expiry differs from the commissioned ones is refused
    (lot-mismatch, expiry-mismatch); matching values dispense."""
    net = Net()
    net.at_pharmacy("S1")
    assert net.refused("pharm", "drug.dispense", body_of("drug.dispense", lot="OTHER")) == [
        "lot-mismatch"
    ]
    assert net.refused("pharm", "drug.dispense", body_of("drug.dispense", expiry="291231")) == [
        "expiry-mismatch"
    ]
    net.ok("pharm", "drug.dispense", body_of("drug.dispense", lot=LOT, expiry=EXP))


def test_hospital_can_dispense_what_it_holds() -> None:
    """A hospital pharmacy holding a pack may dispense it (role hospital)."""
    net = Net()
    net.commission("S1")
    net.ship("mfr", "hosp", "S1")
    net.receive("hosp", "S1")
    net.ok("hosp", "drug.dispense", body_of("drug.dispense"))
    assert net.info("S1")["dispensed_by"] == "hosp"


# ------------------------------------------------------------------ verification
def test_verification_reason_codes() -> None:
    """verify answers verified yes for a good pack and each reason code otherwise."""
    net = Net()
    net.at_pharmacy("S1", "S2", "S3", "S4", "S5")
    net.commission("OLD", lot="LOT-OLD", exp="251200")
    st = net.state
    good = verify(st, GTIN, "S1", LOT, EXP)
    assert good["verified"] is True and good["reasons"] == []
    assert [e["step"] for e in good["history"]] == ["commissioning", "shipping", "receiving"]
    assert verify(st, GTIN2, "S1", LOT, EXP)["reasons"] == ["unknown-product"]
    assert verify(st, GTIN, "NOPE", LOT, EXP)["reasons"] == ["unknown-serial"]
    assert verify(st, GTIN, "S1", "X", "311231")["reasons"] == ["lot-mismatch", "expiry-mismatch"]
    assert verify(st, GTIN, "OLD", "LOT-OLD", "251200")["reasons"] == ["expired"]
    net.ok("pharm", "drug.dispense", body_of("drug.dispense", serials=["S1"]))
    net.ok(
        "pharm", "drug.decommission", body_of("drug.decommission", serials=["S2"], reason="stolen")
    )
    net.ok("pharm", "drug.decommission", body_of("drug.decommission", serials=["S3"]))
    net.ok("mfr", "drug.recall", body_of("drug.recall", serials=["S4"]))
    net.ok("ins", "drug.suspect", body_of("drug.suspect", serials=["S5"]))
    st = net.state
    assert verify(st, GTIN, "S1", LOT, EXP)["reasons"] == ["already-dispensed"]
    assert verify(st, GTIN, "S2", LOT, EXP)["reasons"] == ["stolen"]
    assert verify(st, GTIN, "S3", LOT, EXP)["reasons"] == ["decommissioned"]
    assert verify(st, GTIN, "S4", LOT, EXP)["reasons"] == ["recalled"]
    assert verify(st, GTIN, "S5", LOT, EXP)["reasons"] == ["suspect"]
    hist = verify(st, GTIN, "S1", LOT, EXP)["history"]
    assert hist[-1]["step"] == "dispensing" and hist[-1]["by"] == "pharm"


def test_queries_are_registered_and_check_their_parameters() -> None:
    """The verify, packs and alerts queries answer through the Domain and refuse bad input."""
    net = Net()
    net.at_pharmacy("S1")
    q = {query.path: query.fn for query in DOMAIN.queries}
    st = net.state
    ans = q["/supply/verify"](st, {}, {"gtin": GTIN, "serial": "S1", "lot": LOT, "expiry": EXP})
    assert ans["verified"] is True
    with pytest.raises(Rejection):
        q["/supply/verify"](st, {}, {"gtin": GTIN, "serial": "S1", "lot": LOT})
    with pytest.raises(Rejection):
        q["/supply/verify"](st, {}, {"gtin": "123", "serial": "S1", "lot": LOT, "expiry": EXP})
    pack = q["/supply/packs"](st, {}, {"gtin": GTIN, "serial": "S1"})
    assert pack["custodian"] == "pharm" and len(pack["history"]) == 3
    assert q["/supply/packs"](st, {}, {"gtin": GTIN, "serial": "S2"}) is None
    with pytest.raises(Rejection):
        q["/supply/alerts"](st, {}, {"limit": "0"})


def test_pack_history_says_when_it_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    """The packs query lists at most MAX_EVENTS_PAGE custody events after the
    commissioning and says whether there are more: exactly that many is complete."""
    net = Net()
    net.at_pharmacy("S1")  # two custody events: shipping, receiving
    q = {query.path: query.fn for query in DOMAIN.queries}
    monkeypatch.setattr(supply, "MAX_EVENTS_PAGE", 2)
    pack = q["/supply/packs"](net.state, {}, {"gtin": GTIN, "serial": "S1"})
    assert len(pack["history"]) == 3 and pack["history_truncated"] is False
    monkeypatch.setattr(supply, "MAX_EVENTS_PAGE", 1)
    pack = q["/supply/packs"](net.state, {}, {"gtin": GTIN, "serial": "S1"})
    assert [e["step"] for e in pack["history"]] == ["commissioning", "shipping"]
    assert pack["history_truncated"] is True


def test_alerts_filter_by_gtin_and_manufacturer_and_page() -> None:
    """Alerts list oldest first, filter by GTIN and manufacturer, and page with after/limit."""
    net = Net()
    net.at_pharmacy("S1")
    net.ok("mfr2", "drug.commission", {"gtin": GTIN2, "lot": LOT, "expiry": EXP, "serials": ["T1"]})
    net.refused("dist", "drug.ship", body_of("drug.ship"))
    net.refused("dist", "drug.ship", {"gtin": GTIN2, "serials": ["T1"], "to": "pharm"})
    net.refused("dist", "drug.receive", body_of("drug.receive"))
    q = {query.path: query.fn for query in DOMAIN.queries}["/supply/alerts"]
    st = net.state
    assert len(q(st, {}, {})["alerts"]) == 3
    assert [a["gtin"] for a in q(st, {}, {"gtin": GTIN2})["alerts"]] == [GTIN2]
    assert len(q(st, {}, {"manufacturer": "mfr"})["alerts"]) == 2
    assert q(st, {}, {"manufacturer": "mfr2"})["alerts"][0]["manufacturer"] == "mfr2"
    page = q(st, {}, {"limit": "2"})
    rest = q(st, {}, {"after": page["next"]})
    assert len(page["alerts"]) == 2 and len(rest["alerts"]) == 1


def test_state_roots_are_deterministic() -> None:
    """Two chains executing the same supply transactions (alerts included) agree on roots."""
    roots = []
    for _ in range(2):
        net = Net()
        net.nonce = 100
        net.at_pharmacy("S1", "S2")
        net.ok("pharm", "drug.dispense", body_of("drug.dispense"))
        net.refused("hosp", "drug.dispense", body_of("drug.dispense"))
        roots.append(net.root)
    assert roots[0] == roots[1]


def _doc_table_codes(doc: str, heading: str) -> set[str]:
    """The first-column codes of the table under ``heading`` in docs/supply-chain.md."""
    section = doc.split(heading, 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([a-z-]+)` \|", section, re.MULTILINE))


def test_rule_reason_and_status_codes_are_the_documented_ones() -> None:
    """supply.RULES, REASONS and STATUSES name exactly the codes docs/supply-chain.md
    documents (alert rules, verification reasons, pack statuses)."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "supply-chain.md").read_text("utf-8")
    assert _doc_table_codes(doc, "### Counterfeit rules") == set(supply.RULES)
    assert _doc_table_codes(doc, "### Verification reason codes") == set(supply.REASONS)
    status_line = doc.split("* `status`:", 1)[1].split("\n*", 1)[0]
    assert set(re.findall(r"`([a-z_]+)`", status_line)) == set(supply.STATUSES)
