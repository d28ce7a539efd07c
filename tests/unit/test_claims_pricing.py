"""The money arithmetic of a claim line (node/ledger/domains/claims_pricing.py): worked
examples, rounding, zero and cap boundaries, integers throughout."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from node.ledger.domains.claims_pricing import (
    BP,
    LINE_AMOUNTS,
    adjustment,
    claim_totals,
    coordinate,
    denied_line,
    patient_responsibility,
    price_line,
)

NO_TERMS: dict[str, Any] = {
    "deductible": 0,
    "copay_fixed": 0,
    "copay_bp": 0,
    "annual_limit": None,
    "deductible_met": 0,
    "benefit_paid": 0,
}


def price(quantity: int, unit_price: int, allowed: int, **terms: Any) -> dict[str, Any]:
    """``price_line`` with no deductible, copays or limit unless given."""
    return price_line(quantity=quantity, unit_price=unit_price, allowed=allowed, **NO_TERMS | terms)


def codes(line: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(a["group"], a["code"], a["amount"]) for a in line["adjustments"]]


def balanced(line: dict[str, Any]) -> bool:
    """submitted == benefit + sum(adjustment amounts)"""
    return bool(
        line["submitted"] == line["benefit"] + sum(a["amount"] for a in line["adjustments"])
    )


# ------------------------------------------------------------------ worked examples
def test_worked_example_every_step() -> None:
    """3 x 99.99 against an allowed 80.00: 59.97 over the fee schedule (CO 45), a 30.00
    deductible (PR 1), a 5.00 copay (PR 3), 20 % of the remaining 205.00 (PR 2)."""
    line = price(
        3,
        9_999,
        8_000,
        deductible=3_000,
        copay_fixed=500,
        copay_bp=2_000,
        annual_limit=20_000,
    )
    assert line == {
        "submitted": 29_997,
        "eligible": 24_000,
        "deductible": 3_000,
        "copay": 500,
        "coinsurance": 4_100,
        "limit_exceeded": 0,
        "benefit": 16_400,
        "adjustments": [
            adjustment("CO", "45", 5_997),
            adjustment("PR", "1", 3_000),
            adjustment("PR", "3", 500),
            adjustment("PR", "2", 4_100),
        ],
        "denied": False,
    }
    assert balanced(line) and patient_responsibility(line["adjustments"]) == 7_600


def test_below_the_fee_schedule_nothing_is_cut() -> None:
    """A price below the allowed amount is eligible in full: no CO 45, no adjustments."""
    line = price(2, 1_000, 1_500)
    assert (line["eligible"], line["benefit"], line["adjustments"]) == (2_000, 2_000, [])


def test_allowed_is_per_unit() -> None:
    """The allowed amount is multiplied by the quantity before the cut."""
    line = price(4, 1_000, 900)
    assert line["eligible"] == 3_600 and codes(line) == [("CO", "45", 400)]


# ------------------------------------------------------------------ rounding
@pytest.mark.parametrize(
    ("rest", "copay_bp", "coinsurance"),
    [
        (999, 3_333, 332),  # 332.967 rounds down, never up
        (1, 9_999, 0),  # less than a minor unit: nothing
        (3, 3_334, 1),  # 1.0002
        (10_000, 1, 1),  # one basis point of 100.00
        (7, BP, 7),  # 100 %: all of it
        (7, 0, 0),
    ],
)
def test_coinsurance_rounds_down(rest: int, copay_bp: int, coinsurance: int) -> None:
    """floor(rest * copay_bp / 10000): the patient never pays a rounded-up fraction."""
    line = price(1, rest, rest, copay_bp=copay_bp)
    assert line["coinsurance"] == coinsurance and line["benefit"] == rest - coinsurance
    assert codes(line) == ([("PR", "2", coinsurance)] if coinsurance else [])


def test_large_amounts_are_exact() -> None:
    """The largest line (10,000 units at 10**12 - 1) is exact to the minor unit; its
    benefit is an odd number above 2**53, which no float holds."""
    line = price(10_000, 10**12 - 1, 10**12, copay_bp=1)
    assert line["submitted"] == 9_999_999_999_990_000
    assert line["coinsurance"] == 999_999_999_999
    assert line["benefit"] == 9_998_999_999_990_001 and balanced(line)
    assert float(line["benefit"]) != line["benefit"]


# ------------------------------------------------------------------ deductible
def test_deductible_absorbing_the_line_is_approved_with_no_benefit() -> None:
    """A line the open deductible absorbs pays nothing but is not denied."""
    line = price(1, 2_000, 5_000, deductible=3_000, copay_fixed=500, copay_bp=2_000)
    assert (line["deductible"], line["copay"], line["coinsurance"], line["benefit"]) == (
        2_000,
        0,
        0,
        0,
    )
    assert codes(line) == [("PR", "1", 2_000)] and line["denied"] is False


def test_deductible_already_met_or_overmet() -> None:
    """A met deductible, or one met above a later version's lower deductible, takes nothing."""
    for met in (3_000, 9_000):
        line = price(1, 2_000, 5_000, deductible=3_000, deductible_met=met)
        assert line["deductible"] == 0 and codes(line) == []


