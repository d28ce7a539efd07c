"""What every transaction type of the supply domain shares: the pack state and its
keys, the pack facts other domains read, and one transaction's run (the checks a
movement makes and the alerts a refused one records).

docs/supply-chain.md describes the keys ("State layout"), the rules
("Counterfeit rules") and the policy this module implements: a movement that
breaks a rule is committed with outcome ``refused``, no pack of it changes, and
one alert per rule broken lists the offending serials.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from node.ledger.context import ExecContext
from node.ledger.gs1 import Gs1Text, expiry_yyyymmdd
from node.ledger.members import member_of, require_member
from node.ledger.schema import List, Str
from node.ledger.state import BlockState

MAX_SERIALS = 1000  # per transaction (a commission, a shipment ...)

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")  # short codes, never free text
MEMBER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")

STATUSES = ("commissioned", "in_transit", "held", "dispensed", "decommissioned")
DECOMMISSION_REASONS = ("destroyed", "expired", "stolen", "sample")

# Alert rules, in the order they are checked (the first one a serial breaks is recorded).
RULES = (
    "duplicate-commission",  # commissioning a serial that already exists
    "unknown-serial",  # a movement of a serial never commissioned
    "clone-dispense",  # a second dispense of a serial
    "decommissioned-movement",  # any movement of a dispensed/decommissioned serial
    "recalled-movement",  # any movement of a recalled serial
    "non-custodian",  # ship/dispense/decommission by a member not holding the pack
    "receive-without-ship",  # receive of a pack not shipped to the receiver
    "suspect-dispense",  # dispensing a pack under investigation
    "lot-mismatch",  # dispense scanned a lot other than the commissioned one
    "expiry-mismatch",  # dispense scanned an expiry other than the commissioned one
    "not-dispensed",  # undispense of a pack that is not dispensed
    "undispense-elsewhere",  # undispense by a member other than the dispenser
    "undispense-late",  # undispense after the EU FMD window
    "expired",  # ship, dispense or undispense of a pack past its expiry day
)


# ------------------------------------------------------------------ schema pieces
def day_of(time_ms: int) -> int:
    """The UTC date of a block time as an integer YYYYMMDD (compared with an expiry)."""
    d = datetime.fromtimestamp(time_ms // 1000, tz=UTC)
    return d.year * 10000 + d.month * 100 + d.day


def is_expired(expiry: str, time_ms: int) -> bool:
    """Is a pack of this ``YYMMDD`` expiry expired on the UTC date of ``time_ms``?"""
    return expiry_yyyymmdd(expiry) < day_of(time_ms)


def serials_schema(optional: bool = False) -> List:
    return List(Gs1Text(), max_items=MAX_SERIALS, min_items=1, unique=True, optional=optional)


def code_schema(optional: bool = False) -> Str:
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
def is_recalled(rec: dict[str, Any], lot: dict[str, Any] | None) -> bool:
    return bool(rec["recalled"]) or bool(lot and lot["recalled"])


def is_suspect(rec: dict[str, Any], lot: dict[str, Any] | None) -> bool:
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
        "recalled": is_recalled(rec, lot),
        "suspect": is_suspect(rec, lot),
        "manufacturer": product.get("manufacturer"),
        "commissioned_height": rec["c"][0],
        "commissioned_time": rec["c"][1],
    }


# ------------------------------------------------------------------ one transaction
class Run:
    """One transaction's view: the signer's member, its GTIN, cached lots, alerts raised."""

    def __init__(self, ctx: ExecContext, member: dict[str, Any], gtin: str | None = None) -> None:
        self.ctx = ctx
        self.state = ctx.state
        self.member = member
        self.mid: str = member["id"]
        self.gtin: str = ctx.tx.body["gtin"] if gtin is None else gtin
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

    def expired(self, rec: dict[str, Any]) -> bool:
        return is_expired(rec["expiry"], self.ctx.block.time_ms)

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

    def load(self, serials: list[str]) -> list[tuple[str, dict[str, Any] | None]]:
        """Each serial with its pack record (None if never commissioned)."""
        return [(s, self.state.get(serial_key(self.gtin, s))) for s in serials]


def accepted(run: Run, count: int, **extra: Any) -> dict[str, Any]:
    return {"outcome": "accepted", "alerts": [], "gtin": run.gtin, "count": count, **extra}


def check_movement(run: Run, serial: str, rec: dict[str, Any] | None, kind: str) -> bool:
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
    if is_recalled(rec, run.lot(rec["lot"])):
        run.offend("recalled-movement", serial)
        return False
    return True


def holds(run: Run, rec: dict[str, Any]) -> bool:
    return rec["custodian"] == run.mid and rec["status"] in ("commissioned", "held")


# ------------------------------------------------------------------ authorisation
def auth_manufacturer(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer, "manufacturer")


def auth_member(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer)


def auth_dispenser(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer, "pharmacy", "hospital")


def auth_recaller(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer, "manufacturer", "regulator")


def signer_member(ctx: ExecContext) -> dict[str, Any]:
    member = member_of(ctx.state, ctx.tx.signer)
    assert member is not None  # authorize ran first
    return member
