"""GS1 EPCIS 2.0 JSON-LD (node/ops/formats/epcis.py): the export of real ledger answers,
validated against GS1's published EPCIS 2.0 JSON Schema (tests/data/epcis/); the import
of commissioning and shipping events, each rule refused and accepted, its bodies run
on a ledger; the identifiers; and the CLI's history/export-epcis/import-epcis."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator  # type: ignore[import-untyped]  # no stubs bundled

from node.core.keys import generate_key, save_key
from node.ledger.domains.supply import COMMISSION, DOMAIN, SHIP
from node.ledger.gs1 import with_check_digit
from node.ops.formats import FormatError
from node.ops.formats.epcis import (
    CONTEXT,
    EXPIRY_DATE,
    GS1_EXPIRY,
    LOT_NUMBER,
    MEMBER_URN,
    epcis_to_bodies,
    packs_to_epcis,
    parse_sgtin,
    parse_sscc,
    sgtin_uri,
    sscc_uri,
)
from tests.unit.test_cli_client import API, TX_HASH, FakeNode, run
from tests.unit.test_ledger_supply import EXP, GTIN, GTIN2, LOT, Net

SCHEMA_FILE = Path(__file__).parent.parent / "data" / "epcis" / "EPCIS-JSON-Schema.json"
SSCC = with_check_digit("00614141123456789"[:17])
PACKS = "/supply/packs"


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    """GS1's EPCIS 2.0 JSON Schema with its formats (uri, date-time) checked too."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


def errors(validator: Draft7Validator, doc: Any) -> list[str]:
    return [e.message for e in validator.iter_errors(doc)]


def pack(net: Net, serial: str, gtin: str = GTIN) -> dict[str, Any]:
    """The node's answer to GET /v1/supply/packs, as JSON (what the CLI receives)."""
    fn = next(q.fn for q in DOMAIN.queries if q.path == PACKS)
    answer = fn(net.state, {}, {"gtin": gtin, "serial": serial})
    assert answer is not None
    loaded: dict[str, Any] = json.loads(json.dumps(answer))
    return loaded


def lifecycle() -> Net:
    """S1, S2 commissioned together, shipped under an SSCC to dist, received; S1 on to
    pharm, received, dispensed and undispensed; S2 recalled and destroyed."""
    net = Net()
    net.commission("S1", "S2")
    net.ok("mfr", "drug.ship", {"gtin": GTIN, "serials": ["S1", "S2"], "to": "dist", "sscc": SSCC})
    net.receive("dist", "S1", "S2")
    net.ship("dist", "pharm", "S1")
    net.receive("pharm", "S1")
    net.ok("pharm", "drug.dispense", {"gtin": GTIN, "serials": ["S1"]})
    net.ok("pharm", "drug.undispense", {"gtin": GTIN, "serials": ["S1"]})
    net.ok("mfr", "drug.recall", {"gtin": GTIN, "serials": ["S2"], "reason": "sterility"})
    net.ok("dist", "drug.decommission", {"gtin": GTIN, "serials": ["S2"], "reason": "destroyed"})
    return net


def shipped() -> Net:
    """S1, S2 commissioned and shipped to dist under an SSCC: what a manufacturer imports."""
    net = Net()
    net.commission("S1", "S2")
    net.ok("mfr", "drug.ship", {"gtin": GTIN, "serials": ["S1", "S2"], "to": "dist", "sscc": SSCC})
    return net


