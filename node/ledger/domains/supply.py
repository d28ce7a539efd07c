"""Drug supply chain: commission, ship, receive, dispense, decommission, recall,
suspect and clear serialised packs; verify a pack; list counterfeit alerts.
What the transaction types share (keys, pack facts, the rules' run) is in
``supply_core``; shipments as units in ``supply_shipments``; the undo of a
dispense in ``supply_undispense``.

The product identifier is the one printed in the pack's GS1 DataMatrix (EU FMD
and US DSCSA): GTIN, serial, lot and expiry, in the formats of
``node.ledger.gs1``. docs/supply-chain.md maps every field, step, disposition
and reason code to GS1 EPCIS 2.0 / CBV, EU FMD and DSCSA.

State (one key per serial; nothing ever re-reads a list that grows):

* ``drug/gtin/<gtin>``: the product, owned by the manufacturer that first
  commissioned it;
* ``drug/lot/<gtin>/<lot>``: the lot's expiry and its lot-level recall and
  suspect flags (a lot recall touches this one key, not its serials);
* ``drug/s/<gtin>/<serial>``: the pack: lot, expiry, status, custodian,
  pending recipient, dispenser, serial-level recall and suspect flags, the
  number of custody events after commissioning, when it was commissioned and
  (while dispensed) when it was dispensed;
* ``drug/e/<gtin>/<serial>#<n:06d>``: custody event n (``#`` is outside the
  serial character set, so one serial's prefix never covers another's);
* ``drug/alert/<height:012d>.<index:06d>.<k:03d>`` and the indexes
  ``drug/alert-g/<gtin>/<id>``, ``drug/alert-m/<manufacturer>/<id>``;
* ``drug/ship/<tx hash>`` and ``drug/sscc/<sscc>``: shipments (``supply_shipments``).

Policy on counterfeit rules (``RULES``): the transaction is *committed with
ok*, the movement is *refused as a whole* (no serial of it changes), and one
alert per (rule) is recorded with the offending serials. The result data
says ``{"outcome": "refused", "alerts": [ids], ...}``; an accepted movement
says ``{"outcome": "accepted", "alerts": []}``. A ``Rejection`` (nothing
recorded but the result) is kept for what is no evidence of counterfeiting:
a malformed body, a signer who is not a member or lacks the role, an unknown
recipient, a GTIN owned by another manufacturer, a recall of an unknown lot.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from node.core.hexstr import HEX64
from node.core.uint import parse_uint
from node.ledger.context import ExecContext
from node.ledger.domain import Domain, Query, ids_after
from node.ledger.domains import supply_shipments as shipments
from node.ledger.domains.supply_core import (
    ALERT_PREFIX,
    CODE_RE,
    DECOMMISSION_REASONS,
    MAX_SERIALS,
    MEMBER_RE,
    RULES,
    STATUSES,
    Run,
    accepted,
    alert_gtin_prefix,
    alert_mfr_prefix,
    auth_dispenser,
    auth_manufacturer,
    auth_member,
    auth_recaller,
    check_movement,
    code_schema,
    day_of,
    event_prefix,
    gtin_key,
    holds,
    is_expired,
    is_suspect,
    lot_key,
    serial_info,
    serial_key,
    serials_schema,
    signer_member,
)
from node.ledger.domains.supply_undispense import UNDISPENSE
from node.ledger.gs1 import Expiry, Gs1Error, Gs1Text, Gtin, Sscc, parse_element_string
from node.ledger.members import is_active, member_key
from node.ledger.registry import TxType
from node.ledger.result import Rejection
from node.ledger.schema import Obj, Str
from node.ledger.state import BlockState, block_time

__all__ = [
    "CODE_RE",
    "DECOMMISSION_REASONS",
    "DOMAIN",
    "MAX_EVENTS_PAGE",
    "MAX_SERIALS",
    "REASONS",
    "RULES",
    "STATUSES",
    "TX_TYPES",
    "day_of",
    "history",
    "list_alerts",
    "serial_info",
    "verify",
]

MAX_EVENTS_PAGE = 1000
MAX_ALERTS_PAGE = 500
# the four fields a verification needs, as the scanned element string names them
SCAN_FIELDS = ("gtin", "serial", "lot", "expiry")

# Verification reason codes (docs/supply-chain.md maps them to EU FMD / DSCSA).
REASONS = (
    "unknown-product",
    "unknown-serial",
    "lot-mismatch",
    "expiry-mismatch",
    "already-dispensed",
    "decommissioned",
    "stolen",
    "recalled",
    "suspect",
    "expired",
)


def _require_owner_or_regulator(run: Run) -> None:
    """Recall and clear: the GTIN's manufacturer, or a regulator."""
    product = run.product()
    if product is None:
        raise Rejection("unknown-product", f"GTIN {run.gtin} was never commissioned")
    if "regulator" in run.member["roles"]:
        return
    if product["manufacturer"] != run.mid:
        raise Rejection(
            "unauthorized", f"GTIN {run.gtin} belongs to {product['manufacturer']}, not {run.mid}"
        )


