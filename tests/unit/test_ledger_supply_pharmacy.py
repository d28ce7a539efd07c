"""The supply domain as a pharmacist needs it (issue 16): expired packs are refused
with an alert, a dispense can be undone within EU FMD's window, a whole shipment or
SSCC is received at once, and verification takes the scanned element string."""

from __future__ import annotations

from typing import Any

import pytest

from node.core.tx import Tx, build_tx
from node.ledger.domains.supply import DOMAIN, list_alerts, verify
from node.ledger.domains.supply_shipments import shipment_key
from node.ledger.domains.supply_undispense import UNDO_WINDOW_MS
from node.ledger.executor import Ledger
from node.ledger.result import Rejection, TxResult
from tests.unit.test_ledger_supply import CHAIN, EXP, GTIN, KEYS, LOT, T0, Net, body_of

DAY = 86_400_000
SSCC = "106141411234567897"
GS = "\x1d"


class Clock(Net):
    """A ``Net`` whose block times can jump ahead (``advance``), never back."""

    def __init__(self) -> None:
        self.offset = 0
        super().__init__()

    def advance(self, ms: int) -> None:
        self.offset += ms

    def block(self, txs: list[Tx], time_ms: int | None = None) -> list[TxResult]:
        return super().block(txs, time_ms or T0 + 1000 * (self.height + 1) + self.offset)

    def rules(self, who: str, tx_type: str, body: dict[str, Any]) -> list[str]:
        return self.refused(who, tx_type, body)


