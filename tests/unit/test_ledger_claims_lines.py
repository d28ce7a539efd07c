"""Claims, per line: a drug pack's serial is part of the duplicate key (two packs the
same day are two claims), and a service date after the block's date is denied
(CARC 110) without taking a duplicate-index key."""

from __future__ import annotations

from typing import Any

import pytest

from node.ledger.domains.claims_core import accumulator_key, duplicate_key, line_duplicate_key
from tests.unit.test_ledger_claims import (
    GTIN,
    PATIENT,
    Chain,
    claim,
    fake_supply,
    item,
    reasons,
    setup,
    submit,
    tx,
)

__all__ = ["fake_supply"]  # the fixture, used by name


def pharmacy_chain(*serials: str) -> Chain:
    """The real supply domain: pharmacy p1 received and dispensed these packs."""
    chain = setup(copay_bp=0, copay_fixed=0)
    packs = {"gtin": GTIN, "serials": list(serials)}
    chain.ok(tx("m1", "drug.commission", {**packs, "lot": "L1", "expiry": "271231"}))
    chain.ok(tx("m1", "drug.ship", {**packs, "to": "p1"}))
    chain.ok(tx("p1", "drug.receive", packs))
    chain.ok(tx("p1", "drug.dispense", packs))
    return chain


def pack(serial: str, **over: Any) -> dict[str, Any]:
    return item("J1100", price=2_000, gtin=GTIN, serial=serial, **over)


def test_two_packs_dispensed_the_same_day_are_two_claims() -> None:
    """Same patient, provider, code and date, other serial: no duplicate, in one claim
    or in two; the same pack again is a duplicate of the claim that had it."""
    chain = pharmacy_chain("SN1", "SN2", "SN3")
    first = submit(chain, claim("c-1", [pack("SN1"), pack("SN2")]), "p1")
    second = submit(chain, claim("c-2", [pack("SN3")]), "p1")
    for out in (first, second):
        assert out["flags"] == [] and out["decision"] == "approved"
    out = submit(chain, claim("c-3", [pack("SN2")]), "p1")
    (flag,) = out["flags"]
    assert (flag["code"], flag["original"]["claim_id"], flag["original"]["item"]) == (
        "duplicate",
        "c-1",
        2,
    )
    assert reasons(out["items"][0])[0][:2] == ("OA", "18")


@pytest.mark.usefixtures("fake_supply")
def test_the_same_pack_twice_in_one_claim_is_a_duplicate() -> None:
    """Within one claim the pack's second line is the duplicate."""
    chain = setup()
    out = submit(chain, claim(items=[pack("S1"), pack("S1")]), "p1")
    assert [i["decision"] for i in out["items"]] == ["approved", "denied"]
    assert out["flags"][0]["original"]["item"] == 1


@pytest.mark.usefixtures("fake_supply")
def test_voiding_a_drug_claim_frees_its_pack() -> None:
    """The void releases the key with the serial: the pack is claimable again."""
    chain = setup()
    submit(chain, claim("c-1", [pack("S1")]), "p1")
    chain.ok(tx("p1", "claim.void", {"provider": "p1", "claim_id": "c-1", "reason": "wrong"}))
    assert submit(chain, claim("c-2", [pack("S1")]), "p1")["flags"] == []


def test_the_serial_is_a_field_of_its_own_in_the_key() -> None:
    """A serial is printable ASCII and may hold '/': it goes into the key in hex, so no
    serial can spell another key; a pack's key has no date or code (the pack is billed
    once); a line without a pack keeps the four-field key."""
    base = (PATIENT, "p1", "J1100", "2025-03-01")
    assert duplicate_key(*base, (GTIN, "A/B")) == (
        f"claims/dup/{PATIENT}/p1/pack/{GTIN}/412f42".encode()
    )
    assert duplicate_key(*base, (GTIN, "A/B")) != duplicate_key(*base, (GTIN, "A"))
    later = (PATIENT, "p1", "J1101", "2025-04-01")
    assert duplicate_key(*later, (GTIN, "A")) == duplicate_key(*base, (GTIN, "A"))
    assert duplicate_key(*base) == f"claims/dup/{PATIENT}/p1/J1100/2025-03-01".encode()
    assert line_duplicate_key(PATIENT, "p1", pack("A/B")) == duplicate_key(*base, (GTIN, "A/B"))


def test_the_same_pack_on_another_date_or_code_is_a_duplicate() -> None:
    """A pack billed again with another service date (or code) is caught; another pack
    on that date is not."""
    chain = pharmacy_chain("SN1", "SN2")
    assert submit(chain, claim("c-1", [pack("SN1")]), "p1")["flags"] == []
    again = pack("SN1", date="2025-02-27") | {"service_code": "J1101"}
    out = submit(chain, claim("c-2", [again]), "p1")
    (flag,) = out["flags"]
    assert (flag["code"], flag["original"]["claim_id"]) == ("duplicate", "c-1")
    assert reasons(out["items"][0])[0][:2] == ("OA", "18")
    other = submit(chain, claim("c-3", [pack("SN2", date="2025-02-27")]), "p1")
    assert other["flags"] == []  # (denied by the policy's start, no duplicate)


def test_a_service_date_in_the_future_is_denied_110() -> None:
    """A line dated after the block's UTC date is denied CO 110 (billing date predates
    service date), no flag; a line of the block's date is adjudicated."""
    chain = setup(copay_bp=0, copay_fixed=0)
    out = submit(chain, claim(items=[item(date="2025-03-02"), item("J1100", price=2_000)]))
    future, today = out["items"]
    assert reasons(future) == [("CO", "110", 10_000)] and future["policy_id"] is None
    assert (today["decision"], today["benefit"]) == ("approved", 2_000)
    assert out["decision"] == "partial" and out["flags"] == []


def test_a_future_line_takes_no_key_and_no_accumulator() -> None:
    """Once the day comes, the same service is billable: it is no duplicate, and the
    denied line took nothing of the deductible."""
    chain = setup(deductible=1_000, copay_bp=0, copay_fixed=0)
    submit(chain, claim("c-1", [item(date="2025-03-02")]))
    assert chain.state().get(accumulator_key("i1", PATIENT, "gold", 2025)) is None
    chain.jump("2025-03-02")
    out = submit(chain, claim("c-2", [item(date="2025-03-02")]))
    assert out["flags"] == [] and out["items"][0]["deductible"] == 1_000