# ----------------------------------------------------------------- export
def test_the_export_of_a_whole_lifecycle_is_valid_epcis_2(validator: Draft7Validator) -> None:
    net = lifecycle()
    doc = packs_to_epcis([pack(net, "S1"), pack(net, "S2")])
    assert errors(validator, doc) == []
    assert doc["type"] == "EPCISDocument" and doc["schemaVersion"] == "2.0"
    assert doc["@context"][0] == CONTEXT
    steps = [(e["type"], e["action"], e["bizStep"], e["disposition"]) for e in events(doc)]
    assert steps == [
        ("ObjectEvent", "ADD", "commissioning", "active"),
        ("ObjectEvent", "OBSERVE", "shipping", "in_transit"),
        ("AggregationEvent", "OBSERVE", "shipping", "in_transit"),
        ("ObjectEvent", "OBSERVE", "receiving", "in_progress"),
        ("ObjectEvent", "OBSERVE", "shipping", "in_transit"),
        ("ObjectEvent", "OBSERVE", "receiving", "in_progress"),
        ("ObjectEvent", "OBSERVE", "dispensing", "dispensed"),
        ("ObjectEvent", "OBSERVE", "urn:hygeia:bizstep:undispensing", "active"),
        ("ObjectEvent", "OBSERVE", "holding", "recalled"),
        ("ObjectEvent", "DELETE", "decommissioning", "destroyed"),
    ]


def events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = doc["epcisBody"]["eventList"]
    return found


def test_one_transaction_of_several_packs_is_one_event_listing_them() -> None:
    net = lifecycle()
    both = [sgtin_uri(GTIN, "S1"), sgtin_uri(GTIN, "S2")]
    evs = events(packs_to_epcis([pack(net, "S1"), pack(net, "S2")]))
    assert [e.get("epcList", e.get("childEPCs")) for e in evs[:4]] == [both] * 4
    assert evs[4]["epcList"] == [sgtin_uri(GTIN, "S1")]  # S1 alone went on to pharm
    ids = [e["eventID"] for e in evs if "eventID" in e]
    assert len(ids) == len(set(ids)) == len(evs) - 1  # the commissioning has no tx hash


def test_commissioning_carries_lot_and_expiry_and_times_are_utc() -> None:
    net = lifecycle()
    doc = packs_to_epcis([pack(net, "S1")])
    commissioning = events(doc)[0]
    assert commissioning["ilmd"] == {LOT_NUMBER: LOT, EXPIRY_DATE: "2030-12-31", GS1_EXPIRY: EXP}
    assert commissioning["readPoint"] == commissioning["bizLocation"] == {"id": MEMBER_URN + "mfr"}
    assert commissioning["eventTime"] == "2026-01-01T00:00:02.000Z"  # block 2: T0 + 2 s
    assert {e["eventTimeZoneOffset"] for e in events(doc)} == {"+00:00"}
    assert doc["creationDate"] == events(doc)[-1]["eventTime"]  # the newest event, no clock


def test_shipping_names_sender_recipient_shipment_and_sscc() -> None:
    net = lifecycle()
    ship, aggregation, receive = events(packs_to_epcis([pack(net, "S1")]))[1:4]
    tx = ship["eventID"].removeprefix("urn:hygeia:tx:")
    assert ship["sourceList"] == [{"type": "possessing_party", "source": MEMBER_URN + "mfr"}]
    dest = [{"type": "possessing_party", "destination": MEMBER_URN + "dist"}]
    assert ship["destinationList"] == dest and "bizLocation" not in ship
    assert ship["bizTransactionList"] == [
        {"type": "desadv", "bizTransaction": "urn:hygeia:shipment:" + tx}
    ]
    assert aggregation["parentID"] == sscc_uri(SSCC) == f"https://id.gs1.org/00/{SSCC}"
    assert aggregation["eventID"] == ship["eventID"] + ":aggregation"
    assert receive["sourceList"][0]["source"] == MEMBER_URN + "mfr"
    assert receive["bizLocation"] == {"id": MEMBER_URN + "dist"}


def test_a_shipment_without_sscc_has_no_aggregation_event(validator: Draft7Validator) -> None:
    net = Net()
    net.at_pharmacy("S1")
    doc = packs_to_epcis([pack(net, "S1")])
    assert [e["type"] for e in events(doc)] == ["ObjectEvent"] * 3
    assert errors(validator, doc) == []


