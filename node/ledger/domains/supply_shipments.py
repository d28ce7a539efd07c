"""Shipments of the supply domain as units: the record a ``drug.ship`` leaves, the
SSCC that names it while it travels, and what a whole-shipment ``drug.receive``
(by shipment id or by SSCC) covers.

State (docs/supply-chain.md, "State layout"):

* ``drug/ship/<tx hash>``: ``{"gtin", "from", "to", "serials", "sscc"?, "pending",
  "height", "time"}``; ``pending`` counts its packs still in transit under it (a
  receive or a decommission in transit takes them out). A shipment holds at most
  ``MAX_SERIALS`` packs, so reading its serials is bounded.
* ``drug/sscc/<sscc>``: ``{"shipment": tx hash}``, the latest shipment carrying that
  logistic unit. An SSCC names one shipment at a time: shipping under an SSCC whose
  shipment still has packs in transit is rejected (``sscc-in-transit``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.ledger.domains.supply_core import Run
from node.ledger.result import Rejection
from node.ledger.state import BlockState


def shipment_key(shipment: str) -> bytes:
    return b"drug/ship/" + shipment.encode()


def sscc_key(sscc: str) -> bytes:
    return b"drug/sscc/" + sscc.encode()


def require_sscc_free(state: BlockState, sscc: str) -> None:
    """Rejects a shipment under an SSCC that still travels under another shipment."""
    index = state.get(sscc_key(sscc))
    if index is None:
        return
    previous = state.get(shipment_key(index["shipment"]))
    if previous is not None and previous["pending"] > 0:
        raise Rejection(
            "sscc-in-transit", f"SSCC {sscc} is in transit under shipment {index['shipment']}"
        )


def record(run: Run, to: str, serials: list[str], sscc: str | None) -> None:
    """Store the shipment this ``drug.ship`` makes (and its SSCC's index)."""
    ctx = run.ctx
    shipment: dict[str, Any] = {
        "gtin": run.gtin,
        "from": run.mid,
        "to": to,
        "serials": serials,
        "pending": len(serials),
        "height": ctx.block.height,
        "time": ctx.block.time_ms,
    }
    if sscc is not None:
        shipment["sscc"] = sscc
        run.state.put(sscc_key(sscc), {"shipment": ctx.tx.hash})
    run.state.put(shipment_key(ctx.tx.hash), shipment)


def left_transit(state: BlockState, recs: list[dict[str, Any]]) -> None:
    """Packs ``recs`` (still carrying their ``ship``) leave transit: count them off
    their shipments. Packs shipped before shipments were recorded have none."""
    counts: dict[str, int] = {}
    for rec in recs:
        if "ship" in rec:
            counts[rec["ship"]] = counts.get(rec["ship"], 0) + 1
    for shipment, n in counts.items():
        found = state.get(shipment_key(shipment))
        if found is not None:
            found["pending"] -= n
            state.put(shipment_key(shipment), found)


def whole_receive(state: BlockState, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """For a receive without ``serials``: (shipment id, shipment) named by ``shipment``
    or ``sscc``; None for a receive of listed serials. Rejects any other form."""
    if "serials" in body:
        if "gtin" not in body:
            raise Rejection("malformed", "body.gtin: required with serials")
        if "sscc" in body:
            raise Rejection("malformed", "body.sscc: give shipment to match, not sscc")
        return None
    if "gtin" in body:
        raise Rejection("malformed", "body.gtin: a whole-shipment receive names no GTIN")
    if ("shipment" in body) == ("sscc" in body):
        raise Rejection("malformed", "body: give serials, or exactly one of shipment or sscc")
    if "sscc" in body:
        index = state.get(sscc_key(body["sscc"]))
        if index is None:
            raise Rejection("unknown-shipment", f"no shipment under SSCC {body['sscc']}")
        shipment_id: str = index["shipment"]
    else:
        shipment_id = body["shipment"]
    shipment = state.get(shipment_key(shipment_id))
    if shipment is None:
        raise Rejection("unknown-shipment", f"no shipment {shipment_id}")
    return shipment_id, shipment
