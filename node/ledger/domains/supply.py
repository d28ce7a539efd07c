"""Drug supply chain: commission, ship, receive, dispense, decommission, recall,
suspect and clear serialised packs; verify a pack; list counterfeit alerts.

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
  number of custody events after commissioning and when it was commissioned;
* ``drug/e/<gtin>/<serial>#<n:06d>``: custody event n (``#`` is outside the
  serial character set, so one serial's prefix never covers another's);
* ``drug/alert/<height:012d>.<index:06d>.<k:03d>`` and the indexes
  ``drug/alert-g/<gtin>/<id>``, ``drug/alert-m/<manufacturer>/<id>``.

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
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from node.core.hexstr import HEX64
from node.core.uint import parse_uint
from node.ledger.context import ExecContext
from node.ledger.domain import Domain, Query, ids_after
from node.ledger.gs1 import Expiry, Gs1Text, Gtin, Sscc, expiry_yyyymmdd
from node.ledger.members import is_active, member_key, member_of, require_member
from node.ledger.registry import TxType
from node.ledger.result import Rejection
from node.ledger.schema import List, Obj, Str
from node.ledger.state import BlockState, block_time

MAX_SERIALS = 1000  # per transaction (a commission, a shipment ...)
MAX_EVENTS_PAGE = 1000
MAX_ALERTS_PAGE = 500

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")  # short codes, never free text
MEMBER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")

STATUSES = ("commissioned", "in_transit", "held", "dispensed", "decommissioned")
DECOMMISSION_REASONS = ("destroyed", "expired", "stolen", "sample")

# Counterfeit rules: each alert carries one of these codes.
RULES = (
    "duplicate-commission",  # commissioning a serial that already exists
    "unknown-serial",  # a movement of a serial never commissioned
    "non-custodian",  # ship/dispense/decommission by a member not holding the pack
    "receive-without-ship",  # receive of a pack not shipped to the receiver
    "clone-dispense",  # a second dispense of a serial
    "decommissioned-movement",  # any movement of a dispensed/decommissioned serial
    "recalled-movement",  # any movement of a recalled serial
    "suspect-dispense",  # dispensing a pack under investigation
    "lot-mismatch",  # dispense scanned a lot other than the commissioned one
    "expiry-mismatch",  # dispense scanned an expiry other than the commissioned one
)

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


# ------------------------------------------------------------------ schema pieces
def day_of(time_ms: int) -> int:
    """The UTC date of a block time as an integer YYYYMMDD (compared with an expiry)."""
    d = datetime.fromtimestamp(time_ms // 1000, tz=UTC)
    return d.year * 10000 + d.month * 100 + d.day


def _serials(optional: bool = False) -> List:
    return List(Gs1Text(), max_items=MAX_SERIALS, min_items=1, unique=True, optional=optional)


def _code(optional: bool = False) -> Str:
    return Str(max_len=32, pattern=CODE_RE, optional=optional)


# ------------------------------------------------------------------ keys
def gtin_key(gtin: str) -> bytes:
    return b"drug/gtin/" + gtin.encode()


def lot_key(gtin: str, lot: str) -> bytes:
    return b"drug/lot/" + gtin.encode() + b"/" + lot.encode()


def serial_key(gtin: str, serial: str) -> bytes:
    return b"drug/s/" + gtin.encode() + b"/" + serial.encode()


def event_prefix(gtin: str, serial: str) -> bytes:
    return b"drug/e/" + gtin.encode() + b"/" + serial.encode() + b"#"


def event_key(gtin: str, serial: str, n: int) -> bytes:
    return event_prefix(gtin, serial) + f"{n:06d}".encode()


ALERT_PREFIX = b"drug/alert/"


def alert_gtin_prefix(gtin: str) -> bytes:
    return b"drug/alert-g/" + gtin.encode() + b"/"


def alert_mfr_prefix(member: str) -> bytes:
    return b"drug/alert-m/" + member.encode() + b"/"


# ------------------------------------------------------------------ the export
def _is_recalled(rec: dict[str, Any], lot: dict[str, Any] | None) -> bool:
    return bool(rec["recalled"]) or bool(lot and lot["recalled"])


def _is_suspect(rec: dict[str, Any], lot: dict[str, Any] | None) -> bool:
    return bool(rec["suspect"]) or bool(lot and lot["suspect"])


def serial_info(state: BlockState, gtin: str, serial: str) -> dict[str, Any] | None:
    """A pack's current facts, or None if the serial was never commissioned.

    ``status`` is one of commissioned|in_transit|held|dispensed|decommissioned;
    ``custodian`` the member holding it (the shipper while in transit);
    ``recalled`` and ``suspect`` combine the serial's and its lot's flags.
    """
    rec: dict[str, Any] | None = state.get(serial_key(gtin, serial))
    if rec is None:
        return None
    lot = state.get(lot_key(gtin, rec["lot"]))
    product = state.get(gtin_key(gtin)) or {}
    return {
        "gtin": gtin,
        "serial": serial,
        "lot": rec["lot"],
        "expiry": rec["expiry"],
        "status": rec["status"],
        "custodian": rec["custodian"],
        "recipient": rec["to"],
        "dispensed_by": rec["dispensed_by"],
        "decommission_reason": rec["reason"],
        "recalled": _is_recalled(rec, lot),
        "suspect": _is_suspect(rec, lot),
        "manufacturer": product.get("manufacturer"),
        "commissioned_height": rec["c"][0],
        "commissioned_time": rec["c"][1],
    }


# ------------------------------------------------------------------ execution helpers
class _Run:
    """One transaction's view: the signer's member, cached lots, alerts raised."""

    def __init__(self, ctx: ExecContext, member: dict[str, Any]) -> None:
        self.ctx = ctx
        self.state = ctx.state
        self.member = member
        self.mid: str = member["id"]
        self.gtin: str = ctx.tx.body["gtin"]
        self._lots: dict[str, dict[str, Any] | None] = {}
        self.offences: dict[str, list[str]] = {}  # rule -> serials, insertion-ordered

    def lot(self, lot: str) -> dict[str, Any] | None:
        if lot not in self._lots:
            self._lots[lot] = self.state.get(lot_key(self.gtin, lot))
        return self._lots[lot]

    def offend(self, rule: str, serial: str) -> None:
        self.offences.setdefault(rule, []).append(serial)

    def product(self) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.state.get(gtin_key(self.gtin))
        return found

    def refuse(self) -> dict[str, Any]:
        """Record one alert per rule broken; the movement itself changes nothing."""
        ctx = self.ctx
        product = self.product()
        mfr = product["manufacturer"] if product else ""
        ids: list[str] = []
        for k, (rule, serials) in enumerate(self.offences.items()):
            aid = f"{ctx.block.height:012d}.{ctx.index:06d}.{k:03d}"
            alert = {
                "id": aid,
                "rule": rule,
                "gtin": self.gtin,
                "serials": serials,
                "manufacturer": mfr,
                "by": self.mid,
                "tx_type": ctx.tx.type,
                "tx": ctx.tx.hash,
                "height": ctx.block.height,
                "time": ctx.block.time_ms,
            }
            self.state.put(ALERT_PREFIX + aid.encode(), alert)
            self.state.put(alert_gtin_prefix(self.gtin) + aid.encode(), 1)
            if mfr:
                self.state.put(alert_mfr_prefix(mfr) + aid.encode(), 1)
            ids.append(aid)
        return {
            "outcome": "refused",
            "alerts": ids,
            "rules": list(self.offences),
            "gtin": self.gtin,
        }

    def event(self, serial: str, rec: dict[str, Any], ev: dict[str, Any]) -> None:
        ctx = self.ctx
        n = rec["n"] + 1
        rec["n"] = n
        self.state.put(
            event_key(self.gtin, serial, n),
            {
                **ev,
                "by": self.mid,
                "height": ctx.block.height,
                "time": ctx.block.time_ms,
                "tx": ctx.tx.hash,
            },
        )


def _accepted(run: _Run, count: int, **extra: Any) -> dict[str, Any]:
    return {"outcome": "accepted", "alerts": [], "gtin": run.gtin, "count": count, **extra}


def _check_movement(run: _Run, serial: str, rec: dict[str, Any] | None, kind: str) -> bool:
    """The generic rules for moving a pack; records the offence and says False."""
    if rec is None:
        run.offend("unknown-serial", serial)
        return False
    status = rec["status"]
    if status == "dispensed" and kind == "dispense":
        run.offend("clone-dispense", serial)
        return False
    if status in ("dispensed", "decommissioned"):
        run.offend("decommissioned-movement", serial)
        return False
    if _is_recalled(rec, run.lot(rec["lot"])):
        run.offend("recalled-movement", serial)
        return False
    return True


def _holds(run: _Run, rec: dict[str, Any]) -> bool:
    return rec["custodian"] == run.mid and rec["status"] in ("commissioned", "held")


# ------------------------------------------------------------------ drug.commission
def _auth_manufacturer(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer, "manufacturer")


def _auth_member(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer)


def _auth_dispenser(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer, "pharmacy", "hospital")


def _auth_recaller(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer, "manufacturer", "regulator")


def _member(ctx: ExecContext) -> dict[str, Any]:
    member = member_of(ctx.state, ctx.tx.signer)
    assert member is not None  # authorize ran first
    return member


def _require_owner_or_regulator(run: _Run) -> None:
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
    run = _Run(ctx, _member(ctx))
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
    return _accepted(run, len(serials), lot=lot_id)


# ------------------------------------------------------------------ movements
def _load(run: _Run) -> list[tuple[str, dict[str, Any] | None]]:
    gtin = run.gtin
    return [(s, run.state.get(serial_key(gtin, s))) for s in run.ctx.tx.body["serials"]]


def _apply_ship(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    run = _Run(ctx, _member(ctx))
    to = body["to"]
    if to == run.mid:
        raise Rejection("malformed", "body.to: cannot ship to oneself")
    recipient = ctx.state.get(member_key(to))
    if not is_active(recipient):
        raise Rejection("unknown-recipient", f"{to} is not an active member")
    packs = _load(run)
    for s, rec in packs:
        if _check_movement(run, s, rec, "ship") and rec is not None and not _holds(run, rec):
            run.offend("non-custodian", s)
    if run.offences:
        return run.refuse()
    ev: dict[str, Any] = {"step": "shipping", "disposition": "in_transit", "to": to}
    if "sscc" in body:
        ev["sscc"] = body["sscc"]
    for s, rec in packs:
        assert rec is not None
        rec["status"] = "in_transit"
        rec["to"] = to
        rec["ship"] = ctx.tx.hash
        run.event(s, rec, ev)
        ctx.state.put(serial_key(run.gtin, s), rec)
    return _accepted(run, len(packs), shipment=ctx.tx.hash, to=to)


def _apply_receive(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    run = _Run(ctx, _member(ctx))
    shipment = body.get("shipment")
    packs = _load(run)
    for s, rec in packs:
        if not _check_movement(run, s, rec, "receive") or rec is None:
            continue
        if (
            rec["status"] != "in_transit"
            or rec["to"] != run.mid
            or (shipment is not None and rec.get("ship") != shipment)
        ):
            run.offend("receive-without-ship", s)
    if run.offences:
        return run.refuse()
    for s, rec in packs:
        assert rec is not None
        sender = rec["custodian"]
        rec["status"] = "held"
        rec["custodian"] = run.mid
        rec["to"] = None
        rec.pop("ship", None)
        run.event(s, rec, {"step": "receiving", "disposition": "in_progress", "from": sender})
        ctx.state.put(serial_key(run.gtin, s), rec)
    return _accepted(run, len(packs))


def _apply_dispense(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    run = _Run(ctx, _member(ctx))
    packs = _load(run)
    for s, rec in packs:
        if not _check_movement(run, s, rec, "dispense") or rec is None:
            continue
        if not _holds(run, rec):
            run.offend("non-custodian", s)
        elif _is_suspect(rec, run.lot(rec["lot"])):
            run.offend("suspect-dispense", s)
        elif "lot" in body and body["lot"] != rec["lot"]:
            run.offend("lot-mismatch", s)
        elif "expiry" in body and body["expiry"] != rec["expiry"]:
            run.offend("expiry-mismatch", s)
    if run.offences:
        return run.refuse()
    for s, rec in packs:
        assert rec is not None
        rec["status"] = "dispensed"
        rec["dispensed_by"] = run.mid
        run.event(s, rec, {"step": "dispensing", "disposition": "dispensed"})
        ctx.state.put(serial_key(run.gtin, s), rec)
    return _accepted(run, len(packs))


def _apply_decommission(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    run = _Run(ctx, _member(ctx))
    reason = body["reason"]
    regulator = "regulator" in run.member["roles"]
    packs = _load(run)
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
        if not (regulator or _holds(run, rec) or shipper_theft):
            run.offend("non-custodian", s)
    if run.offences:
        return run.refuse()
    disposition = {"sample": "inactive"}.get(reason, reason)
    for s, rec in packs:
        assert rec is not None
        rec["status"] = "decommissioned"
        rec["reason"] = reason
        rec["to"] = None
        rec.pop("ship", None)
        run.event(s, rec, {"step": "decommissioning", "disposition": disposition, "reason": reason})
        ctx.state.put(serial_key(run.gtin, s), rec)
    return _accepted(run, len(packs), reason=reason)


# ------------------------------------------------------------------ flags
def _target(body: Mapping[str, Any]) -> str:
    if ("lot" in body) == ("serials" in body):
        raise Rejection("malformed", "body: give exactly one of lot or serials")
    return "lot" if "lot" in body else "serials"


def _set_flag(run: _Run, flag: str, value: bool, step: dict[str, Any]) -> dict[str, Any]:
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
        return _accepted(run, lot["count"], lot=body["lot"])
    packs = _load(run)
    unknown = [s for s, rec in packs if rec is None]
    if unknown:
        raise Rejection("unknown-serial", f"never commissioned: {', '.join(unknown[:5])}")
    for s, rec in packs:
        assert rec is not None
        rec[flag] = value
        run.event(s, rec, {**step, **({"reason": body["reason"]} if "reason" in body else {})})
        ctx.state.put(serial_key(run.gtin, s), rec)
    return _accepted(run, len(packs))


def _apply_recall(ctx: ExecContext) -> dict[str, Any]:
    run = _Run(ctx, _member(ctx))
    _require_owner_or_regulator(run)
    return _set_flag(run, "recalled", True, {"step": "holding", "disposition": "recalled"})


def _apply_suspect(ctx: ExecContext) -> dict[str, Any]:
    run = _Run(ctx, _member(ctx))
    if run.product() is None:
        raise Rejection("unknown-product", f"GTIN {run.gtin} was never commissioned")
    return _set_flag(
        run, "suspect", True, {"step": "inspecting", "disposition": "non_sellable_other"}
    )


def _apply_clear(ctx: ExecContext) -> dict[str, Any]:
    run = _Run(ctx, _member(ctx))
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
        if expiry_yyyymmdd(info["expiry"]) < day_of(block_time(state)):
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


def _q_verify(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any]:
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
    schema=Obj({"gtin": Gtin(), "lot": Gs1Text(), "expiry": Expiry(), "serials": _serials()}),
    authorize=_auth_manufacturer,
    apply=_apply_commission,
    summary="commission serialised packs of a GTIN and lot (EPCIS commissioning)",
)
SHIP = TxType(
    name="drug.ship",
    schema=Obj(
        {
            "gtin": Gtin(),
            "serials": _serials(),
            "to": Str(max_len=64, pattern=MEMBER_RE),
            "sscc": Sscc(optional=True),
        }
    ),
    authorize=_auth_member,
    apply=_apply_ship,
    summary="ship packs the signer holds to another member (EPCIS shipping)",
)
RECEIVE = TxType(
    name="drug.receive",
    schema=Obj(
        {
            "gtin": Gtin(),
            "serials": _serials(),
            "shipment": Str(max_len=64, min_len=64, pattern=HEX64, optional=True),
        }
    ),
    authorize=_auth_member,
    apply=_apply_receive,
    summary="receive packs shipped to the signer (EPCIS receiving)",
)
DISPENSE = TxType(
    name="drug.dispense",
    schema=Obj(
        {
            "gtin": Gtin(),
            "serials": _serials(),
            "lot": Gs1Text(optional=True),
            "expiry": Expiry(optional=True),
        }
    ),
    authorize=_auth_dispenser,
    apply=_apply_dispense,
    summary="dispense packs the pharmacy or hospital holds (decommissions them)",
)
DECOMMISSION = TxType(
    name="drug.decommission",
    schema=Obj(
        {
            "gtin": Gtin(),
            "serials": _serials(),
            "reason": Str(max_len=16, choices=DECOMMISSION_REASONS),
        }
    ),
    authorize=_auth_member,
    apply=_apply_decommission,
    summary="decommission packs: destroyed, expired, stolen or sample",
)
_FLAG_SCHEMA = Obj(
    {
        "gtin": Gtin(),
        "lot": Gs1Text(optional=True),
        "serials": _serials(optional=True),
        "reason": _code(optional=True),
    }
)
RECALL = TxType(
    name="drug.recall",
    schema=_FLAG_SCHEMA,
    authorize=_auth_recaller,
    apply=_apply_recall,
    summary="recall a lot or serials (the GTIN's manufacturer or a regulator)",
)
SUSPECT = TxType(
    name="drug.suspect",
    schema=_FLAG_SCHEMA,
    authorize=_auth_member,
    apply=_apply_suspect,
    summary="flag a lot or serials as suspect (an investigation)",
)
CLEAR = TxType(
    name="drug.clear",
    schema=_FLAG_SCHEMA,
    authorize=_auth_recaller,
    apply=_apply_clear,
    summary="clear the suspect flag of a lot or serials (manufacturer or regulator)",
)

TX_TYPES = (COMMISSION, SHIP, RECEIVE, DISPENSE, DECOMMISSION, RECALL, SUSPECT, CLEAR)

DOMAIN = Domain(
    name="supply",
    tx_types=TX_TYPES,
    queries=(
        Query(
            "/supply/verify",
            _q_verify,
            "Verify a pack (GTIN, serial, lot, expiry): verified, reason codes, history",
            ("gtin", "serial", "lot", "expiry"),
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
