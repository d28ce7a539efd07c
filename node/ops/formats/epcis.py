"""GS1 EPCIS 2.0 JSON-LD: packs' custody histories out as an ``EPCISDocument``, and an
``EPCISDocument``'s commissioning and shipping events in as ``drug.commission`` and
``drug.ship`` bodies (docs/formats.md, "GS1 EPCIS 2.0").

Export (``packs_to_epcis``) takes answers of ``GET /v1/supply/packs`` (one or more
packs: a batch is the packs its caller names) and writes one event per ledger event;
the same transaction seen from several packs is one event listing all their EPCs:

* commissioning -> ObjectEvent ADD ``commissioning`` with the lot and expiry in
  ``ilmd``; shipping -> ObjectEvent OBSERVE ``shipping`` (source and destination
  members, the shipment as a ``desadv`` business transaction) and, with an SSCC, an
  AggregationEvent OBSERVE ``shipping`` with the SSCC as parent; receiving,
  dispensing, holding (recall), inspecting (suspect, clear) -> ObjectEvent OBSERVE;
  decommissioning -> ObjectEvent DELETE; undispensing (not a CBV step) -> OBSERVE
  ``urn:hygeia:bizstep:undispensing``;
* EPCs are canonical GS1 Digital Link URIs (``https://id.gs1.org/01/<gtin>/21/<serial>``,
  the serial percent-encoded; an SSCC ``https://id.gs1.org/00/<sscc>``); members
  ``urn:hygeia:member:<id>``; transactions ``urn:hygeia:tx:<hash>``;
* times are block times as ISO 8601 UTC instants, ``eventTimeZoneOffset`` ``+00:00``;
  ``creationDate`` is the newest event's time, so an export is reproducible.

Import (``epcis_to_bodies``) maps commissioning ObjectEvents (ADD) and shipping
ObjectEvents (OBSERVE, one destination member), plus a shipping AggregationEvent
that names the SSCC of one of those shipments. EPCs may also be
``urn:epc:id:sgtin`` / ``urn:epc:id:sscc`` URNs. What the ledger cannot record is
refused with a ``FormatError`` naming the element; what the ledger records itself
(time, place: the block and the signer) and business references (never put on
chain) are ignored. Only codes and identifiers go into a body, never free text.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

from node.ledger.domains.supply import COMMISSION, SHIP
from node.ledger.domains.supply_core import MAX_SERIALS, MEMBER_RE
from node.ledger.gs1 import (
    GS1_CSET82,
    GTIN_RE,
    SSCC_RE,
    check_digit_ok,
    expiry_ok,
    expiry_yyyymmdd,
    with_check_digit,
)
from node.ledger.result import Rejection
from node.ledger.schema import Obj
from node.ops.formats import FormatError, json_list, json_object
from node.ops.formats.fhir_common import instant

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
HYGEIA_VOCAB = "urn:hygeia:epcis:"  # the JSON-LD prefix ``hygeia:`` of our extension terms
SCHEMA_VERSION = "2.0"
DIGITAL_LINK = "https://id.gs1.org"
MEMBER_URN = "urn:hygeia:member:"  # + a member id (the FHIR system urn:hygeia:member)
TX_URN = "urn:hygeia:tx:"  # + a transaction hash (``hygeia client proof`` proves it)
SHIPMENT_URN = "urn:hygeia:shipment:"  # + the drug.ship transaction hash
UNDISPENSING = "urn:hygeia:bizstep:undispensing"  # EU FMD Art. 13, no CBV step
LOT_NUMBER = "cbvmda:lotNumber"
EXPIRY_DATE = "cbvmda:itemExpirationDate"
GS1_EXPIRY = "hygeia:gs1Expiry"  # the AI 17 text (YYMMDD, DD 00 kept) beside the ISO date
UTC_OFFSET = "+00:00"
MAX_EVENTS = 1000  # per imported document

# ledger step -> (EPCIS action, CBV bizStep, does the pack stay at the signer's?)
STEPS: dict[str, tuple[str, str, bool]] = {
    "commissioning": ("ADD", "commissioning", True),
    "shipping": ("OBSERVE", "shipping", False),
    "receiving": ("OBSERVE", "receiving", True),
    "dispensing": ("OBSERVE", "dispensing", False),
    "undispensing": ("OBSERVE", UNDISPENSING, True),
    "decommissioning": ("DELETE", "decommissioning", False),
    "holding": ("OBSERVE", "holding", False),
    "inspecting": ("OBSERVE", "inspecting", False),
}
# the CBV dispositions the ledger's events carry (docs/supply-chain.md)
DISPOSITIONS = (
    "active",
    "in_transit",
    "in_progress",
    "dispensed",
    "destroyed",
    "expired",
    "stolen",
    "inactive",
    "recalled",
    "non_sellable_other",
)

_SGTIN_URN = re.compile(r"^urn:epc:id:sgtin:([0-9]{6,12})\.([0-9]{1,7})\.(.+)$")
_SSCC_URN = re.compile(r"^urn:epc:id:sscc:([0-9]{6,12})\.([0-9]{5,11})$")
_DL_SGTIN = re.compile(r"^https://id\.gs1\.org/01/([0-9]{14})/21/([^/?#]+)$")
_DL_SSCC = re.compile(r"^https://id\.gs1\.org/00/([0-9]{18})$")
_ISO_DATE = re.compile(r"^20([0-9]{2})-([0-9]{2})-([0-9]{2})$")
_PATH_SEGMENT = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})+$")  # RFC 3986


# ----------------------------------------------------------------- identifiers
def sgtin_uri(gtin: str, serial: str) -> str:
    """A pack's EPC: the canonical GS1 Digital Link URI (every character of the
    serial but letters, digits and ``-._~`` percent-encoded)."""
    return f"{DIGITAL_LINK}/01/{gtin}/21/{quote(serial, safe='')}"


def sscc_uri(sscc: str) -> str:
    return f"{DIGITAL_LINK}/00/{sscc}"


def member_uri(member: str) -> str:
    return MEMBER_URN + member


def _gtin_serial(gtin: str, serial: str, where: str, encoded: bool = False) -> tuple[str, str]:
    """(gtin, serial) checked; ``encoded``: the serial is a URI's percent-encoded text."""
    if encoded:
        if not _PATH_SEGMENT.fullmatch(serial):
            raise FormatError(where, "the serial is not a percent-encoded URI path segment")
        serial = unquote(serial)
    if not (GTIN_RE.fullmatch(gtin) and check_digit_ok(gtin)):
        raise FormatError(where, f"GTIN {gtin!r} is no GTIN-14 with its check digit")
    if not GS1_CSET82.fullmatch(serial):
        raise FormatError(where, "the serial is not 1..20 characters of GS1 set 82")
    return gtin, serial