@pytest.mark.parametrize("reason", ["destroyed", "expired", "stolen", "sample"])
def test_flags_and_every_decommission_reason_export_validly(
    validator: Draft7Validator, reason: str
) -> None:
    net = Net()
    net.commission("S1")
    net.ok("dist", "drug.suspect", {"gtin": GTIN, "serials": ["S1"], "reason": "tamper"})
    net.ok("mfr", "drug.clear", {"gtin": GTIN, "serials": ["S1"]})
    net.ok("mfr", "drug.decommission", {"gtin": GTIN, "serials": ["S1"], "reason": reason})
    doc = packs_to_epcis([pack(net, "S1")])
    assert errors(validator, doc) == []
    steps = [(e["action"], e["bizStep"], e["disposition"]) for e in events(doc)[1:]]
    assert steps == [
        ("OBSERVE", "inspecting", "non_sellable_other"),
        ("OBSERVE", "inspecting", "active"),
        ("DELETE", "decommissioning", "inactive" if reason == "sample" else reason),
    ]
    assert "tamper" not in json.dumps(doc)  # reason codes stay on the chain


def test_the_schema_check_is_real(validator: Draft7Validator) -> None:
    """GS1's schema refuses what an EPCIS 2.0 document must not be."""
    doc = packs_to_epcis([pack(lifecycle(), "S1")])
    for path, value in [("action", "MOVE"), ("eventTimeZoneOffset", "UTC"), ("eventTime", "x")]:
        bad = copy.deepcopy(doc)
        events(bad)[0][path] = value
        assert errors(validator, bad), path
    bad = copy.deepcopy(doc)
    events(bad)[0]["ilmd"]["lot number"] = "x"  # extension keys must be URIs
    assert errors(validator, bad)


def test_epcs_are_digital_link_uris_with_encoded_serials() -> None:
    for serial in ("S1", "A/B%C", "x?y=z", "(01)&'*+,:;<=>!"[:20]):
        uri = sgtin_uri(GTIN, serial)
        assert uri.startswith(f"https://id.gs1.org/01/{GTIN}/21/")
        assert "/" not in uri.removeprefix(f"https://id.gs1.org/01/{GTIN}/21/")
        assert parse_sgtin(uri, "epc") == (GTIN, serial)


def test_sgtin_and_sscc_urns_are_read() -> None:
    """The GS1 EPC Tag Data Standard's own examples."""
    assert parse_sgtin("urn:epc:id:sgtin:0614141.812345.6789", "e") == ("80614141123458", "6789")
    assert parse_sgtin("urn:epc:id:sgtin:0614141.812345.A%2FB", "e") == ("80614141123458", "A/B")
    assert parse_sscc("urn:epc:id:sscc:0614141.1234567890", "e") == "106141412345678908"
    assert parse_sscc(sscc_uri(SSCC), "e") == SSCC
    for bad in ("urn:epc:id:sgtin:0614141.81234.6789", "https://id.gs1.org/01/123/21/S1", 7):
        with pytest.raises(FormatError):
            parse_sgtin(bad, "e")
    for raw in ("A%ZZ", "A%2", "A B", "%C3%A9"):  # no escape, half an escape, a space, é
        with pytest.raises(FormatError):
            parse_sgtin(f"https://id.gs1.org/01/{GTIN}/21/{raw}", "e")
    bad_digit = f"https://id.gs1.org/01/{GTIN[:-1]}{(int(GTIN[-1]) + 1) % 10}/21/S1"
    with pytest.raises(FormatError, match="check digit"):
        parse_sgtin(bad_digit, "e")
    with pytest.raises(FormatError):
        parse_sscc("https://id.gs1.org/00/106141412345678909", "e")


def test_a_day_00_expiry_keeps_its_printed_form() -> None:
    net = Net()
    net.commission("S1", exp="301200")
    ilmd = events(packs_to_epcis([pack(net, "S1")]))[0]["ilmd"]
    assert ilmd[EXPIRY_DATE] == "2030-12-31" and ilmd[GS1_EXPIRY] == "301200"


