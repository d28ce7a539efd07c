"""node/ops/export.py against a fake client API: paging, the commissioning transaction of a
serial, trial findings and height ranges, in the cases a small real chain rarely makes.

(The exports against a real node, with inclusion proofs: tests/integration/test_exports.py.)
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from node.ledger.domains.supply import MAX_EVENTS_PAGE
from node.ops import export as ex

GTIN = "00614141000036"


class FakeApi:
    """Answers the client-API GETs the exports make, from plain lists (None = 404)."""

    def __init__(self) -> None:
        self.disclosures: list[dict[str, Any]] | None = None  # None: patient not enrolled
        self.blocks: dict[int, dict[str, Any]] = {}
        self.txs: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] | None = None
        self.history_truncated = False
        self.report: dict[str, Any] | None = None
        self.calls: list[str] = []

    def __call__(self, path: str) -> Any:
        self.calls.append(path)
        url = urllib.parse.urlsplit(path)
        q = dict(urllib.parse.parse_qsl(url.query))
        parts = url.path.strip("/").split("/")
        if parts[:3] == ["v1", "ehr", "patients"] and parts[4] == "disclosures":
            if self.disclosures is None:
                return None
            start, limit = int(q["from_height"]), int(q["limit"])
            return {"disclosures": [d for d in self.disclosures if d["height"] >= start][:limit]}
        if parts == ["v1", "blocks", "latest"]:
            return self.blocks[max(self.blocks)] if self.blocks else None
        if parts[:2] == ["v1", "blocks"]:
            return self.blocks.get(int(parts[2]))
        if parts[:2] == ["v1", "txs"]:
            return self.txs.get(parts[2])
        if parts == ["v1", "supply", "packs"]:
            if self.history is None:
                return None
            return {"history": self.history, "history_truncated": self.history_truncated}
        if parts[:2] == ["v1", "trials"] and self.report is not None:
            after, limit = int(q["data_after"]), int(q["data_limit"])
            batches = [b for b in self.report["batches"] if b["seq"] > after][:limit]
            return {**self.report, "data": {"commitments": batches}}
        return None

    def block(self, height: int, txs: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        """Block ``height`` of ``(hash, tx, result)``; each tx's status is recorded."""
        self.blocks[height] = {
            "hash": f"block-{height}",
            "header": {"height": height, "timestamp": 1000 * height},
            "txs": [tx for _, tx, _ in txs],
            "tx_hashes": [h for h, _, _ in txs],
        }
        for index, (h, _, result) in enumerate(txs):
            status = "rejected" if result["status"] == "rejected" else "committed"
            self.txs[h] = {"status": status, "height": height, "index": index, "result": result}


def commission(lot: str = "L1", expiry: str = "301231", serials: tuple[str, ...] = ("S1",)) -> Any:
    body = {"gtin": GTIN, "lot": lot, "expiry": expiry, "serials": list(serials)}
    return {"type": "drug.commission", "body": body}


ACCEPTED = {"status": "ok", "code": "ok", "data": {"outcome": "accepted"}}
REFUSED = {"status": "ok", "code": "ok", "data": {"outcome": "refused"}}
REJECTED = {"status": "rejected", "code": "unauthorized", "data": {}}


def test_commissioning_is_the_accepted_commission_not_a_rejected_or_refused_one() -> None:
    """In the commissioning block a pharmacy's (rejected) commission of the same serial and
    a commission of another lot come first, a refused duplicate comes after: the line names
    the manufacturer's accepted commission."""
    api = FakeApi()
    api.block(
        7,
        [
            ("t-rejected", commission(), REJECTED),
            ("t-other-lot", commission(lot="L2"), ACCEPTED),
            ("t-real", commission(serials=("S0", "S1")), ACCEPTED),
            ("t-duplicate", commission(), REFUSED),
        ],
    )
    api.history = [
        {"step": "commissioning", "lot": "L1", "expiry": "301231", "height": 7, "time": 7000},
        {"step": "shipping", "to": "dist", "height": 9, "time": 9000, "tx": "t-ship"},
    ]
    api.txs["t-ship"] = {"status": "committed", "height": 9, "index": 0, "result": ACCEPTED}
    lines = list(ex.custody(api, GTIN, "S1"))
    assert [(x["tx"], x["height"], x["index"]) for x in lines] == [
        ("t-real", 7, 2),
        ("t-ship", 9, 0),
    ]
    assert [x["record"]["step"] for x in lines] == ["commissioning", "shipping"]


def test_commissioning_without_an_accepted_commission_is_an_error() -> None:
    api = FakeApi()
    api.block(7, [("t-rejected", commission(), REJECTED)])
    api.history = [{"step": "commissioning", "lot": "L1", "expiry": "301231", "height": 7}]
    with pytest.raises(ex.ExportError, match=f"no drug.commission of {GTIN}/S1 at height 7"):
        list(ex.custody(api, GTIN, "S1"))
    api.history = None
    with pytest.raises(ex.ExportError, match="never commissioned"):
        list(ex.custody(api, GTIN, "S1"))