def parse_sgtin(epc: Any, where: str) -> tuple[str, str]:
    """(GTIN-14, serial) of a Digital Link URI or an ``urn:epc:id:sgtin`` URN."""
    if not isinstance(epc, str):
        raise FormatError(where, "must be a string")
    m = _DL_SGTIN.fullmatch(epc)
    if m is not None:
        return _gtin_serial(m[1], m[2], where, encoded=True)
    m = _SGTIN_URN.fullmatch(epc)
    if m is not None and len(m[1]) + len(m[2]) == 13:
        prefix, item = m[1], m[2]  # item: the indicator digit, then the item reference
        gtin = with_check_digit(item[0] + prefix + item[1:])
        return _gtin_serial(gtin, m[3], where, encoded=True)
    raise FormatError(
        where,
        f"{epc[:80]!r} is no serialised GTIN: give https://id.gs1.org/01/<gtin>/21/<serial> "
        "or urn:epc:id:sgtin:<company prefix>.<indicator+item>.<serial>",
    )


def parse_sscc(epc: Any, where: str) -> str:
    """The SSCC-18 of a Digital Link URI or an ``urn:epc:id:sscc`` URN."""
    if isinstance(epc, str):
        m = _DL_SSCC.fullmatch(epc)
        if m is not None:
            sscc = m[1]
        else:
            u = _SSCC_URN.fullmatch(epc)
            ok = u is not None and len(u[1]) + len(u[2]) == 17
            sscc = with_check_digit(u[2][0] + u[1] + u[2][1:]) if u is not None and ok else ""
        if SSCC_RE.fullmatch(sscc) and check_digit_ok(sscc):
            return sscc
    raise FormatError(where, "is no SSCC: give https://id.gs1.org/00/<sscc> or urn:epc:id:sscc")