@pytest.mark.parametrize(
    "change, where",
    [
        (lambda p: p.update(history_truncated=True), "packs[0].history"),
        (lambda p: p["history"][1].update(step="teleporting"), "packs[0].history[1].step"),
        (lambda p: p["history"][1].update(disposition="lost"), "packs[0].history[1].disposition"),
        (lambda p: p["history"][1].update(by="a b"), "packs[0].history[1].by"),
        (lambda p: p["history"][1].update(to="<x>"), "packs[0].history[1].to"),
        (lambda p: p["history"][1].update(tx="zz"), "packs[0].history[1].tx"),
        (lambda p: p["history"][1].update(sscc="123"), "packs[0].history[1].sscc"),
        (lambda p: p["history"][1].update(time=-1), "packs[0].history[1].time"),
        (lambda p: p["history"][0].update(expiry="301301"), "packs[0].history[0].expiry"),
        (lambda p: p.update(serial="with space"), "packs[0]"),
        (lambda p: p.update(history=[]), "packs[0].history"),
    ],
)
def test_an_answer_that_cannot_be_exported_is_refused(change: Any, where: str) -> None:
    answer = pack(lifecycle(), "S1")
    assert packs_to_epcis([copy.deepcopy(answer)])
    change(answer)
    with pytest.raises(FormatError) as info:
        packs_to_epcis([answer])
    assert info.value.path == where, str(info.value)


def test_two_answers_that_disagree_on_a_transaction_are_refused() -> None:
    net = lifecycle()
    s1, s2 = pack(net, "S1"), pack(net, "S2")
    s2["history"][1]["to"] = "pharm"  # the same ship tx, another recipient
    with pytest.raises(FormatError, match="differs from transaction"):
        packs_to_epcis([s1, s2])
    with pytest.raises(FormatError, match="no pack"):
        packs_to_epcis([])


# ----------------------------------------------------------------- import
def exported() -> dict[str, Any]:
    """The EPCIS document of a commissioning and an SSCC shipment of S1 and S2."""
    net = shipped()
    return packs_to_epcis([pack(net, "S1"), pack(net, "S2")])


COMMISSIONED = {"gtin": GTIN, "lot": LOT, "expiry": EXP, "serials": ["S1", "S2"]}
SHIPPED = {"gtin": GTIN, "serials": ["S1", "S2"], "to": "dist", "sscc": SSCC}


def test_an_export_imports_back_to_the_same_bodies_that_the_ledger_accepts() -> None:
    txs = epcis_to_bodies(exported())
    assert txs == [("drug.commission", COMMISSIONED), ("drug.ship", SHIPPED)]
    net = Net()  # a fresh chain: the imported bodies run there as they ran on the first
    for tx_type, body in txs:
        net.ok("mfr", tx_type, body)
    assert pack(net, "S2")["status"] == "in_transit"
    COMMISSION.schema.check(txs[0][1], "body")
    SHIP.schema.check(txs[1][1], "body")