def _apply_commission(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    run = Run(ctx, signer_member(ctx))
    gtin, lot_id, expiry = body["gtin"], body["lot"], body["expiry"]
    product = run.product()
    if product is not None and product["manufacturer"] != run.mid:
        raise Rejection(
            "not-gtin-owner", f"GTIN {gtin} is commissioned by {product['manufacturer']}"
        )
    lot = run.lot(lot_id)
    if lot is not None and lot["expiry"] != expiry:
        raise Rejection("expiry-conflict", f"lot {lot_id} has expiry {lot['expiry']}")
    if lot is not None and lot["recalled"]:
        raise Rejection("lot-recalled", f"lot {lot_id} is recalled")
    serials: list[str] = body["serials"]
    state = ctx.state
    keys = [serial_key(gtin, s) for s in serials]
    for s, k in zip(serials, keys, strict=True):
        if state.get_raw(k) is not None:
            run.offend("duplicate-commission", s)
    if run.offences:
        return run.refuse()
    if product is None:
        state.put(gtin_key(gtin), {"manufacturer": run.mid, "height": ctx.block.height})
    new_lot = dict(lot) if lot is not None else {"expiry": expiry, "count": 0}
    new_lot.setdefault("recalled", False)
    new_lot.setdefault("suspect", False)
    new_lot["count"] += len(serials)
    state.put(lot_key(gtin, lot_id), new_lot)
    commissioned = [ctx.block.height, ctx.block.time_ms]
    for k in keys:
        state.put(
            k,
            {
                "lot": lot_id,
                "expiry": expiry,
                "status": "commissioned",
                "custodian": run.mid,
                "to": None,
                "dispensed_by": None,
                "reason": None,
                "recalled": False,
                "suspect": False,
                "n": 0,
                "c": commissioned,
            },
        )
    return accepted(run, len(serials), lot=lot_id)


# ------------------------------------------------------------------ movements
def _apply_ship(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    run = Run(ctx, signer_member(ctx))
    to = body["to"]
    if to == run.mid:
        raise Rejection("malformed", "body.to: cannot ship to oneself")
    recipient = ctx.state.get(member_key(to))
    if not is_active(recipient):
        raise Rejection("unknown-recipient", f"{to} is not an active member")
    sscc: str | None = body.get("sscc")
    if sscc is not None:
        shipments.require_sscc_free(ctx.state, sscc)
    packs = run.load(body["serials"])
    for s, rec in packs:
        if not check_movement(run, s, rec, "ship") or rec is None:
            continue
        if not holds(run, rec):
            run.offend("non-custodian", s)
        elif run.expired(rec):
            run.offend("expired", s)
    if run.offences:
        return run.refuse()
    ev: dict[str, Any] = {"step": "shipping", "disposition": "in_transit", "to": to}
    if sscc is not None:
        ev["sscc"] = sscc
    for s, rec in packs:
        assert rec is not None
        rec["status"] = "in_transit"
        rec["to"] = to
        rec["ship"] = ctx.tx.hash
        run.event(s, rec, ev)
        ctx.state.put(serial_key(run.gtin, s), rec)
    shipments.record(run, to, body["serials"], sscc)
    return accepted(run, len(packs), shipment=ctx.tx.hash, to=to)


def _apply_receive(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    whole = shipments.whole_receive(ctx.state, body)
    if whole is None:
        run = Run(ctx, signer_member(ctx))
        shipment: str | None = body.get("shipment")
        packs = run.load(body["serials"])
    else:
        shipment, found = whole
        run = Run(ctx, signer_member(ctx), found["gtin"])
        if found["to"] != run.mid:
            for s in found["serials"]:
                run.offend("receive-without-ship", s)
            return run.refuse()
        # the packs still in transit under this shipment (not received or stolen since)
        packs = [(s, r) for s, r in run.load(found["serials"]) if r and r.get("ship") == shipment]
        if not packs:
            raise Rejection("shipment-received", f"shipment {shipment} has no pack in transit")
    for s, rec in packs:
        if not check_movement(run, s, rec, "receive") or rec is None:
            continue
        if (
            rec["status"] != "in_transit"
            or rec["to"] != run.mid
            or (shipment is not None and rec.get("ship") != shipment)
        ):
            run.offend("receive-without-ship", s)
    if run.offences:
        return run.refuse()
    received = [rec for _, rec in packs if rec is not None]
    shipments.left_transit(ctx.state, received)
    for s, rec in packs:
        assert rec is not None
        sender = rec["custodian"]
        rec["status"] = "held"
        rec["custodian"] = run.mid
        rec["to"] = None
        rec.pop("ship", None)
        run.event(s, rec, {"step": "receiving", "disposition": "in_progress", "from": sender})
        ctx.state.put(serial_key(run.gtin, s), rec)
    if whole is None:
        return accepted(run, len(packs))
    return accepted(run, len(packs), shipment=shipment)


def _apply_dispense(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    run = Run(ctx, signer_member(ctx))
    packs = run.load(body["serials"])
    for s, rec in packs:
        if not check_movement(run, s, rec, "dispense") or rec is None:
            continue
        if not holds(run, rec):
            run.offend("non-custodian", s)
        elif is_suspect(rec, run.lot(rec["lot"])):
            run.offend("suspect-dispense", s)
        elif "lot" in body and body["lot"] != rec["lot"]:
            run.offend("lot-mismatch", s)
        elif "expiry" in body and body["expiry"] != rec["expiry"]:
            run.offend("expiry-mismatch", s)
        elif run.expired(rec):
            run.offend("expired", s)
    if run.offences:
        return run.refuse()
    for s, rec in packs:
        assert rec is not None
        # when, and from which status, for an undo (drug.undispense) within its window
        rec["d"] = [ctx.block.height, ctx.block.time_ms, rec["status"]]
        rec["status"] = "dispensed"
        rec["dispensed_by"] = run.mid
        run.event(s, rec, {"step": "dispensing", "disposition": "dispensed"})
        ctx.state.put(serial_key(run.gtin, s), rec)
    return accepted(run, len(packs))


def _apply_decommission(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    run = Run(ctx, signer_member(ctx))
    reason = body["reason"]
    regulator = "regulator" in run.member["roles"]
    packs = run.load(body["serials"])
    for s, rec in packs:
        if rec is None:
            run.offend("unknown-serial", s)
            continue
        if rec["status"] in ("dispensed", "decommissioned"):
            run.offend("decommissioned-movement", s)
            continue
        # a recalled pack may be destroyed; a pack in transit may be reported stolen
        # by its shipper; a regulator may decommission any active pack
        shipper_theft = (
            reason == "stolen" and rec["status"] == "in_transit" and rec["custodian"] == run.mid
        )
        if not (regulator or holds(run, rec) or shipper_theft):
            run.offend("non-custodian", s)
    if run.offences:
        return run.refuse()
    shipments.left_transit(ctx.state, [rec for _, rec in packs if rec is not None])
    disposition = {"sample": "inactive"}.get(reason, reason)
    for s, rec in packs:
        assert rec is not None
        rec["status"] = "decommissioned"
        rec["reason"] = reason
        rec["to"] = None
        rec.pop("ship", None)
        run.event(s, rec, {"step": "decommissioning", "disposition": disposition, "reason": reason})
        ctx.state.put(serial_key(run.gtin, s), rec)
    return accepted(run, len(packs), reason=reason)


# ------------------------------------------------------------------ flags
def _target(body: Mapping[str, Any]) -> str:
    if ("lot" in body) == ("serials" in body):
        raise Rejection("malformed", "body: give exactly one of lot or serials")
    return "lot" if "lot" in body else "serials"


def _set_flag(run: Run, flag: str, value: bool, step: dict[str, Any]) -> dict[str, Any]:
    ctx = run.ctx
    body = ctx.tx.body
    stamp = {
        "by": run.mid,
        "reason": body.get("reason"),
        "height": ctx.block.height,
        "time": ctx.block.time_ms,
        "tx": ctx.tx.hash,
    }
    if _target(body) == "lot":
        lot = run.lot(body["lot"])
        if lot is None:
            raise Rejection("unknown-lot", f"lot {body['lot']} of GTIN {run.gtin} does not exist")
        lot[flag] = value
        lot[f"{flag}_by"] = stamp
        ctx.state.put(lot_key(run.gtin, body["lot"]), lot)
        return accepted(run, lot["count"], lot=body["lot"])
    packs = run.load(run.ctx.tx.body["serials"])
    unknown = [s for s, rec in packs if rec is None]
    if unknown:
        raise Rejection("unknown-serial", f"never commissioned: {', '.join(unknown[:5])}")
    for s, rec in packs:
        assert rec is not None
        rec[flag] = value
        run.event(s, rec, {**step, **({"reason": body["reason"]} if "reason" in body else {})})
        ctx.state.put(serial_key(run.gtin, s), rec)
    return accepted(run, len(packs))


def _apply_recall(ctx: ExecContext) -> dict[str, Any]:
    run = Run(ctx, signer_member(ctx))
    _require_owner_or_regulator(run)
    return _set_flag(run, "recalled", True, {"step": "holding", "disposition": "recalled"})


def _apply_suspect(ctx: ExecContext) -> dict[str, Any]:
    run = Run(ctx, signer_member(ctx))
    if run.product() is None:
        raise Rejection("unknown-product", f"GTIN {run.gtin} was never commissioned")
    return _set_flag(
        run, "suspect", True, {"step": "inspecting", "disposition": "non_sellable_other"}
    )


def _apply_clear(ctx: ExecContext) -> dict[str, Any]:
    run = Run(ctx, signer_member(ctx))
    _require_owner_or_regulator(run)
    return _set_flag(run, "suspect", False, {"step": "inspecting", "disposition": "active"})


# ------------------------------------------------------------------ queries
def _param(query: Mapping[str, str], name: str, required: bool = True) -> str | None:
    value = query.get(name)
    if value is None or value == "":
        if required:
            raise Rejection("malformed", f"query parameter {name} is required")
        return None
    return value


def _check_param(chk: Str, value: str, name: str) -> None:
    try:
        chk.check(value, name)
    except Rejection as err:
        raise Rejection("malformed", err.message.replace("body.", "", 1)) from None


def history(state: BlockState, gtin: str, serial: str) -> list[dict[str, Any]] | None:
    """The custody history: the commissioning, then every event in order."""
    rec = state.get(serial_key(gtin, serial))
    if rec is None:
        return None
    product = state.get(gtin_key(gtin)) or {}
    out: list[dict[str, Any]] = [
        {
            "step": "commissioning",
            "disposition": "active",
            "by": product.get("manufacturer"),
            "lot": rec["lot"],
            "expiry": rec["expiry"],
            "height": rec["c"][0],
            "time": rec["c"][1],
        }
    ]
    events = state.iter_prefix(event_prefix(gtin, serial))
    out.extend(v for _, v in itertools.islice(events, MAX_EVENTS_PAGE))
    return out


def verify(state: BlockState, gtin: str, serial: str, lot: str, expiry: str) -> dict[str, Any]:
    """Verification of a pack as scanned: verified, reason codes, facts and history."""
    reasons: list[str] = []
    info = serial_info(state, gtin, serial)
    if state.get(gtin_key(gtin)) is None:
        reasons.append("unknown-product")
    elif info is None:
        reasons.append("unknown-serial")
    else:
        if info["lot"] != lot:
            reasons.append("lot-mismatch")
        if info["expiry"] != expiry:
            reasons.append("expiry-mismatch")
        if info["status"] == "dispensed":
            reasons.append("already-dispensed")
        elif info["status"] == "decommissioned":
            reasons.append(
                "stolen" if info["decommission_reason"] == "stolen" else "decommissioned"
            )
        if info["recalled"]:
            reasons.append("recalled")
        if info["suspect"]:
            reasons.append("suspect")
        if is_expired(info["expiry"], block_time(state)):
            reasons.append("expired")
    return {
        "verified": not reasons,
        "reasons": reasons,
        "gtin": gtin,
        "serial": serial,
        "lot": lot,
        "expiry": expiry,
        "pack": info,
        "history": history(state, gtin, serial) or [],
    }


def _scanned(raw: str) -> tuple[str, str, str, str]:
    """gtin, serial, lot and expiry of a scanned GS1 element string (``scan``)."""
    try:
        fields = parse_element_string(raw)
    except Gs1Error as err:
        raise Rejection("malformed", f"scan: {err}") from None
    missing = [f for f in SCAN_FIELDS if f not in fields]
    if missing:
        raise Rejection("malformed", f"scan: has no {', '.join(missing)}")
    gtin, serial, lot, expiry = (fields[f] for f in SCAN_FIELDS)
    return gtin, serial, lot, expiry


def _q_verify(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any]:
    scan = _param(query, "scan", required=False)
    if scan is not None:
        if any(_param(query, f, required=False) is not None for f in SCAN_FIELDS):
            raise Rejection("malformed", "give scan, or gtin, serial, lot and expiry, not both")
        return verify(state, *_scanned(scan))
    gtin, serial = _param(query, "gtin"), _param(query, "serial")
    lot, expiry = _param(query, "lot"), _param(query, "expiry")
    assert gtin is not None and serial is not None and lot is not None and expiry is not None
    _check_param(Gtin(), gtin, "gtin")
    _check_param(Gs1Text(), serial, "serial")
    _check_param(Gs1Text(), lot, "lot")
    _check_param(Expiry(), expiry, "expiry")
    return verify(state, gtin, serial, lot, expiry)


def _q_pack(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any] | None:
    gtin, serial = _param(query, "gtin"), _param(query, "serial")
    assert gtin is not None and serial is not None
    _check_param(Gtin(), gtin, "gtin")
    _check_param(Gs1Text(), serial, "serial")
    info = serial_info(state, gtin, serial)
    if info is None:
        return None
    events = state.get(serial_key(gtin, serial))["n"]
    # the history lists at most MAX_EVENTS_PAGE custody events after the commissioning
    return {
        **info,
        "history": history(state, gtin, serial),
        "history_truncated": events > MAX_EVENTS_PAGE,
    }


def list_alerts(
    state: BlockState,
    *,
    gtin: str | None = None,
    manufacturer: str | None = None,
    after: str = "",
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alerts in the order raised, optionally of one GTIN and/or manufacturer."""
    if gtin is not None:
        prefix = alert_gtin_prefix(gtin)
    elif manufacturer is not None:
        prefix = alert_mfr_prefix(manufacturer)
    else:
        prefix = ALERT_PREFIX
    out: list[dict[str, Any]] = []
    for aid, value in ids_after(state, prefix, after):
        alert = value if prefix == ALERT_PREFIX else state.get(ALERT_PREFIX + aid.encode())
        if manufacturer is not None and alert["manufacturer"] != manufacturer:
            continue
        out.append(alert)
        if len(out) >= limit:
            break
    return out


def _q_alerts(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any]:
    gtin = _param(query, "gtin", required=False)
    if gtin is not None:
        _check_param(Gtin(), gtin, "gtin")
    mfr = _param(query, "manufacturer", required=False)
    if mfr is not None:
        _check_param(Str(max_len=64, pattern=MEMBER_RE), mfr, "manufacturer")
    raw_limit = _param(query, "limit", required=False) or "100"
    limit = parse_uint(raw_limit, len(str(MAX_ALERTS_PAGE)))
    if limit is None or not 1 <= limit <= MAX_ALERTS_PAGE:
        raise Rejection("malformed", f"limit must be in 1..{MAX_ALERTS_PAGE}")
    after = _param(query, "after", required=False) or ""
    alerts = list_alerts(state, gtin=gtin, manufacturer=mfr, after=after, limit=limit)
    return {"alerts": alerts, "next": alerts[-1]["id"] if alerts else None}


# ------------------------------------------------------------------ the domain
COMMISSION = TxType(
    name="drug.commission",
    schema=Obj({"gtin": Gtin(), "lot": Gs1Text(), "expiry": Expiry(), "serials": serials_schema()}),
    authorize=auth_manufacturer,
    apply=_apply_commission,
    summary="commission serialised packs of a GTIN and lot (EPCIS commissioning)",
)
SHIP = TxType(
    name="drug.ship",
    schema=Obj(
        {
            "gtin": Gtin(),
            "serials": serials_schema(),
            "to": Str(max_len=64, pattern=MEMBER_RE),
            "sscc": Sscc(optional=True),
        }
    ),
    authorize=auth_member,
    apply=_apply_ship,
    summary="ship packs the signer holds to another member (EPCIS shipping)",
)
RECEIVE = TxType(
    name="drug.receive",
    schema=Obj(
        {
            "gtin": Gtin(optional=True),
            "serials": serials_schema(optional=True),
            "shipment": Str(max_len=64, min_len=64, pattern=HEX64, optional=True),
            "sscc": Sscc(optional=True),
        }
    ),
    authorize=auth_member,
    apply=_apply_receive,
    summary="receive listed packs, a whole shipment or an SSCC shipped to the signer",
)
DISPENSE = TxType(
    name="drug.dispense",
    schema=Obj(
        {
            "gtin": Gtin(),
            "serials": serials_schema(),
            "lot": Gs1Text(optional=True),
            "expiry": Expiry(optional=True),
        }
    ),
    authorize=auth_dispenser,
    apply=_apply_dispense,
    summary="dispense packs the pharmacy or hospital holds (decommissions them)",
)
DECOMMISSION = TxType(
    name="drug.decommission",
    schema=Obj(
        {
            "gtin": Gtin(),
            "serials": serials_schema(),
            "reason": Str(max_len=16, choices=DECOMMISSION_REASONS),
        }
    ),
    authorize=auth_member,
    apply=_apply_decommission,
    summary="decommission packs: destroyed, expired, stolen or sample",
)
_FLAG_SCHEMA = Obj(
    {
        "gtin": Gtin(),
        "lot": Gs1Text(optional=True),
        "serials": serials_schema(optional=True),
        "reason": code_schema(optional=True),
    }
)
RECALL = TxType(
    name="drug.recall",
    schema=_FLAG_SCHEMA,
    authorize=auth_recaller,
    apply=_apply_recall,
    summary="recall a lot or serials (the GTIN's manufacturer or a regulator)",
)
SUSPECT = TxType(
    name="drug.suspect",
    schema=_FLAG_SCHEMA,
    authorize=auth_member,
    apply=_apply_suspect,
    summary="flag a lot or serials as suspect (an investigation)",
)
CLEAR = TxType(
    name="drug.clear",
    schema=_FLAG_SCHEMA,
    authorize=auth_recaller,
    apply=_apply_clear,
    summary="clear the suspect flag of a lot or serials (manufacturer or regulator)",
)

TX_TYPES = (
    COMMISSION,
    SHIP,
    RECEIVE,
    DISPENSE,
    UNDISPENSE,
    DECOMMISSION,
    RECALL,
    SUSPECT,
    CLEAR,
)

DOMAIN = Domain(
    name="supply",
    tx_types=TX_TYPES,
    queries=(
        Query(
            "/supply/verify",
            _q_verify,
            "Verify a pack (GTIN, serial, lot, expiry, or the scanned GS1 element string): "
            "verified, reason codes, history",
            ("gtin", "serial", "lot", "expiry", "scan"),
        ),
        Query(
            "/supply/packs",
            _q_pack,
            "A pack's current facts and custody history",
            ("gtin", "serial"),
        ),
        Query(
            "/supply/alerts",
            _q_alerts,
            "Counterfeit alerts, oldest first, by GTIN and/or manufacturer",
            ("gtin", "manufacturer", "after", "limit"),
        ),
    ),
)