# ----------------------------------------------------------------- small checks
def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FormatError(where, "must be a string")
    return value


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FormatError(where, "must be a non-negative integer")
    return value


def _member(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > 64 or not MEMBER_RE.fullmatch(value):
        raise FormatError(where, "is no member id")
    return value


# ----------------------------------------------------------------- export
def _iso_expiry(expiry: Any, where: str) -> str:
    """An AI 17 ``YYMMDD`` as the ISO date of its last valid day (DD 00: month's end)."""
    if not isinstance(expiry, str) or not expiry_ok(expiry):
        raise FormatError(where, "is no YYMMDD expiry")
    day = expiry_yyyymmdd(expiry)
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"


def _event(ev: Mapping[str, Any], epcs: list[str], where: str) -> list[dict[str, Any]]:
    """The EPCIS event(s) of one ledger event (of every pack in ``epcs``)."""
    step = ev.get("step")
    if step not in STEPS:
        raise FormatError(f"{where}.step", f"{step!r} is not a step of the supply domain")
    action, biz_step, stays = STEPS[step]
    disposition = ev.get("disposition")
    if disposition not in DISPOSITIONS:
        raise FormatError(f"{where}.disposition", f"{disposition!r} is not a ledger disposition")
    by = member_uri(_member(ev.get("by"), f"{where}.by"))
    out: dict[str, Any] = {"type": "ObjectEvent"}
    if "tx" in ev:
        out["eventID"] = TX_URN + _hash(ev["tx"], f"{where}.tx")
    out |= {
        "eventTime": instant(_int(ev.get("time"), f"{where}.time")),
        "eventTimeZoneOffset": UTC_OFFSET,
        "epcList": epcs,
        "action": action,
        "bizStep": biz_step,
        "disposition": disposition,
        "readPoint": {"id": by},
    }
    if stays:
        out["bizLocation"] = {"id": by}
    if step == "commissioning":
        expiry = ev.get("expiry")
        out["ilmd"] = {
            LOT_NUMBER: _str(ev.get("lot"), f"{where}.lot"),
            EXPIRY_DATE: _iso_expiry(expiry, f"{where}.expiry"),
            GS1_EXPIRY: expiry,
        }
    parties = _parties(ev, by, where)
    out |= parties
    if step != "shipping":
        return [out]
    out["bizTransactionList"] = [
        {"type": "desadv", "bizTransaction": SHIPMENT_URN + _hash(ev.get("tx"), f"{where}.tx")}
    ]
    if "sscc" not in ev:
        return [out]
    sscc = ev["sscc"]
    if not (isinstance(sscc, str) and SSCC_RE.fullmatch(sscc) and check_digit_ok(sscc)):
        raise FormatError(f"{where}.sscc", "is no SSCC-18 with its check digit")
    aggregation: dict[str, Any] = {
        "type": "AggregationEvent",
        "eventID": out["eventID"] + ":aggregation",
        "eventTime": out["eventTime"],
        "eventTimeZoneOffset": UTC_OFFSET,
        "parentID": sscc_uri(sscc),
        "childEPCs": epcs,
        "action": "OBSERVE",
        "bizStep": "shipping",
        "disposition": disposition,
        "readPoint": {"id": by},
        **parties,
    }
    return [out, aggregation]


def _hash(value: Any, where: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise FormatError(where, "is no transaction hash (64 lowercase hex)")
    return value


def _parties(ev: Mapping[str, Any], by: str, where: str) -> dict[str, Any]:
    """Source and destination of a shipping (sender -> recipient) or a receiving."""
    if ev.get("step") == "shipping":
        source, dest = by, member_uri(_member(ev.get("to"), f"{where}.to"))
    elif ev.get("step") == "receiving" and "from" in ev:
        source, dest = member_uri(_member(ev["from"], f"{where}.from")), by
    else:
        return {}
    return {
        "sourceList": [{"type": "possessing_party", "source": source}],
        "destinationList": [{"type": "possessing_party", "destination": dest}],
    }


def packs_to_epcis(packs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """An ``EPCISDocument`` of the custody histories of ``packs`` (answers of
    ``/v1/supply/packs``), events in chain order; one ledger event of several packs
    is one EPCIS event listing their EPCs."""
    merged: dict[tuple[str, str], tuple[int, Mapping[str, Any], list[str], str]] = {}
    by_tx: dict[str, tuple[str, str]] = {}
    for p, pack in enumerate(packs):
        where = f"packs[{p}]"
        pack = json_object(pack, where)
        if pack.get("history_truncated"):
            raise FormatError(f"{where}.history", "is cut: the export would be incomplete")
        gtin, serial = _gtin_serial(
            _str(pack.get("gtin"), f"{where}.gtin"),
            _str(pack.get("serial"), f"{where}.serial"),
            where,
        )
        epc = sgtin_uri(gtin, serial)
        for i, ev in enumerate(json_list(pack.get("history"), f"{where}.history")):
            ev = json_object(ev, f"{where}.history[{i}]")
            key = (gtin, json.dumps(ev, sort_keys=True))
            tx = ev.get("tx")
            if isinstance(tx, str) and by_tx.setdefault(tx, key) != key:
                raise FormatError(f"{where}.history[{i}]", f"differs from transaction {tx}")
            if key not in merged:
                height = _int(ev.get("height"), f"{where}.history[{i}].height")
                merged[key] = (height, ev, [], f"{where}.history[{i}]")
            if epc not in merged[key][2]:
                merged[key][2].append(epc)
    if not merged:
        raise FormatError("packs", "no pack to export")
    ordered = sorted(merged.values(), key=lambda m: m[0])  # stable: first seen within a block
    events = [e for _, ev, epcs, where in ordered for e in _event(ev, epcs, where)]
    newest = max(_int(ev.get("time"), where) for _, ev, _, where in ordered)
    return {
        "@context": [CONTEXT, {"hygeia": HYGEIA_VOCAB}],
        "type": "EPCISDocument",
        "schemaVersion": SCHEMA_VERSION,
        "creationDate": instant(newest),
        "epcisBody": {"eventList": events},
    }


# ----------------------------------------------------------------- import
# event elements the ledger records itself (the block's time, the signer as the place
# and the source) or keeps off chain (business references): read past, never copied
IGNORED = frozenset(
    {
        "@context",
        "type",
        "eventID",
        "eventTime",
        "recordTime",
        "eventTimeZoneOffset",
        "certificationInfo",
        "readPoint",
        "bizLocation",
        "sourceList",
        "bizTransactionList",
    }
)
# event elements that would change what is recorded and cannot be: refused, never dropped
REFUSED = {
    "errorDeclaration": "an error declaration retracts an event; the ledger's events are final",
    "quantityList": "class-level quantities name no serials; the ledger tracks serialised packs",
    "childQuantityList": "class-level quantities name no serials; the ledger tracks serial packs",
    "persistentDisposition": "the ledger keeps no persistent dispositions",
    "sensorElementList": "the ledger records no sensor data",
}
OBJECT_KEYS = frozenset({"action", "bizStep", "disposition", "epcList", "ilmd", "destinationList"})
AGGREGATION_KEYS = frozenset(
    {"action", "bizStep", "disposition", "parentID", "childEPCs", "destinationList"}
)
PARTY_TYPES = ("possessing_party", "owning_party")
_ILMD_IRIS = {"urn:epcglobal:cbv:mda:": "cbvmda:", HYGEIA_VOCAB: "hygeia:"}


def _keys(event: Mapping[str, Any], mapped: frozenset[str], where: str) -> None:
    for key in event:
        if key in REFUSED:
            raise FormatError(f"{where}.{key}", REFUSED[key])
        if key not in IGNORED and key not in mapped:
            raise FormatError(f"{where}.{key}", "is not mapped: the ledger cannot record it")


def _cbv(value: Any, kind: str, where: str) -> str:
    """A CBV term's bare name (``shipping``) from any of its spellings: bare, the CBV 2.0
    URI or compact IRI (``https://ref.gs1.org/cbv/BizStep-shipping``, ``cbv:BizStep-...``)
    or the EPCIS 1.x URN (``urn:epcglobal:cbv:bizstep:shipping``)."""
    text = _str(value, where)
    prefixes = (f"https://ref.gs1.org/cbv/{kind}-", f"cbv:{kind}-", f"urn:epcglobal:cbv:{kind}:")
    for prefix in prefixes:
        if text.lower().startswith(prefix.lower()):
            return text[len(prefix) :]
    return text


def _expect(event: Mapping[str, Any], name: str, allowed: tuple[str, ...], where: str) -> str:
    """The CBV value of ``name`` (action, bizStep, disposition), one of ``allowed``."""
    kind = {"bizStep": "BizStep", "disposition": "Disp"}.get(name, "")
    value = _cbv(event.get(name), kind, f"{where}.{name}") if kind else event.get(name)
    if value not in allowed:
        raise FormatError(f"{where}.{name}", f"{value!r} is not mapped here (only {allowed[0]})")
    return str(value)


def _epcs(value: Any, where: str) -> tuple[str, list[str]]:
    """The one GTIN and the serials of an EPC list."""
    epcs = json_list(value, where)
    if len(epcs) > MAX_SERIALS:
        raise FormatError(where, f"has {len(epcs)} EPCs; a transaction moves at most {MAX_SERIALS}")
    parsed = [parse_sgtin(e, f"{where}[{i}]") for i, e in enumerate(epcs)]
    gtins = sorted({g for g, _ in parsed})
    if len(gtins) > 1:
        raise FormatError(where, f"names GTINs {', '.join(gtins)}: one GTIN per event")
    serials = [s for _, s in parsed]
    if len(set(serials)) != len(serials):
        raise FormatError(where, "names a pack twice")
    return gtins[0], serials


def _ilmd(value: Any, where: str) -> tuple[str, str]:
    """The lot and the ``YYMMDD`` expiry of a commissioning's ``ilmd``."""
    fields: dict[str, Any] = {}
    for key, item in json_object(value, where).items():
        name = key
        for iri, short in _ILMD_IRIS.items():
            if key.startswith(iri):
                name = short + key[len(iri) :]
        if name not in (LOT_NUMBER, EXPIRY_DATE, GS1_EXPIRY):
            raise FormatError(
                f"{where}.{key}", "is not mapped: a commission records lot and expiry"
            )
        fields[name] = item
    for name in (LOT_NUMBER, EXPIRY_DATE):
        if name not in fields:
            raise FormatError(f"{where}.{name}", "is required: a commission records it")
    lot = _str(fields[LOT_NUMBER], f"{where}.{LOT_NUMBER}")
    if not GS1_CSET82.fullmatch(lot):
        raise FormatError(f"{where}.{LOT_NUMBER}", "is not 1..20 characters of GS1 set 82")
    m = _ISO_DATE.fullmatch(_str(fields[EXPIRY_DATE], f"{where}.{EXPIRY_DATE}"))
    expiry = "".join(m.groups()) if m else ""
    if not expiry_ok(expiry) or expiry.endswith("00"):
        raise FormatError(f"{where}.{EXPIRY_DATE}", "must be a date YYYY-MM-DD in 2000..2099")
    if GS1_EXPIRY not in fields:
        return lot, expiry
    printed = fields[GS1_EXPIRY]
    month_end = calendar.monthrange(2000 + int(expiry[:2]), int(expiry[2:4]))[1]
    same = printed == expiry or (printed == expiry[:4] + "00" and int(expiry[4:]) == month_end)
    if not same:
        raise FormatError(f"{where}.{GS1_EXPIRY}", f"{printed!r} is not the day {EXPIRY_DATE} says")
    return lot, printed


def _destination(value: Any, where: str) -> str:
    """The one member a shipping goes to (its possessing or owning party)."""
    members: set[str] = set()
    for i, item in enumerate(json_list(value, where)):
        item = json_object(item, f"{where}[{i}]")
        kind = _cbv(item.get("type"), "SDT", f"{where}[{i}].type")
        if kind not in PARTY_TYPES:
            raise FormatError(f"{where}[{i}].type", "must be possessing_party or owning_party")
        dest = _str(item.get("destination"), f"{where}[{i}].destination")
        if not dest.startswith(MEMBER_URN):
            raise FormatError(f"{where}[{i}].destination", f"must be {MEMBER_URN}<member id>")
        members.add(_member(dest[len(MEMBER_URN) :], f"{where}[{i}].destination"))
    if len(members) != 1:
        raise FormatError(where, f"names {len(members)} members; a shipment goes to one")
    return members.pop()


def _object_event(event: Mapping[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    _keys(event, OBJECT_KEYS, where)
    step = _expect(event, "bizStep", ("commissioning", "shipping"), where)
    if step == "commissioning":
        _expect(event, "action", ("ADD",), where)
        if "disposition" in event:
            _expect(event, "disposition", ("active",), where)
        if "destinationList" in event:
            raise FormatError(f"{where}.destinationList", "a commission goes nowhere")
        gtin, serials = _epcs(event.get("epcList"), f"{where}.epcList")
        lot, expiry = _ilmd(event.get("ilmd"), f"{where}.ilmd")
        return COMMISSION.name, {"gtin": gtin, "lot": lot, "expiry": expiry, "serials": serials}
    _expect(event, "action", ("OBSERVE",), where)
    if "disposition" in event:
        _expect(event, "disposition", ("in_transit",), where)
    if "ilmd" in event:
        raise FormatError(f"{where}.ilmd", "belongs to a commissioning")
    gtin, serials = _epcs(event.get("epcList"), f"{where}.epcList")
    to = _destination(event.get("destinationList"), f"{where}.destinationList")
    return SHIP.name, {"gtin": gtin, "serials": serials, "to": to}


def _add_sscc(event: Mapping[str, Any], where: str, txs: list[tuple[str, dict[str, Any]]]) -> None:
    """Put an SSCC AggregationEvent's parent on the shipment of exactly its packs."""
    _keys(event, AGGREGATION_KEYS, where)
    _expect(event, "bizStep", ("shipping",), where)
    _expect(event, "action", ("OBSERVE", "ADD"), where)
    if "disposition" in event:
        _expect(event, "disposition", ("in_transit",), where)
    sscc = parse_sscc(event.get("parentID"), f"{where}.parentID")
    gtin, serials = _epcs(event.get("childEPCs"), f"{where}.childEPCs")
    to = None
    if "destinationList" in event:
        to = _destination(event["destinationList"], f"{where}.destinationList")
    for tx_type, body in txs:
        same = body["gtin"] == gtin and set(body["serials"]) == set(serials)
        if tx_type == SHIP.name and same and to in (None, body["to"]) and "sscc" not in body:
            body["sscc"] = sscc
            return
    raise FormatError(where, "names no earlier shipping ObjectEvent of exactly its packs")


def epcis_to_bodies(document: Any) -> list[tuple[str, dict[str, Any]]]:
    """The ``drug.commission`` and ``drug.ship`` bodies of an ``EPCISDocument``, in its
    order, as (type, body); ``FormatError`` for whatever cannot be mapped."""
    doc = json_object(document, "EPCISDocument")
    if doc.get("type") != "EPCISDocument":
        raise FormatError("type", f"must be EPCISDocument (got {doc.get('type')!r})")
    version = doc.get("schemaVersion")
    if not isinstance(version, str) or not re.fullmatch(r"2(\.[0-9]+)*", version):
        raise FormatError("schemaVersion", f"must be {SCHEMA_VERSION} (got {version!r})")
    events = json_list(
        json_object(doc.get("epcisBody"), "epcisBody").get("eventList"), "epcisBody.eventList"
    )
    if len(events) > MAX_EVENTS:
        raise FormatError("epcisBody.eventList", f"has more than {MAX_EVENTS} events")
    txs: list[tuple[str, dict[str, Any]]] = []
    for i, event in enumerate(events):
        where = f"epcisBody.eventList[{i}]"
        event = json_object(event, where)
        kind = event.get("type")
        if kind == "ObjectEvent":
            txs.append(_object_event(event, where))
        elif kind == "AggregationEvent":
            _add_sscc(event, where, txs)
        else:
            raise FormatError(
                f"{where}.type",
                f"{kind!r} is not mapped (ObjectEvent, AggregationEvent of an SSCC)",
            )
    for i, (tx_type, body) in enumerate(txs):
        schema = COMMISSION.schema if tx_type == COMMISSION.name else SHIP.schema
        _ledger_check(schema, body, f"transaction[{i}]")
    return txs


def _ledger_check(schema: Obj, body: dict[str, Any], where: str) -> None:
    """The ledger's own schema on a body made here (a last check, never expected to fail)."""
    try:
        schema.check(body, "body")
    except Rejection as err:
        raise FormatError(where, err.message) from None