def test_a_third_party_document_with_urns_and_cbv_uris_imports() -> None:
    """EPCIS 1.x style URNs and CBV 2.0 URIs map as the bare terms do; the time, the
    place, business references and master data are not copied into any body."""
    gtin = "80614141123458"
    doc = {
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2024-03-01T10:00:00Z",
        "epcisHeader": {"epcisMasterData": {"vocabularyList": [{"name": "Acme Pharma"}]}},
        "epcisBody": {
            "eventList": [
                {
                    "type": "ObjectEvent",
                    "eventTime": "2024-03-01T09:00:00+01:00",
                    "eventTimeZoneOffset": "+01:00",
                    "epcList": ["urn:epc:id:sgtin:0614141.812345.6789"],
                    "action": "ADD",
                    "bizStep": "https://ref.gs1.org/cbv/BizStep-commissioning",
                    "disposition": "urn:epcglobal:cbv:disp:active",
                    "readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234"},
                    "ilmd": {
                        "urn:epcglobal:cbv:mda:lotNumber": "L9",
                        "cbvmda:itemExpirationDate": "2027-06-30",
                    },
                },
                {
                    "type": "ObjectEvent",
                    "eventTime": "2024-03-02T09:00:00+01:00",
                    "eventTimeZoneOffset": "+01:00",
                    "epcList": [f"https://id.gs1.org/01/{gtin}/21/6789"],
                    "action": "OBSERVE",
                    "bizStep": "urn:epcglobal:cbv:bizstep:shipping",
                    "bizTransactionList": [{"type": "po", "bizTransaction": "urn:x:po:Acme-1"}],
                    "sourceList": [{"type": "owning_party", "source": "urn:x:Acme"}],
                    "destinationList": [
                        {"type": "cbv:SDT-owning_party", "destination": MEMBER_URN + "pharm"},
                        {"type": "possessing_party", "destination": MEMBER_URN + "pharm"},
                    ],
                },
            ]
        },
    }
    txs = epcis_to_bodies(doc)
    assert txs == [
        ("drug.commission", {"gtin": gtin, "lot": "L9", "expiry": "270630", "serials": ["6789"]}),
        ("drug.ship", {"gtin": gtin, "serials": ["6789"], "to": "pharm"}),
    ]
    text = json.dumps(txs)
    assert "Acme" not in text and "sgln" not in text and "2024" not in text


def test_the_printed_expiry_wins_when_it_names_the_same_day() -> None:
    doc = exported()
    ilmd = events(doc)[0]["ilmd"]
    ilmd[EXPIRY_DATE], ilmd[GS1_EXPIRY] = "2030-12-31", "301200"
    assert epcis_to_bodies(doc)[0][1]["expiry"] == "301200"
    del ilmd[GS1_EXPIRY]
    assert epcis_to_bodies(doc)[0][1]["expiry"] == "301231"
    ilmd["urn:hygeia:epcis:gs1Expiry"] = "301231"  # the expanded IRI is the same term
    assert epcis_to_bodies(doc)[0][1]["expiry"] == "301231"


def doc_with(change: Any) -> dict[str, Any]:
    doc = exported()
    change(doc, events(doc))
    return doc


def _drop(d: dict[str, Any], key: str) -> None:
    del d[key]


E0, E1, E2 = "epcisBody.eventList[0]", "epcisBody.eventList[1]", "epcisBody.eventList[2]"