def test_deductible_partly_met() -> None:
    line = price(1, 2_000, 5_000, deductible=3_000, deductible_met=2_500)
    assert line["deductible"] == 500 and line["benefit"] == 1_500


# ------------------------------------------------------------------ copays
def test_fixed_copay_larger_than_the_rest_takes_the_rest() -> None:
    line = price(1, 300, 300, copay_fixed=500, copay_bp=5_000)
    assert (line["copay"], line["coinsurance"], line["benefit"]) == (300, 0, 0)
    assert codes(line) == [("PR", "3", 300)] and not line["denied"]


def test_coinsurance_applies_after_the_fixed_copay() -> None:
    line = price(1, 10_000, 10_000, copay_fixed=1_000, copay_bp=1_000)
    assert (line["copay"], line["coinsurance"], line["benefit"]) == (1_000, 900, 8_100)


# ------------------------------------------------------------------ annual limit
def test_limit_exactly_reached_is_not_exceeded() -> None:
    """A benefit equal to what the limit leaves is paid in full, no PR 119."""
    line = price(1, 5_000, 5_000, annual_limit=10_000, benefit_paid=5_000)
    assert (line["benefit"], line["limit_exceeded"], codes(line)) == (5_000, 0, [])


def test_limit_partly_exceeded() -> None:
    line = price(1, 5_000, 5_000, annual_limit=10_000, benefit_paid=6_000)
    assert (line["benefit"], line["limit_exceeded"]) == (4_000, 1_000)
    assert codes(line) == [("PR", "119", 1_000)] and not line["denied"]


@pytest.mark.parametrize(("limit", "paid"), [(10_000, 10_000), (10_000, 12_000), (0, 0)])
def test_limit_exhausted_denies_the_line(limit: int, paid: int) -> None:
    """Nothing left of the limit (or a limit of 0): benefit 0, PR 119, denied."""
    line = price(1, 5_000, 5_000, annual_limit=limit, benefit_paid=paid)
    assert (line["benefit"], line["limit_exceeded"], line["denied"]) == (0, 5_000, True)
    assert codes(line) == [("PR", "119", 5_000)]


def test_no_limit_is_not_a_zero_limit() -> None:
    line = price(1, 5_000, 5_000, annual_limit=None, benefit_paid=10**15)
    assert line["benefit"] == 5_000 and not line["denied"]


def test_a_zero_line_is_approved_with_nothing() -> None:
    """A unit price of 0: every amount 0, no adjustment, not denied (even at a used-up limit)."""
    line = price(3, 0, 1_000, deductible=100, copay_fixed=100, annual_limit=0)
    assert all(line[k] == 0 for k in LINE_AMOUNTS if k != "patient_responsibility")
    assert line["adjustments"] == [] and line["denied"] is False


# ------------------------------------------------------------------ invariants
def test_every_line_balances_and_is_integer() -> None:
    """Over a grid of terms: submitted == benefit + adjustments, every amount an int
    (bool excluded), no amount negative, no zero adjustment."""
    grid = itertools.product(
        (1, 3),  # quantity
        (0, 1, 999, 10_000),  # unit price
        (0, 500, 10_000),  # allowed
        (0, 700),  # deductible
        (0, 300),  # deductible met
        (0, 250),  # copay fixed
        (0, 1, 3_333, BP),  # copay bp
        (None, 0, 5_000),  # annual limit
        (0, 4_000),  # benefit paid
    )
    for q, unit, allowed, ded, met, fixed, bp, limit, paid in grid:
        line = price_line(
            quantity=q,
            unit_price=unit,
            allowed=allowed,
            deductible=ded,
            copay_fixed=fixed,
            copay_bp=bp,
            annual_limit=limit,
            deductible_met=met,
            benefit_paid=paid,
        )
        assert balanced(line)
        for name in LINE_AMOUNTS[:-1]:
            assert type(line[name]) is int and line[name] >= 0, (name, line)
        assert all(type(a["amount"]) is int and a["amount"] > 0 for a in line["adjustments"])
        if limit is not None:
            assert line["benefit"] <= max(0, limit - paid)


# ------------------------------------------------------------------ denial, totals
def test_denied_line_adjusts_the_whole_amount() -> None:
    line = denied_line(12_345, "CO", "96")
    assert line["benefit"] == 0 and line["denied"] is True and balanced(line)
    assert codes(line) == [("CO", "96", 12_345)]
    assert patient_responsibility(line["adjustments"]) == 0


def test_patient_responsibility_sums_only_pr() -> None:
    adjustments = [
        adjustment("CO", "45", 100),
        adjustment("PR", "1", 20),
        adjustment("OA", "18", 7),
        adjustment("PR", "2", 3),
    ]
    assert patient_responsibility(adjustments) == 23
    assert patient_responsibility([]) == 0