def test_a_custody_history_cut_by_the_api_is_an_error() -> None:
    """The pack query lists at most MAX_EVENTS_PAGE events after the commissioning and
    says when it cut the list: then the export fails instead of writing an incomplete
    file; a history of exactly MAX_EVENTS_PAGE events is complete and exported."""
    api = FakeApi()
    api.block(7, [("t-real", commission(), ACCEPTED)])
    api.history = [{"step": "commissioning", "lot": "L1", "expiry": "301231", "height": 7}] + [
        {"step": "shipping", "height": 8 + i, "tx": f"t{i}"} for i in range(MAX_EVENTS_PAGE)
    ]
    for i in range(MAX_EVENTS_PAGE):
        api.txs[f"t{i}"] = {"status": "committed", "height": 8 + i, "index": 0, "result": ACCEPTED}
    assert len(list(ex.custody(api, GTIN, "S1"))) == MAX_EVENTS_PAGE + 1
    api.history_truncated = True
    with pytest.raises(ex.ExportError, match="export would be incomplete"):
        list(ex.custody(api, GTIN, "S1"))


def disclosure(tx: str, height: int) -> dict[str, Any]:
    return {"tx": tx, "height": height, "kind": "access", "emergency": False}


def test_disclosures_page_across_heights_without_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages restart at the last height seen: entries of that height are not repeated."""
    monkeypatch.setattr(ex, "PAGE", 3)
    api = FakeApi()
    api.disclosures = [disclosure(f"d{i}", h) for i, h in enumerate([1, 2, 2, 3, 5, 5, 6])]
    for i, d in enumerate(api.disclosures):
        api.txs[d["tx"]] = {"status": "committed", "height": d["height"], "index": i}
    lines = list(ex.disclosures(api, "ab" * 32))
    assert [x["tx"] for x in lines] == [f"d{i}" for i in range(7)]
    assert [x["index"] for x in lines] == list(range(7))


def test_disclosures_never_end_short_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    """A page's worth of entries at one height cannot be paged through (the API pages by
    height): an error, not an export that quietly misses some."""
    monkeypatch.setattr(ex, "PAGE", 2)
    api = FakeApi()
    api.disclosures = [disclosure(f"d{i}", h) for i, h in enumerate([1, 4, 4, 4])]
    for d in api.disclosures:
        api.txs[d["tx"]] = {"status": "committed", "height": d["height"], "index": 0}
    with pytest.raises(ex.ExportError, match="2 or more disclosures at height 4"):
        list(ex.disclosures(api, "ab" * 32))
    with pytest.raises(ex.ExportError, match="is not enrolled"):
        list(ex.disclosures(FakeApi(), "cd" * 32))


def test_trial_timeline_then_flags_then_every_data_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ex, "PAGE", 2)
    api = FakeApi()
    ev = {"height": 3, "index": 0, "time": 3000}
    api.report = {
        "timeline": [{"event": "registered", "tx": "t-reg", **ev}],
        "flags": [{"code": "outcome-missing", "outcome_id": "S2", "tx": "t-res", **ev}],
        "batches": [{"seq": s, "merkle_root": "ab", "tx": f"t-d{s}", **ev} for s in (1, 2, 3)],
    }
    lines = list(ex.trial(api, "NCT01234567"))
    assert [(x["record"]["section"], x["tx"]) for x in lines] == [
        ("timeline", "t-reg"),
        ("flag", "t-res"),
        ("data", "t-d1"),
        ("data", "t-d2"),
        ("data", "t-d3"),
    ]
    with pytest.raises(ex.ExportError, match="trial NCT00000001 is not registered"):
        list(ex.trial(FakeApi(), "NCT00000001"))


def test_block_ranges() -> None:
    api = FakeApi()
    for height in (1, 2, 3):
        api.block(height, [(f"t{height}-{i}", {"type": "x"}, ACCEPTED) for i in range(height)])
    assert [x["tx"] for x in ex.blocks(api, 2, 3)] == ["t2-0", "t2-1", "t3-0", "t3-1", "t3-2"]
    assert [x["tx"] for x in ex.blocks(api, 3, None)] == ["t3-0", "t3-1", "t3-2"]
    assert list(ex.blocks(api, 4, None)) == []  # nothing new since height 3: not an error
    with pytest.raises(ex.ExportError, match="--blocks '2:4': the chain ends at height 3"):
        list(ex.blocks(api, 2, 4))
    assert ex.parse_range("1:latest") == (1, None)
    assert ex.parse_range("2:") == (2, None)
    assert ex.parse_range("2:2") == (2, 2)
    for bad in ("0:1", "3:2", "1", "a:b", ":5"):
        with pytest.raises(ex.ExportError, match="--blocks"):
            ex.parse_range(bad)