@pytest.mark.parametrize(
    "change, where",
    [
        (lambda d, e: d.update(type="EPCISQueryDocument"), "type"),
        (lambda d, e: d.update(schemaVersion="1.2"), "schemaVersion"),
        (lambda d, e: d.update(epcisBody={"eventList": []}), "epcisBody.eventList"),
        (lambda d, e: e[0].update(type="TransformationEvent"), f"{E0}.type"),
        (lambda d, e: e[0].update(bizStep="receiving"), f"{E0}.bizStep"),
        (lambda d, e: e[0].update(action="OBSERVE"), f"{E0}.action"),
        (lambda d, e: e[1].update(action="ADD"), f"{E1}.action"),
        (lambda d, e: e[0].update(disposition="recalled"), f"{E0}.disposition"),
        (lambda d, e: e[1].update(disposition="stolen"), f"{E1}.disposition"),
        (
            lambda d, e: e[0].update(quantityList=[{"epcClass": "x", "quantity": 1}]),
            f"{E0}.quantityList",
        ),
        (
            lambda d, e: e[0].update(errorDeclaration={"declarationTime": "x"}),
            f"{E0}.errorDeclaration",
        ),
        (
            lambda d, e: e[1].update(persistentDisposition={"set": ["x"]}),
            f"{E1}.persistentDisposition",
        ),
        (lambda d, e: e[1].update(sensorElementList=[{}]), f"{E1}.sensorElementList"),
        (lambda d, e: e[1].update({"example:note": "free text"}), f"{E1}.example:note"),
        (lambda d, e: _drop(e[0]["ilmd"], LOT_NUMBER), f"{E0}.ilmd.{LOT_NUMBER}"),
        (lambda d, e: _drop(e[0], "ilmd"), f"{E0}.ilmd"),
        (lambda d, e: e[0]["ilmd"].update({LOT_NUMBER: "bad lot"}), f"{E0}.ilmd.{LOT_NUMBER}"),
        (
            lambda d, e: e[0]["ilmd"].update({"cbvmda:countryOfOrigin": "DE"}),
            f"{E0}.ilmd.cbvmda:countryOfOrigin",
        ),
        (lambda d, e: e[0]["ilmd"].update({EXPIRY_DATE: "2030-02-30"}), f"{E0}.ilmd.{EXPIRY_DATE}"),
        (lambda d, e: e[0]["ilmd"].update({EXPIRY_DATE: "2130-01-01"}), f"{E0}.ilmd.{EXPIRY_DATE}"),
        (lambda d, e: e[0]["ilmd"].update({GS1_EXPIRY: "301100"}), f"{E0}.ilmd.{GS1_EXPIRY}"),
        (
            lambda d, e: e[0].update(destinationList=e[1]["destinationList"]),
            f"{E0}.destinationList",
        ),
        (lambda d, e: e[1].update(ilmd={}), f"{E1}.ilmd"),
        (lambda d, e: e[0]["epcList"].append(sgtin_uri(GTIN2, "S3")), f"{E0}.epcList"),
        (lambda d, e: e[0]["epcList"].append(sgtin_uri(GTIN, "S1")), f"{E0}.epcList"),
        (
            lambda d, e: e[0].update(epcList=["urn:epc:id:sscc:0614141.1234567890"]),
            f"{E0}.epcList[0]",
        ),
        (lambda d, e: _drop(e[1], "destinationList"), f"{E1}.destinationList"),
        (
            lambda d, e: e[1]["destinationList"][0].update(
                destination="urn:epc:id:sgln:0614141.07346.0"
            ),
            f"{E1}.destinationList[0].destination",
        ),
        (
            lambda d, e: e[1]["destinationList"][0].update(type="location"),
            f"{E1}.destinationList[0].type",
        ),
        (
            lambda d, e: e[1]["destinationList"].append(
                {"type": "owning_party", "destination": MEMBER_URN + "pharm"}
            ),
            f"{E1}.destinationList",
        ),
        (
            lambda d, e: e[2].update(parentID="urn:epc:id:sgtin:0614141.812345.6789"),
            f"{E2}.parentID",
        ),
        (lambda d, e: e[2].update(childEPCs=[sgtin_uri(GTIN, "S1")]), E2),
        (lambda d, e: e[2].update(bizStep="packing"), f"{E2}.bizStep"),
        (lambda d, e: e[2].update(childQuantityList=[]), f"{E2}.childQuantityList"),
        (lambda d, e: e.insert(0, copy.deepcopy(e[2])), E0),
    ],
)
def test_what_the_ledger_cannot_record_is_refused(change: Any, where: str) -> None:
    assert epcis_to_bodies(doc_with(lambda d, e: None))  # unchanged, it imports
    with pytest.raises(FormatError) as info:
        epcis_to_bodies(doc_with(change))
    assert info.value.path == where, str(info.value)


def test_an_event_of_more_than_a_transaction_of_packs_is_refused() -> None:
    serials = [f"S{i}" for i in range(1001)]
    doc = doc_with(lambda d, e: e[0].update(epcList=[sgtin_uri(GTIN, s) for s in serials]))
    with pytest.raises(FormatError, match="at most 1000"):
        epcis_to_bodies(doc)
    with pytest.raises(FormatError, match="JSON object"):
        epcis_to_bodies([])