def test_claim_totals_sum_every_amount() -> None:
    lines = [
        {**price(1, 1_000, 800, copay_bp=BP // 2), "patient_responsibility": 600},
        {**denied_line(500, "CO", "96"), "patient_responsibility": 0},
    ]
    totals = claim_totals(iter(lines))  # any iterable, read once
    assert list(totals) == list(LINE_AMOUNTS)
    assert totals == {
        "submitted": 1_500,
        "eligible": 800,
        "deductible": 0,
        "copay": 0,
        "coinsurance": 400,
        "limit_exceeded": 0,
        "benefit": 400,
        "patient_responsibility": 600,
    }
    assert claim_totals([]) == dict.fromkeys(LINE_AMOUNTS, 0)


# ------------------------------------------------------------------ coordination of benefits
def test_secondary_pays_all_the_primary_left_when_its_policy_pays_more() -> None:
    """Own benefit 9,000 against 2,800 left by the primary: pays 2,800, OA 23 for the
    other 7,200, nothing left to the patient, no deductible or copay counted."""
    own = price(1, 10_000, 10_000, copay_bp=1_000)
    line = coordinate(own, 2_800)
    assert codes(line) == [("OA", "23", 7_200)] and balanced(line)
    assert (line["benefit"], line["eligible"], line["coinsurance"]) == (2_800, 10_000, 0)
    assert patient_responsibility(line["adjustments"]) == 0 and line["denied"] is False


def test_secondary_pays_its_own_benefit_and_the_rest_keeps_its_codes() -> None:
    """Own benefit 450 (9,500 deductible, 10 %): pays 450; the patient's 2,350 comes
    out of the own adjustments in order, here all of it from the deductible."""
    own = price(1, 10_000, 10_000, deductible=9_500, copay_bp=1_000)
    line = coordinate(own, 2_800)
    assert codes(line) == [("OA", "23", 7_200), ("PR", "1", 2_350)] and balanced(line)
    assert (line["benefit"], line["deductible"], line["coinsurance"]) == (450, 2_350, 0)


def test_the_rest_spreads_over_the_own_adjustments_in_order() -> None:
    """Own: CO 45 2,000, PR 3 500, PR 2 750 (benefit 6,750); 5,000 left: pays 5,000;
    nothing owed. 9,000 left: pays 6,750, owes 2,250: CO 45 2,000 then PR 3 250."""
    own = price(1, 10_000, 8_000, copay_fixed=500, copay_bp=1_000)
    assert own["benefit"] == 6_750
    assert codes(coordinate(own, 5_000)) == [("OA", "23", 5_000)]
    line = coordinate(own, 9_000)
    assert codes(line) == [("OA", "23", 1_000), ("CO", "45", 2_000), ("PR", "3", 250)]
    assert (line["benefit"], line["copay"], line["coinsurance"]) == (6_750, 250, 0)
    assert balanced(line)


@pytest.mark.parametrize("left", [0, -5])
def test_nothing_left_pays_nothing(left: int) -> None:
    """The primary left the patient nothing: all OA 23, benefit 0, still approved."""
    line = coordinate(price(2, 1_000, 1_000), left)
    assert codes(line) == [("OA", "23", 2_000)] and line["benefit"] == 0
    assert line["denied"] is False and balanced(line)


def test_left_is_capped_at_the_submitted_amount_and_the_limit_still_denies() -> None:
    """More left than submitted (never from a real primary) is read as all of it; a
    line the annual limit denied stays denied and owes the limit's PR 119."""
    line = coordinate(price(1, 1_000, 1_000), 5_000)
    assert (line["benefit"], line["adjustments"]) == (1_000, [])
    own = price(1, 1_000, 1_000, annual_limit=0)
    line = coordinate(own, 400)
    assert codes(line) == [("OA", "23", 600), ("PR", "119", 400)] and line["denied"] is True
    assert line["limit_exceeded"] == 400 and balanced(line)


def test_coordinated_lines_balance_over_a_grid() -> None:
    """Every coordinated line: balanced, integer, non-negative, at most what was left."""
    grid = itertools.product(
        (0, 999, 10_000),  # unit price
        (500, 10_000),  # allowed
        (0, 700),  # deductible
        (0, 250),  # copay fixed
        (0, 3_333),  # copay bp
        (None, 0, 5_000),  # annual limit
        (0, 1, 2_800, 10_000),  # left by the primary
    )
    for unit, allowed, ded, fixed, bp, limit, left in grid:
        own = price(1, unit, allowed, deductible=ded, copay_fixed=fixed, copay_bp=bp,
                    annual_limit=limit)  # fmt: skip
        line = coordinate(own, left)
        assert balanced(line) and line["benefit"] <= min(own["benefit"], left)
        for name in LINE_AMOUNTS[:-1]:
            assert type(line[name]) is int and line[name] >= 0, (name, line)
        assert all(type(a["amount"]) is int and a["amount"] > 0 for a in line["adjustments"])
