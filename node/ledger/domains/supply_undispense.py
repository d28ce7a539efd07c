"""``drug.undispense``: the undo of a dispense that EU FMD allows (Delegated Regulation
(EU) 2016/161, Art. 13, reverting a decommissioned unique identifier to active).

The pack goes back to the status it had before the dispense, in the custody of
the dispenser, if (Art. 13 (a) to (d)): the signer is the member that dispensed it
(the same premises), at most ``UNDO_WINDOW_MS`` (10 days) of block time have
passed since the dispense, the pack has not expired and it is not recalled, nor
destroyed or stolen. Otherwise the undo is refused with an alert, like any other
movement (docs/supply-chain.md, "Counterfeit rules").
"""

from __future__ import annotations

from typing import Any

from node.ledger.context import ExecContext
from node.ledger.domains.supply_core import (
    Run,
    accepted,
    auth_dispenser,
    is_recalled,
    serial_key,
    serials_schema,
    signer_member,
)
from node.ledger.gs1 import Gtin
from node.ledger.registry import TxType
from node.ledger.schema import Obj

UNDO_WINDOW_MS = 10 * 24 * 3600 * 1000  # EU FMD Art. 13 (b): not more than 10 days


def _check(run: Run, serial: str, rec: dict[str, Any] | None) -> None:
    """Record the first rule (in the documented order) ``serial`` breaks, if any."""
    if rec is None:
        run.offend("unknown-serial", serial)
    elif rec["status"] == "decommissioned":
        run.offend("decommissioned-movement", serial)
    elif is_recalled(rec, run.lot(rec["lot"])):
        run.offend("recalled-movement", serial)
    elif rec["status"] != "dispensed":
        run.offend("not-dispensed", serial)
    elif rec["dispensed_by"] != run.mid:
        run.offend("undispense-elsewhere", serial)
    elif "d" not in rec or run.ctx.block.time_ms - rec["d"][1] > UNDO_WINDOW_MS:
        # a pack dispensed before the dispense time was recorded cannot show its window
        run.offend("undispense-late", serial)
    elif run.expired(rec):
        run.offend("expired", serial)


def _apply_undispense(ctx: ExecContext) -> dict[str, Any]:
    run = Run(ctx, signer_member(ctx))
    packs = run.load(ctx.tx.body["serials"])
    for s, rec in packs:
        _check(run, s, rec)
    if run.offences:
        return run.refuse()
    for s, rec in packs:
        assert rec is not None
        _, _, before = rec.pop("d")
        rec["status"] = before
        rec["dispensed_by"] = None
        run.event(s, rec, {"step": "undispensing", "disposition": "active"})
        ctx.state.put(serial_key(run.gtin, s), rec)
    return accepted(run, len(packs))


UNDISPENSE = TxType(
    name="drug.undispense",
    schema=Obj({"gtin": Gtin(), "serials": serials_schema()}),
    authorize=auth_dispenser,
    apply=_apply_undispense,
    summary="undo a dispense within 10 days, by the dispenser (EU FMD Art. 13)",
)