# ----------------------------------------------------------------- the CLI
def test_history_and_export_write_epcis(node: FakeNode, validator: Draft7Validator) -> None:
    node.routes["/v1/supply/packs"] = pack(lifecycle(), "S1")
    out = run(
        "supply", "history", "--api", API, "--gtin", GTIN, "--serial", "S1", "--format", "epcis"
    )
    assert out.exit_code == 0, out.output
    assert errors(validator, json.loads(out.output)) == []
    out = run(
        "supply", "export-epcis", "--api", API, "--gtin", GTIN, "--serial", "S1", "--serial", "S1b"
    )
    assert out.exit_code == 0, out.output
    assert node.gets[-2:] == [
        f"/v1/supply/packs?gtin={GTIN}&serial=S1",
        f"/v1/supply/packs?gtin={GTIN}&serial=S1b",
    ]
    plain = run("supply", "history", "--api", API, "--gtin", GTIN, "--serial", "S1")
    assert json.loads(plain.output)["custodian"] == "pharm"  # json stays the node's answer
    node.routes["/v1/supply/packs"] = {**pack(lifecycle(), "S1"), "history_truncated": True}
    out = run("supply", "export-epcis", "--api", API, "--gtin", GTIN, "--serial", "S1")
    assert out.exit_code == 1 and "cannot convert to EPCIS 2.0" in out.output


def test_import_epcis_dry_run_signs_nothing_then_submits_in_order(
    node: FakeNode, tmp_path: Path
) -> None:
    doc, key = tmp_path / "epcis.json", tmp_path / "mfr.json"
    doc.write_text(json.dumps(exported()))
    save_key(key, generate_key())
    args = ("supply", "import-epcis", "--api", API, "--key", str(key), "--epcis", str(doc))
    dry = run(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output) == [
        {"type": "drug.commission", "body": COMMISSIONED},
        {"type": "drug.ship", "body": SHIPPED},
    ]
    assert node.posted == []
    out = run(*args)
    assert out.exit_code == 0, out.output
    assert [(t["type"], t["body"]) for t in node.posted] == [
        ("drug.commission", COMMISSIONED),
        ("drug.ship", SHIPPED),
    ]
    assert node.gets.count(f"/v1/txs/{TX_HASH}") == 2  # each waited for before the next


def test_import_epcis_refuses_an_unmappable_document(node: FakeNode, tmp_path: Path) -> None:
    doc, key = tmp_path / "epcis.json", tmp_path / "mfr.json"
    doc.write_text(json.dumps(doc_with(lambda d, e: e[1].update(bizStep="receiving"))))
    save_key(key, generate_key())
    out = run("supply", "import-epcis", "--api", API, "--key", str(key), "--epcis", str(doc))
    assert out.exit_code == 1 and "bizStep" in out.output and node.posted == []
    doc.write_text("{not json")
    out = run("supply", "import-epcis", "--api", API, "--key", str(key), "--epcis", str(doc))
    assert out.exit_code == 1 and "cannot import" in out.output


class RefusingNode(FakeNode):
    """A node on which every transaction commits with a movement refused by a rule."""

    def __call__(self, method: str, url: str, body: bytes | None = None, **kw: Any) -> Any:
        if method == "GET" and url.endswith(f"/v1/txs/{TX_HASH}"):
            self.gets.append(url[len(API) :])
            data = {"outcome": "refused", "alerts": ["x"], "rules": ["duplicate-commission"]}
            return {"status": "committed", "result": {"status": "ok", "data": data}}
        return super().__call__(method, url, body, **kw)


def test_import_epcis_stops_at_a_refused_movement(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A commission refused by a counterfeit rule (exit 3): the shipment is not sent."""
    node = RefusingNode()
    monkeypatch.setattr("node.cli.clients.common.request_json", node)
    doc, key = tmp_path / "epcis.json", tmp_path / "mfr.json"
    doc.write_text(json.dumps(exported()))
    save_key(key, generate_key())
    out = run("supply", "import-epcis", "--api", API, "--key", str(key), "--epcis", str(doc))
    assert out.exit_code == 3, out.output
    assert [t["type"] for t in node.posted] == ["drug.commission"]
