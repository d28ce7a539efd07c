"""Audit exports as JSON Lines, read through a node's client API.

Each line is one JSON object naming the transaction it comes from::

    {"kind": ..., "tx": "<hash>", "height": H, "index": I, "record": {...}}

so ``GET /v1/proofs/<tx>`` (``hygeia client proof <tx>``) fetches its
inclusion proof, verifiable offline against genesis. Kinds: ``disclosure``
(a patient's accounting of disclosures), ``custody`` (a drug serial's custody
history, commissioning first), ``trial`` (a trial's audit report: its
timeline, with amendments, then its findings, then its data commitments;
``record.section`` is ``timeline``, ``flag`` or ``data``) and ``tx`` (every
transaction of a height range).

``Fetch`` is a GET of a client-API path returning JSON (``None`` for 404), so
the functions are testable without a network.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterator
from typing import IO, Any

from node.ledger.domains.supply import MAX_EVENTS_PAGE

Fetch = Callable[[str], Any]
Line = dict[str, Any]
PAGE = 1000


class ExportError(Exception):
    """An export that cannot be made; the message is for the operator."""


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _located(fetch: Fetch, kind: str, record: dict[str, Any]) -> Line:
    """A line for ``record`` (which names its ``tx``), with height and index from the node."""
    tx = record["tx"]
    height, index = record.get("height"), record.get("index")
    if index is None:
        status = fetch(f"/v1/txs/{tx}") or {}
        height, index = status.get("height", height), status.get("index")
    return {"kind": kind, "tx": tx, "height": height, "index": index, "record": record}


def disclosures(fetch: Fetch, patient: str) -> Iterator[Line]:
    """Every access and emergency access of a patient, oldest first."""
    seen: set[str] = set()
    from_height = 0
    while True:
        page = fetch(
            f"/v1/ehr/patients/{_q(patient)}/disclosures?limit={PAGE}&from_height={from_height}"
        )
        if page is None:
            raise ExportError(f"patient {patient} is not enrolled")
        items = page["disclosures"]
        fresh = [d for d in items if f"{d['tx']}/{d.get('height')}" not in seen]
        for d in fresh:
            seen.add(f"{d['tx']}/{d.get('height')}")
            yield _located(fetch, "disclosure", d)
        if len(items) < PAGE:
            return
        if not fresh:  # a full page of one height: the API cannot page inside a height
            raise ExportError(
                f"patient {patient}: {PAGE} or more disclosures at height {from_height}; "
                "the client API cannot page within one height, so the export would be "
                "incomplete"
            )
        from_height = int(items[-1]["height"])


def _commissioning_tx(
    fetch: Fetch, gtin: str, serial: str, entry: dict[str, Any]
) -> tuple[str, int] | None:
    """The ``drug.commission`` that made the serial: in the block at the entry's height,
    of its lot and expiry, and accepted. A block may also hold commissions of the same
    serial that were rejected (e.g. not signed by a manufacturer) or refused (a duplicate),
    earlier or later in the block: they are not the commissioning."""
    block = fetch(f"/v1/blocks/{int(entry['height'])}")
    if block is None:
        return None
    for index, (tx, h) in enumerate(zip(block["txs"], block["tx_hashes"], strict=True)):
        body = tx.get("body", {})
        if (
            tx.get("type") != "drug.commission"
            or body.get("gtin") != gtin
            or serial not in body.get("serials", [])
            or (body.get("lot"), body.get("expiry")) != (entry.get("lot"), entry.get("expiry"))
        ):
            continue
        result = (fetch(f"/v1/txs/{h}") or {}).get("result") or {}
        if result.get("status") == "ok" and result.get("data", {}).get("outcome") == "accepted":
            return h, index
    return None


def custody(fetch: Fetch, gtin: str, serial: str) -> Iterator[Line]:
    """A serial's custody history: the commissioning, then every event in order."""
    q = f"gtin={_q(gtin)}&serial={_q(serial)}"
    pack = fetch(f"/v1/supply/packs?{q}")
    if pack is None:
        raise ExportError(f"serial {serial} of GTIN {gtin} was never commissioned")
    if pack.get("history_truncated"):  # the API lists at most MAX_EVENTS_PAGE events
        raise ExportError(
            f"serial {serial} of GTIN {gtin} has more than {MAX_EVENTS_PAGE} custody "
            "events; the client API lists only the first, so the export would be incomplete"
        )
    for event in pack["history"]:
        if "tx" not in event:  # the commissioning entry: find its transaction
            found = _commissioning_tx(fetch, gtin, serial, event)
            if found is None:
                raise ExportError(
                    f"no drug.commission of {gtin}/{serial} at height {event['height']}"
                )
            event = {**event, "tx": found[0], "index": found[1]}
        yield _located(fetch, "custody", event)


def trial(fetch: Fetch, trial_id: str) -> Iterator[Line]:
    """The events of a trial's audit report: the timeline, then the findings (``flag``:
    outcomes changed after enrolment, outcome switching in the results, each naming the
    transaction that raised it), then the data commitments."""
    after = 0
    first = True
    while True:
        report = fetch(f"/v1/trials/{_q(trial_id)}/report?data_limit={PAGE}&data_after={after}")
        if report is None:
            raise ExportError(f"trial {trial_id} is not registered")
        if first:
            for event in report["timeline"]:
                yield _located(fetch, "trial", {"section": "timeline", **event})
            for flag in report["flags"]:
                yield _located(fetch, "trial", {"section": "flag", **flag})
            first = False
        batches = report["data"]["commitments"]
        for batch in batches:
            if "tx" in batch:
                yield _located(fetch, "trial", {"section": "data", **batch})
        if len(batches) < PAGE:
            return
        after += len(batches)


def blocks(fetch: Fetch, start: int, end: int | None) -> Iterator[Line]:
    """Every transaction of heights ``start..end`` (``end`` None: up to the tip, so a
    ``start`` past the tip gives nothing; an ``end`` past the tip is an error)."""
    latest = fetch("/v1/blocks/latest")
    tip = int(latest["header"]["height"]) if latest else 0
    if end is None:
        end = tip
    elif end > tip:
        raise ExportError(f"--blocks '{start}:{end}': the chain ends at height {tip}")
    for height in range(start, end + 1):
        block = fetch(f"/v1/blocks/{height}")
        if block is None:
            raise ExportError(f"no block at height {height}")
        header = block["header"]
        for index, (tx, h) in enumerate(zip(block["txs"], block["tx_hashes"], strict=True)):
            yield {
                "kind": "tx",
                "tx": h,
                "height": height,
                "index": index,
                "block_hash": block["hash"],
                "time": header["timestamp"],
                "record": tx,
            }


def parse_range(text: str) -> tuple[int, int | None]:
    """``FROM:TO`` (``TO`` may be empty or ``latest``); heights start at 1."""
    lo, sep, hi = text.partition(":")
    try:
        start = int(lo)
        end = None if hi in ("", "latest") else int(hi)
    except ValueError:
        raise ExportError(f"--blocks {text!r}: expected FROM:TO, e.g. 1:100 or 1:latest") from None
    if not sep or start < 1 or (end is not None and end < start):
        raise ExportError(f"--blocks {text!r}: expected FROM:TO with 1 <= FROM <= TO")
    return start, end


def write_lines(lines: Iterator[Line], out: IO[str]) -> int:
    count = 0
    for line in lines:
        out.write(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n")
        count += 1
    return count