def at(day: str) -> int:
    """Milliseconds from T0 (2026-01-01) to noon UTC of the 2026 date ``MMDD``."""
    month, dom = int(day[:2]), int(day[2:])
    days = sum((31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[: month - 1]) + dom - 1
    return days * DAY + DAY // 2


# ------------------------------------------------------------------ expired packs
def test_shipping_an_expired_pack_is_refused_with_an_alert() -> None:
    """A pack whose expiry day (from its commissioning) is before the block's date
    cannot be shipped: refused with rule ``expired``, alert to the manufacturer, pack
    unchanged. On its expiry day it still ships."""
    net = Clock()
    net.commission("OLD", lot="L-OLD", exp="260110")
    net.commission("DUE", lot="L-DUE", exp="260111")
    net.advance(at("0111"))
    net.ship("mfr", "pharm", "DUE")  # expires today: not yet expired
    assert net.rules("mfr", "drug.ship", body_of("drug.ship", serials=["OLD"])) == ["expired"]
    assert net.info("OLD")["status"] == "commissioned"
    [alert] = list_alerts(net.state)
    assert (alert["rule"], alert["serials"], alert["manufacturer"]) == ("expired", ["OLD"], "mfr")
    assert alert["tx_type"] == "drug.ship"


def test_dispensing_an_expired_pack_is_refused_end_of_month_expiry() -> None:
    """Expiry ``DD`` 00 is the month's last day: a January-2026 pack (260100) dispenses
    on 31 January and is refused with ``expired`` on 1 February; the whole dispense is
    refused, the good pack of it too."""
    net = Clock()
    net.commission("JAN", "JAN2", lot="L-JAN", exp="260100")
    net.commission("GOOD")
    net.ship("mfr", "pharm", "JAN", "JAN2")
    net.receive("pharm", "JAN", "JAN2")
    net.ship("mfr", "pharm", "GOOD")
    net.receive("pharm", "GOOD")
    net.advance(at("0131"))
    net.ok("pharm", "drug.dispense", body_of("drug.dispense", serials=["JAN2"]))
    net.advance(DAY)
    r = net.rules("pharm", "drug.dispense", body_of("drug.dispense", serials=["GOOD", "JAN"]))
    assert r == ["expired"]
    assert net.info("GOOD")["status"] == "held" and net.info("JAN")["status"] == "held"
    net.ok("pharm", "drug.dispense", body_of("drug.dispense", serials=["GOOD"]))


def test_an_expired_pack_can_still_be_received_and_decommissioned_as_expired() -> None:
    """Shipped before its expiry and arriving after it, a pack is received (no alert)
    and can then be decommissioned with reason expired."""
    net = Clock()
    net.commission("P1", lot="L-X", exp="260105")
    net.ship("mfr", "pharm", "P1")
    net.advance(at("0110"))
    net.receive("pharm", "P1")
    net.ok(
        "pharm", "drug.decommission", body_of("drug.decommission", serials=["P1"], reason="expired")
    )
    assert list_alerts(net.state) == []
    assert net.info("P1")["decommission_reason"] == "expired"


# ------------------------------------------------------------------ undo of a dispense
def dispensed(net: Net, *serials: str) -> None:
    net.at_pharmacy(*serials)
    net.ok("pharm", "drug.dispense", body_of("drug.dispense", serials=list(serials)))


def test_undispense_within_the_window_restores_the_pack() -> None:
    """The dispenser's undo, 10 days to the millisecond after the dispense, puts the pack
    back in stock: held, its custodian, no dispenser; it verifies and dispenses again."""
    net = Clock()
    dispensed(net, "S1")
    net.advance(UNDO_WINDOW_MS - 1000)  # the next block is exactly 10 days later
    data = net.ok("pharm", "drug.undispense", {"gtin": GTIN, "serials": ["S1"]})
    assert data["count"] == 1
    info = net.info("S1")
    assert (info["status"], info["custodian"], info["dispensed_by"]) == ("held", "pharm", None)
    check = verify(net.state, GTIN, "S1", LOT, EXP)
    assert check["verified"] is True
    assert check["history"][-1]["step"] == "undispensing"
    assert check["history"][-1]["disposition"] == "active"
    net.ok("pharm", "drug.dispense", body_of("drug.dispense"))
    assert list_alerts(net.state) == []


def test_undispense_after_the_window_is_refused() -> None:
    """One millisecond past 10 days the undo is refused (undispense-late); nothing moves."""
    net = Clock()
    dispensed(net, "S1")
    net.advance(UNDO_WINDOW_MS)  # the next block is 10 days and 1 ms later
    assert net.rules("pharm", "drug.undispense", {"gtin": GTIN, "serials": ["S1"]}) == [
        "undispense-late"
    ]
    assert net.info("S1")["status"] == "dispensed"


def test_undispense_at_another_location_is_refused() -> None:
    """Another dispenser (a hospital) cannot undo the pharmacy's dispense
    (undispense-elsewhere); a distributor lacks the role (rejected, unauthorized)."""
    net = Clock()
    dispensed(net, "S1")
    body = {"gtin": GTIN, "serials": ["S1"]}
    assert net.rules("hosp", "drug.undispense", body) == ["undispense-elsewhere"]
    assert net.run("dist", "drug.undispense", body).code == "unauthorized"
    assert net.info("S1")["dispensed_by"] == "pharm"
    net.ok("pharm", "drug.undispense", body)


@pytest.mark.parametrize(
    ("setup", "rule"),
    [
        ("held", "not-dispensed"),
        ("unknown", "unknown-serial"),
        ("destroyed", "decommissioned-movement"),
        ("recalled", "recalled-movement"),
        ("expired", "expired"),
    ],
)
def test_undispense_of_a_pack_not_dispensed_or_not_revertible(setup: str, rule: str) -> None:
    """EU FMD Art. 13: no undo of a pack that is not dispensed, never existed, was
    destroyed, is recalled or has expired since the dispense."""
    net = Clock()
    if setup == "expired":
        net.commission("S1", lot="L-E", exp="260110")
        net.ship("mfr", "pharm", "S1")
        net.receive("pharm", "S1")
        net.advance(at("0110"))
        net.ok("pharm", "drug.dispense", body_of("drug.dispense"))
        net.advance(DAY)
    elif setup == "held":
        net.at_pharmacy("S1")
    elif setup != "unknown":
        net.at_pharmacy("S1")
        if setup == "destroyed":
            net.ok("pharm", "drug.decommission", body_of("drug.decommission"))
        else:
            net.ok("pharm", "drug.dispense", body_of("drug.dispense"))
            net.ok("mfr", "drug.recall", body_of("drug.recall"))
    else:
        net.commission("S0")
    assert net.rules("pharm", "drug.undispense", {"gtin": GTIN, "serials": ["S1"]}) == [rule]


def test_undispense_is_replay_protected_and_schema_checked() -> None:
    """The same signed undo twice: the second is a replay; unknown fields are malformed."""
    net = Clock()
    dispensed(net, "S1")
    tx = net.tx("pharm", "drug.undispense", {"gtin": GTIN, "serials": ["S1"]})
    first, again = net.block([tx, tx])
    assert first.data["outcome"] == "accepted" and again.code == "replay"
    bad = build_tx(CHAIN, "drug.undispense", {"gtin": GTIN, "serials": ["S1"], "lot": LOT},
                   KEYS["pharm"], 0)  # fmt: skip
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(bad)
    assert err.value.code == "malformed" and "body.lot" in err.value.message


# ------------------------------------------------------------------ whole shipments
def test_receive_a_whole_shipment_by_its_id() -> None:
    """``drug.receive {shipment}`` receives every pack still in transit under it; packs
    received one by one or reported stolen are left out; once all arrived, a second
    whole receive is rejected (shipment-received)."""
    net = Clock()
    net.commission("S1", "S2", "S3", "S4")
    shipment = net.ship("mfr", "pharm", "S1", "S2", "S3", "S4")["shipment"]
    net.receive("pharm", "S1")
    net.ok(
        "mfr", "drug.decommission", body_of("drug.decommission", serials=["S4"], reason="stolen")
    )
    assert net.state.get(shipment_key(shipment))["pending"] == 2
    data = net.ok("pharm", "drug.receive", {"shipment": shipment})
    assert (data["count"], data["shipment"], data["gtin"]) == (2, shipment, GTIN)
    assert [net.info(s)["status"] for s in ("S1", "S2", "S3")] == ["held"] * 3
    assert net.info("S4")["status"] == "decommissioned"
    assert net.state.get(shipment_key(shipment))["pending"] == 0
    assert net.run("pharm", "drug.receive", {"shipment": shipment}).code == "shipment-received"


def test_whole_receive_by_another_member_or_of_an_unknown_shipment() -> None:
    """A whole receive by a member the shipment is not addressed to is refused with
    receive-without-ship listing all its serials; an unknown shipment or SSCC is
    rejected (unknown-shipment)."""
    net = Clock()
    net.commission("S1", "S2")
    shipment = net.ship("mfr", "pharm", "S1", "S2")["shipment"]
    r = net.run("hosp", "drug.receive", {"shipment": shipment})
    assert r.data["rules"] == ["receive-without-ship"]
    assert list_alerts(net.state)[0]["serials"] == ["S1", "S2"]
    assert net.info("S1")["status"] == "in_transit"
    assert net.run("pharm", "drug.receive", {"shipment": "ab" * 32}).code == "unknown-shipment"
    assert net.run("pharm", "drug.receive", {"sscc": SSCC}).code == "unknown-shipment"


def test_whole_receive_runs_the_movement_rules() -> None:
    """A recalled pack in the shipment refuses the whole receive (recalled-movement)."""
    net = Clock()
    net.commission("S1", "S2")
    shipment = net.ship("mfr", "pharm", "S1", "S2")["shipment"]
    net.ok("mfr", "drug.recall", body_of("drug.recall", serials=["S2"]))
    assert net.rules("pharm", "drug.receive", {"shipment": shipment}) == ["recalled-movement"]
    assert net.info("S1")["status"] == "in_transit"


def test_receive_by_sscc_and_sscc_reuse() -> None:
    """A shipment under an SSCC is received by the SSCC alone; while it travels the
    SSCC cannot carry another shipment (sscc-in-transit); once received it can."""
    net = Clock()
    net.commission("S1", "S2", "S3")
    ship = {"gtin": GTIN, "serials": ["S1", "S2"], "to": "pharm", "sscc": SSCC}
    shipment = net.ok("mfr", "drug.ship", ship)["shipment"]
    again = {"gtin": GTIN, "serials": ["S3"], "to": "hosp", "sscc": SSCC}
    assert net.run("mfr", "drug.ship", again).code == "sscc-in-transit"
    data = net.ok("pharm", "drug.receive", {"sscc": SSCC})
    assert (data["count"], data["shipment"]) == (2, shipment)
    assert net.info("S2")["custodian"] == "pharm"
    net.ok("mfr", "drug.ship", again)
    net.ok("hosp", "drug.receive", {"sscc": SSCC})
    assert net.info("S3")["custodian"] == "hosp"


@pytest.mark.parametrize(
    "body",
    [
        {"serials": ["S1"]},  # serials need their GTIN
        {"gtin": GTIN, "serials": ["S1"], "sscc": SSCC},  # sscc is for whole receives
        {"gtin": GTIN},  # a whole receive names no GTIN
        {"shipment": "ab" * 32, "sscc": SSCC},  # both
        {},  # neither
    ],
)
def test_receive_forms_other_than_the_three_are_malformed(body: dict[str, Any]) -> None:
    """Listed serials (with gtin, optional shipment), or shipment alone, or sscc alone."""
    net = Clock()
    net.commission("S1")
    net.ship("mfr", "pharm", "S1")
    assert net.run("pharm", "drug.receive", body).code == "malformed"
    assert net.info("S1")["status"] == "in_transit"


# ------------------------------------------------------------------ scanned verification
HRI = f"(01){GTIN}(21)S1(10){LOT}(17){EXP}"
RAW = f"]d201{GTIN}17{EXP}10{LOT}{GS}21S1\r\n"


@pytest.mark.parametrize("scan", [HRI, RAW])
def test_verify_query_takes_the_scanned_element_string(scan: str) -> None:
    """``scan=`` in either form answers like the four parameters it holds."""
    net = Clock()
    net.at_pharmacy("S1")
    q = {query.path: query.fn for query in DOMAIN.queries}["/supply/verify"]
    by_scan = q(net.state, {}, {"scan": scan})
    by_fields = q(net.state, {}, {"gtin": GTIN, "serial": "S1", "lot": LOT, "expiry": EXP})
    assert by_scan == by_fields and by_scan["verified"] is True


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"scan": HRI, "gtin": GTIN}, "not both"),
        ({"scan": f"(01){GTIN}(21)S1(17){EXP}"}, "scan: has no lot"),
        ({"scan": f"(01){GTIN}(21)S 1(10){LOT}(17){EXP}"}, "AI (21) serial"),
        ({"scan": "(99)123"}, "supported (AI)"),
        ({"scan": "01" + GTIN[:-1] + "0"}, "AI (01) gtin"),
    ],
)
def test_verify_query_refuses_a_bad_scan(query: dict[str, str], message: str) -> None:
    """A scan with the four parameters, lacking a field, or unreadable is malformed."""
    q = {query.path: query.fn for query in DOMAIN.queries}["/supply/verify"]
    with pytest.raises(Rejection) as err:
        q(Clock().state, {}, query)
    assert err.value.code == "malformed" and message in err.value.message
