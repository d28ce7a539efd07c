"""The money arithmetic of a claim: pure integer functions, no state, no floats.

docs/claims.md, "Adjudication", steps 2 to 6. Amounts are integer minor units,
percentages basis points (``BP`` = 100 %). A priced line is a dict of amounts
and its adjustments (CAS group, CARC, amount), and always satisfies
``submitted == benefit + sum(adjustment amounts)``:

1. ``submitted = quantity * unit_price``;
2. ``eligible = min(submitted, quantity * allowed)``, the excess CO 45;
3. the deductible still open this year, at most ``eligible`` (PR 1);
4. the fixed copay, at most what is left (PR 3);
5. the coinsurance ``floor(rest * copay_bp / BP)`` (PR 2);
6. the benefit is the rest, capped by what the annual limit leaves (PR 119).

The caller keeps the accumulators (deductible met, benefit paid this year) and
adds a priced line's ``deductible`` and ``benefit`` to them.

A secondary payer's line (coordination of benefits, ``coordinate``) is priced by
its own policy as above, then pays at most what the prior payer left to the
patient: the prior payer's part shows as OA 23, and what the patient still owes
keeps the secondary's own adjustment codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

BP = 10_000  # basis points in 100 %

# the amounts of a line that a claim's totals sum
LINE_AMOUNTS = (
    "submitted",
    "eligible",
    "deductible",
    "copay",
    "coinsurance",
    "limit_exceeded",
    "benefit",
    "patient_responsibility",
)


def adjustment(group: str, code: str, amount: int) -> dict[str, Any]:
    """A claim adjustment: CAS group (CO, PR, OA), reason code (CARC), amount."""
    return {"group": group, "code": code, "amount": amount}


def price_line(
    *,
    quantity: int,
    unit_price: int,
    allowed: int,
    deductible: int,
    copay_fixed: int,
    copay_bp: int,
    annual_limit: int | None,
    deductible_met: int,
    benefit_paid: int,
) -> dict[str, Any]:
    """The amounts of a covered line (the module docstring's steps) under a policy's
    terms: ``allowed`` per unit, the yearly ``deductible``, ``copay_fixed`` per line,
    ``copay_bp`` coinsurance and ``annual_limit`` (None: no limit), given what the
    patient met of the deductible and was paid as benefit this year so far.

    ``denied`` is True when the annual limit leaves the line nothing (CARC 119); a
    line the deductible absorbs is not denied: the patient pays it.
    """
    submitted = quantity * unit_price
    adjustments: list[dict[str, Any]] = []
    eligible = min(submitted, quantity * allowed)
    if submitted > eligible:
        adjustments.append(adjustment("CO", "45", submitted - eligible))
    deducted = min(eligible, max(0, deductible - deductible_met))
    if deducted:
        adjustments.append(adjustment("PR", "1", deducted))
    rest = eligible - deducted
    copay = min(rest, copay_fixed)
    if copay:
        adjustments.append(adjustment("PR", "3", copay))
    rest -= copay
    coinsurance = rest * copay_bp // BP
    if coinsurance:
        adjustments.append(adjustment("PR", "2", coinsurance))
    benefit = rest - coinsurance
    limited = 0
    if annual_limit is not None:
        remaining = max(0, annual_limit - benefit_paid)
        if benefit > remaining:
            limited = benefit - remaining
            benefit = remaining
            adjustments.append(adjustment("PR", "119", limited))
    return {
        "submitted": submitted,
        "eligible": eligible,
        "deductible": deducted,
        "copay": copay,
        "coinsurance": coinsurance,
        "limit_exceeded": limited,
        "benefit": benefit,
        "adjustments": adjustments,
        "denied": limited > 0 and benefit == 0,
    }


# the amount field of a line that each patient-responsibility CARC of price_line fills
_PR_FIELDS = {"1": "deductible", "3": "copay", "2": "coinsurance", "119": "limit_exceeded"}


def coordinate(line: dict[str, Any], left: int) -> dict[str, Any]:
    """A secondary payer's line: ``line`` as ``price_line`` priced it under the
    secondary's policy, ``left`` what the prior payer left to the patient on the same
    service (its patient responsibility, at most ``submitted``).

    The secondary pays ``min(line benefit, left)``. The prior payer's part,
    ``submitted - left``, is one adjustment OA 23 (impact of prior payer
    adjudication); what the patient still owes, ``left - benefit``, is taken from
    ``line``'s own adjustments in their order (CO 45, PR 1, PR 3, PR 2, PR 119), each
    at most its amount, and the line's deductible, copay, coinsurance and
    limit_exceeded are those parts: they are what the accumulators count. Still
    ``submitted == benefit + sum(adjustments)``.
    """
    submitted = line["submitted"]
    left = max(0, min(left, submitted))
    benefit = min(line["benefit"], left)
    owed = left - benefit
    adjustments: list[dict[str, Any]] = []
    if submitted > left:
        adjustments.append(adjustment("OA", "23", submitted - left))
    amounts = dict.fromkeys(_PR_FIELDS.values(), 0)
    for adj in line["adjustments"]:
        take = min(adj["amount"], owed)
        if take == 0:
            continue
        owed -= take
        adjustments.append(adjustment(adj["group"], adj["code"], take))
        if adj["group"] == "PR" and adj["code"] in _PR_FIELDS:
            amounts[_PR_FIELDS[adj["code"]]] += take
    return {
        "submitted": submitted,
        "eligible": line["eligible"],
        **amounts,
        "benefit": benefit,
        "adjustments": adjustments,
        "denied": line["denied"],
    }


def denied_line(submitted: int, group: str, code: str) -> dict[str, Any]:
    """A denied line: no benefit, one adjustment of the whole submitted amount."""
    return {
        "submitted": submitted,
        "eligible": 0,
        "deductible": 0,
        "copay": 0,
        "coinsurance": 0,
        "limit_exceeded": 0,
        "benefit": 0,
        "adjustments": [adjustment(group, code, submitted)],
        "denied": True,
    }


def patient_responsibility(adjustments: Iterable[dict[str, Any]]) -> int:
    """What the patient owes on a line: the sum of its PR adjustments."""
    return sum(a["amount"] for a in adjustments if a["group"] == "PR")


def claim_totals(lines: Iterable[dict[str, Any]]) -> dict[str, int]:
    """The claim's totals: every amount of ``LINE_AMOUNTS`` summed over its lines."""
    rows = list(lines)
    return {name: sum(line[name] for line in rows) for name in LINE_AMOUNTS}
