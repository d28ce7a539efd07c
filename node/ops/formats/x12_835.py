"""Claim settlement as an X12 005010X221A1 835 (health care claim payment/advice)
shaped text, from the claim answers of ``GET /v1/claims/{provider}/{claim_id}``.

One interchange (ISA/IEA) of one functional group (GS/GE, ``HP``) of one
transaction set (ST/SE) reports the claims of one provider at one insurer **as
their settlement stands** at a block (``docs/formats.md``, "Claims"):

* ``BPR``: ``BPR02`` = what the insurer has paid on these claims (the sum of
  ``CLP04``; the ledger has no provider-level adjustment, so no ``PLB``);
  ``BPR01`` ``I`` (remittance information: the money moved off chain) or ``H``
  (notification only) when nothing is paid; ``BPR04`` ``NON``; ``BPR16`` and
  ``DTM*405`` the block's date. ``TRN02`` is the trace number (a ``payment_ref``).
* per claim ``CLP``: ``CLP02`` from the adjudication (``1``/``2``/``3`` processed
  as primary/secondary/tertiary, ``4`` denied, ``22`` reversal of a reversed or
  voided claim, every amount negated); ``CLP03`` the submitted total, ``CLP04``
  what is paid, ``CLP05`` the patient's responsibility, ``CLP07`` the ``claim.submit``
  transaction hash; the part of the benefit not yet paid is a claim-level
  ``CAS*OA*133`` (disposition pending). ``REF*F8`` names the claim it replaces.
* per line ``SVC`` (``HC`` code, charge, benefit, units), ``DTM*472`` service
  date, ``CAS`` per group code (``CO``/``PR``/``OA``) with the line's CARCs, and
  ``LQ*HE`` remark codes (RARC): ``M86`` for a duplicate (OA 18), ``M119`` for a
  drug pack not dispensed by the provider and ``N225`` for evidence that is not
  the patient's record (both CO 16), ``N706`` for missing evidence (CO 252).

Balanced by construction: ``CLP03 - CLP04`` is the sum of the claim's CAS amounts
and ``SVC02 - SVC03`` the line's. Amounts are integer minor units written as
decimal strings with integer arithmetic only (``decimal_text``). Element
separator ``*``, component ``>``, repetition ``^``, segment terminator ``~``; a
value holding one of them is refused, as is an answer that does not balance.
Element lengths are Hygeia's (ids up to 64 characters), not 5010's maxima, except
the fixed-width ISA: its sender and receiver (member ids) hold at most 15.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from node.ops.formats import FormatError
from node.ops.formats.fhir_common import instant

ELEMENT = "*"
COMPONENT = ">"
REPETITION = "^"
SEGMENT = "~"
VERSION = "005010X221A1"
GROUPS = ("CO", "PR", "OA")
STATUSES = ("active", "reversed", "voided")
CAS_PER_SEGMENT = 6  # reason/amount/quantity triplets a CAS segment holds
PENDING = "133"  # CARC: the disposition of this claim/service is pending further review

# ISO 4217 currencies whose minor unit is not 1/100 (the rest: two digits)
_MINOR_DIGITS = {
    **dict.fromkeys(
        (
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
            "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip


# ----------------------------------------------------------------- amounts
def minor_digits(currency: str) -> int:
    """The decimal places of ``currency``'s minor unit (ISO 4217; 2 unless listed)."""
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise FormatError("currency", f"{currency!r} is not an ISO 4217 code")
    return _MINOR_DIGITS.get(currency, 2)


def decimal_text(minor: int, digits: int) -> str:
    """``minor`` units with ``digits`` decimal places as an X12 decimal: no exponent,
    no trailing zeros after the point, no point for a whole amount (``1250, 2`` is
    ``12.5``; ``-7, 2`` is ``-0.07``). Integers only."""
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**digits)
    text = f"{frac:0{digits}d}".rstrip("0") if digits else ""
    return f"{sign}{whole}.{text}" if text else f"{sign}{whole}"


def _yyyymmdd(iso: Any, where: str) -> str:
    """``YYYY-MM-DD`` as ``CCYYMMDD``; anything else refused."""
    if not isinstance(iso, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", iso):
        raise FormatError(where, f"{iso!r} is not a date YYYY-MM-DD")
    return iso.replace("-", "")


# ----------------------------------------------------------------- the claim answer
def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(where, "must be an integer (minor units)")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise FormatError(where, "must be a non-empty string")
    return value


def check_claim(claim: Any, where: str = "claim") -> Mapping[str, Any]:
    """A claim answer checked for what the exports read: ids, amounts that are
    integers, each line's ``submitted == benefit + sum(adjustments)``, the totals
    the sums of the lines', ``0 <= paid <= benefit``, known status and groups."""
    if not isinstance(claim, Mapping):
        raise FormatError(where, "must be a claim answer (a JSON object)")
    for name in ("claim_id", "provider", "insurer", "patient", "decision"):
        _str(claim.get(name), f"{where}.{name}")
    if claim.get("status") not in STATUSES:
        raise FormatError(f"{where}.status", f"must be one of {', '.join(STATUSES)}")
    items = claim.get("items")
    if not isinstance(items, list) or not items:
        raise FormatError(f"{where}.items", "must be a non-empty list")
    sums = {"submitted": 0, "benefit": 0, "patient_responsibility": 0}
    for i, line in enumerate(items):
        at = f"{where}.items[{i}]"
        if not isinstance(line, Mapping):
            raise FormatError(at, "must be an object")
        _str(line.get("service_code"), f"{at}.service_code")
        _yyyymmdd(line.get("service_date"), f"{at}.service_date")
        for name in ("sequence", "quantity", *sums):
            _int(line.get(name), f"{at}.{name}")
        for name in ("eligible", "deductible", "copay", "unit_price"):
            if name in line:
                _int(line[name], f"{at}.{name}")
        for name in ("gtin", "serial"):
            if name in line:
                _str(line[name], f"{at}.{name}")
        adjustments = line.get("adjustments")
        if not isinstance(adjustments, list):
            raise FormatError(f"{at}.adjustments", "must be a list")
        total = 0
        for j, adj in enumerate(adjustments):
            if not isinstance(adj, Mapping) or adj.get("group") not in GROUPS:
                raise FormatError(f"{at}.adjustments[{j}]", "must have a group CO, PR or OA")
            _str(adj.get("code"), f"{at}.adjustments[{j}].code")
            total += _int(adj.get("amount"), f"{at}.adjustments[{j}].amount")
        if line["submitted"] != line["benefit"] + total:
            raise FormatError(at, "submitted is not benefit plus the adjustments")
        for name in sums:
            sums[name] += line[name]
    totals = claim.get("totals")
    if not isinstance(totals, Mapping) or any(totals.get(k) != v for k, v in sums.items()):
        raise FormatError(f"{where}.totals", "are not the sums of the lines")
    paid = _int(claim.get("paid"), f"{where}.paid")
    if not 0 <= paid <= sums["benefit"] or (paid and claim["status"] != "active"):
        raise FormatError(f"{where}.paid", "must be 0 .. the benefit, 0 once reversed or voided")
    payments = claim.get("payments", [])
    if not isinstance(payments, list):
        raise FormatError(f"{where}.payments", "must be a list")
    net = 0
    for k, pay in enumerate(payments):
        at = f"{where}.payments[{k}]"
        if not isinstance(pay, Mapping) or pay.get("status") not in ("paid", "reversed"):
            raise FormatError(at, "must be a payment, paid or reversed")
        _str(pay.get("payment_ref"), f"{at}.payment_ref")
        if _int(pay.get("amount"), f"{at}.amount") <= 0:
            raise FormatError(f"{at}.amount", "must be positive")
        net += pay["amount"] if pay["status"] == "paid" else 0
    if net != paid:
        raise FormatError(f"{where}.payments", "the payments made do not add up to paid")
    flags = claim.get("flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, Mapping) for f in flags):
        raise FormatError(f"{where}.flags", "must be a list of objects")
    cob = claim.get("cob", {})
    prior = cob.get("prior_payers", []) if isinstance(cob, Mapping) else None
    if not isinstance(prior, list) or not all(isinstance(p, str) for p in prior):
        raise FormatError(f"{where}.cob", "must name the prior payers")
    if "cob" in claim:
        _str(cob.get("primary_claim"), f"{where}.cob.primary_claim")
    for name in ("evidence", "diagnosis"):
        values = claim.get(name) or []
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise FormatError(f"{where}.{name}", "must be a list of codes or ids")
    for name in ("preauth", "replaces"):
        if claim.get(name) is not None:
            _str(claim[name], f"{where}.{name}")
    submitted = claim.get("submitted")
    if not isinstance(submitted, Mapping):
        raise FormatError(f"{where}.submitted", "must be the submission's block")
    _int(submitted.get("time"), f"{where}.submitted.time")
    _str(submitted.get("tx"), f"{where}.submitted.tx")
    return claim


def check_remittance(claims: Sequence[Any]) -> tuple[str, str]:
    """Every claim checked (``check_claim``), all of one provider at one insurer,
    none twice: that (provider, insurer)."""
    if not claims:
        raise FormatError("claims", "a remittance reports at least one claim")
    checked = [check_claim(c, f"claims[{i}]") for i, c in enumerate(claims)]
    pairs = {(c["provider"], c["insurer"]) for c in checked}
    if len(pairs) != 1:
        raise FormatError("claims", "a remittance is of one provider at one insurer")
    if len({c["claim_id"] for c in checked}) != len(checked):
        raise FormatError("claims", "a claim is listed twice")
    (pair,) = pairs
    return pair


def is_reversal(claim: Mapping[str, Any]) -> bool:
    """A reversed or voided claim: reported as the reversal of its adjudication."""
    return bool(claim["status"] != "active")


def pending(claim: Mapping[str, Any]) -> int:
    """The part of the benefit not paid (yet): the claim-level OA 133."""
    amount: int = claim["totals"]["benefit"] - claim["paid"]
    return amount


def claim_status(claim: Mapping[str, Any]) -> str:
    """``CLP02``: 22 reversal, 4 denied, else 1, 2, 3 processed as primary,
    secondary, tertiary (the payers before this one, ``cob.prior_payers``)."""
    if is_reversal(claim):
        return "22"
    if claim["decision"] == "denied":
        return "4"
    prior = claim.get("cob", {}).get("prior_payers", [])
    return "1" if not prior else "2" if len(prior) == 1 else "3"


def remark_codes(claim: Mapping[str, Any], line: Mapping[str, Any]) -> list[str]:
    """The RARCs of a line, from its adjustments and the claim's flags (module docstring)."""
    drug_items = {
        f.get("item") for f in claim.get("flags", []) if f.get("code") == "drug-not-dispensed"
    }
    out: list[str] = []
    for adj in line["adjustments"]:
        code = (adj["group"], adj["code"])
        if code == ("OA", "18"):
            out.append("M86")
        elif code == ("CO", "16"):
            out.append("M119" if line["sequence"] in drug_items else "N225")
        elif code == ("CO", "252"):
            out.append("N706")
    return list(dict.fromkeys(out))


# ----------------------------------------------------------------- segments
def _element(value: str | int, where: str) -> str:
    text = str(value)
    delimiters = ELEMENT + COMPONENT + REPETITION + SEGMENT
    if not text.isascii() or any(c in delimiters or not c.isprintable() for c in text):
        raise FormatError(where, f"{text!r} holds a delimiter or a character X12 cannot carry")
    return text


def _segment(tag: str, *elements: str | int | tuple[str, ...]) -> str:
    """``TAG*e1*e2...~`` without trailing empty elements; a tuple is a composite
    element, its components joined by ``>``."""
    values = [
        COMPONENT.join(_element(c, tag) for c in e) if isinstance(e, tuple) else _element(e, tag)
        for e in elements
    ]
    while values and values[-1] == "":
        values.pop()
    return ELEMENT.join((tag, *values)) + SEGMENT


def _cas(adjustments: Iterable[tuple[str, str, int]], money: Callable[[int], str]) -> list[str]:
    """CAS segments: one per group code (in order of first use), at most six reasons each."""
    by_group: dict[str, list[tuple[str, int]]] = {}
    for group, code, amount in adjustments:
        by_group.setdefault(group, []).append((code, amount))
    out: list[str] = []
    for group, reasons in by_group.items():
        for k in range(0, len(reasons), CAS_PER_SEGMENT):
            triplets: list[str | int] = []
            for code, amount in reasons[k : k + CAS_PER_SEGMENT]:
                triplets += [code, money(amount), ""]
            out.append(_segment("CAS", group, *triplets))
    return out


def _claim_segments(claim: Mapping[str, Any], money: Callable[[int], str]) -> list[str]:
    sign = -1 if is_reversal(claim) else 1
    totals = claim["totals"]
    segs = [
        _segment(
            "CLP",
            claim["claim_id"],
            claim_status(claim),
            money(sign * totals["submitted"]),
            money(sign * claim["paid"]),
            money(sign * totals["patient_responsibility"]),
            "ZZ",  # claim filing indicator: mutually defined
            claim["submitted"]["tx"],
        )
    ]
    if pending(claim):
        segs += _cas([("OA", PENDING, sign * pending(claim))], money)
    segs.append(_segment("NM1", "QC", "1", "", "", "", "", "", "MI", claim["patient"]))
    if claim.get("replaces"):
        segs.append(_segment("REF", "F8", claim["replaces"]))
    for i, line in enumerate(claim["items"]):
        where = f"items[{i}]"
        segs.append(
            _segment(
                "SVC",
                ("HC", line["service_code"]),
                money(sign * line["submitted"]),
                money(sign * line["benefit"]),
                "",
                line["quantity"],
            )
        )
        segs.append(_segment("DTM", "472", _yyyymmdd(line["service_date"], where)))
        segs += _cas(
            ((a["group"], a["code"], sign * a["amount"]) for a in line["adjustments"]), money
        )
        segs += [_segment("LQ", "HE", code) for code in remark_codes(claim, line)]
    return segs


def remittance_835(
    claims: Sequence[Mapping[str, Any]],
    *,
    currency: str,
    time_ms: int,
    trace: str,
    control: int = 1,
) -> str:
    """The 835 (module docstring) of ``claims`` (claim answers of one provider at
    one insurer), as their settlement stands at the block of time ``time_ms``;
    ``trace`` is ``TRN02``, ``control`` the interchange and group control number
    (1 .. 999999999). Segments are joined by newlines for reading; X12 readers
    ignore them after ``~``. Raises ``FormatError``."""
    provider, insurer = check_remittance(claims)
    if not 1 <= _int(control, "control") <= 999_999_999:
        raise FormatError("control", "must be 1 .. 999999999")
    for who in (provider, insurer):
        if len(who) > 15:
            raise FormatError("ISA", f"member id {who!r} is longer than ISA's 15 characters")
    digits = minor_digits(currency)

    def money(minor: int) -> str:
        return decimal_text(minor, digits)

    stamp = instant(_int(time_ms, "time_ms"))  # 2025-03-01T10:20:30.000Z
    date, hhmm = stamp[:10].replace("-", ""), stamp[11:13] + stamp[14:16]
    paid = sum(c["paid"] for c in claims)  # a reversed or voided claim has nothing paid
    body = [
        _segment("ST", "835", "0001", VERSION),
        _segment("BPR", "I" if paid else "H", money(paid), "C", "NON", *[""] * 11, date),
        _segment("TRN", "1", trace, insurer),
        _segment("CUR", "PR", currency),
        _segment("DTM", "405", date),
        _segment("N1", "PR", insurer),
        _segment("N1", "PE", provider),
    ]
    for n, claim in enumerate(claims, 1):
        body.append(_segment("LX", n))
        body += _claim_segments(claim, money)
    body.append(_segment("SE", len(body) + 1, "0001"))
    isa_control = f"{control:09d}"
    isa = ELEMENT.join(
        (
            "ISA", "00", " " * 10, "00", " " * 10, "ZZ", _element(insurer, "ISA06").ljust(15),
            "ZZ", _element(provider, "ISA08").ljust(15), date[2:], hhmm, REPETITION, "00501",
            isa_control, "0", "P", COMPONENT,
        )
    )  # fmt: skip
    head = [
        isa + SEGMENT,
        _segment("GS", "HP", insurer, provider, date, hhmm, control, "X", VERSION),
    ]
    tail = [_segment("GE", "1", control), _segment("IEA", "1", isa_control)]
    return "\n".join(head + body + tail) + "\n"
