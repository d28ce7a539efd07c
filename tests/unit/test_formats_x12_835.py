"""Claim settlement as an X12 835 (node/ops/formats/x12_835.py), from real ledger answers:
paid, partly paid (CO 45, PR 1..3, OA 133 pending), denied (CO 110), voided (CLP02 22),
secondary (CLP02 2, OA 23), replacement, remark codes, what is refused; each 835 checked
by the structural checker below (envelopes, counts, balancing); and
``hygeia client claims remittance``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest

from node.ops.formats import FormatError
from node.ops.formats.x12_835 import decimal_text, minor_digits, remittance_835
from tests.unit.test_cli_client import API, BLOCK_TIME_MS, FakeNode, run
from tests.unit.test_formats_fhir_eob import (
    T,
    claims_of,
    cob,
    denied_future,
    drug_not_dispensed,
    duplicate,
    evidence_mismatch,
    evidence_missing,
    paid,
    partly_paid,
    policy_answer,
    replaced,
    voided,
)


# ----------------------------------------------------------------- the checker
def segments(text: str) -> list[list[str]]:
    """The segments of an 835 (``~`` terminated, newlines between ignored), split on ``*``."""
    assert text.endswith("~\n")
    return [s.strip("\n").split("*") for s in text.split("~")[:-1]]


def _dec(value: str) -> Decimal:
    return Decimal(value) if value else Decimal(0)


def _cas_total(seg: list[str]) -> Decimal:
    """The amounts of a CAS segment (CAS03, 06, 09, ...: reason, amount, quantity triplets)."""
    return sum((_dec(seg[i]) for i in range(3, len(seg), 3)), Decimal(0))


def check_835(text: str) -> dict[str, Any]:
    """Assert the 835's structure: ISA fixed width; ISA13 = IEA02, GS06 = GE02,
    ST02 = SE02; IEA01, GE01 and SE01 counts; BPR02 = sum(CLP04) - sum(PLB amounts);
    per claim CLP03 - CLP04 = all its CAS amounts and CLP04 = sum(SVC03) - its
    claim-level CAS; per line SVC02 - SVC03 = its CAS. Returns what it read."""
    segs = segments(text)
    tags = [s[0] for s in segs]
    assert tags[0] == "ISA" and len("*".join(segs[0])) + 1 == 106, "ISA is 106 characters"
    assert tags[1] == "GS" and tags[2] == "ST" and tags[-3:] == ["SE", "GE", "IEA"]
    isa, gs, st, se, ge, iea = segs[0], segs[1], segs[2], segs[-3], segs[-2], segs[-1]
    assert isa[13] == iea[2] and (iea[1], ge[1]) == ("1", "1")
    assert gs[6] == ge[2] and st[2] == se[2] and st[1] == "835"
    assert int(se[1]) == len(segs) - 4, "SE01 counts ST through SE"
    bpr = next(s for s in segs if s[0] == "BPR")
    claims: list[dict[str, Any]] = []
    plb = Decimal(0)
    line: dict[str, Any] | None = None
    for seg in segs[3:-3]:
        if seg[0] == "CLP":
            claims.append({"clp": seg, "claim_cas": Decimal(0), "lines": [], "cas": []})
            line = None
        elif seg[0] == "SVC":
            line = {"svc": seg, "cas": Decimal(0), "lq": [], "reasons": []}
            claims[-1]["lines"].append(line)
        elif seg[0] == "CAS":
            reasons = [(seg[1], seg[i - 1], _dec(seg[i])) for i in range(3, len(seg), 3)]
            claims[-1]["cas"] += reasons
            if line is None:
                claims[-1]["claim_cas"] += _cas_total(seg)
            else:
                line["cas"] += _cas_total(seg)
                line["reasons"] += reasons
        elif seg[0] == "LQ":
            assert line is not None and seg[1] == "HE"
            line["lq"].append(seg[2])
        elif seg[0] == "PLB":
            plb += sum((_dec(seg[i]) for i in range(4, len(seg), 2)), Decimal(0))
    assert _dec(bpr[2]) == sum((_dec(c["clp"][4]) for c in claims), Decimal(0)) - plb
    for c in claims:
        clp = c["clp"]
        all_cas = c["claim_cas"] + sum((ln["cas"] for ln in c["lines"]), Decimal(0))
        assert _dec(clp[3]) - _dec(clp[4]) == all_cas, f"claim {clp[1]} does not balance"
        assert (
            _dec(clp[4])
            == sum((_dec(ln["svc"][3]) for ln in c["lines"]), Decimal(0)) - c["claim_cas"]
        )
        for ln in c["lines"]:
            assert _dec(ln["svc"][2]) - _dec(ln["svc"][3]) == ln["cas"], "a line does not balance"
    return {"segments": segs, "bpr": bpr, "claims": claims}


def x12(claims: Sequence[Mapping[str, Any]], trace: str = "pay-1", **kw: Any) -> dict[str, Any]:
    return check_835(remittance_835(claims, currency="EUR", time_ms=T, trace=trace, **kw))


def test_the_checker_refuses_an_835_that_does_not_balance() -> None:
    text = remittance_835(paid(), currency="EUR", time_ms=T, trace="pay-1")
    check_835(text)
    with pytest.raises(AssertionError):
        check_835(text.replace("BPR*I*72*", "BPR*I*70*"))  # BPR02 off
    n = int(segments(text)[-3][1])
    with pytest.raises(AssertionError):
        check_835(text.replace(f"SE*{n}*", f"SE*{n + 1}*"))  # segment count off
    plb = text.replace(f"~\nSE*{n}*", f"~\nPLB*i1*20251231*WO>x*2~\nSE*{n + 1}*")
    with pytest.raises(AssertionError):
        check_835(plb)  # a provider-level adjustment the BPR does not account for
    check_835(plb.replace("BPR*I*72*", "BPR*I*70*"))  # BPR02 = CLP04 - PLB


# ----------------------------------------------------------------- amounts
@pytest.mark.parametrize(
    ("minor", "digits", "text"),
    [(1250, 2, "12.5"), (1200, 2, "12"), (7, 2, "0.07"), (-7, 2, "-0.07"), (0, 2, "0"),
     (1250, 0, "1250"), (1001, 3, "1.001"), (-300, 2, "-3")],
)  # fmt: skip
def test_amounts_are_decimal_strings_from_integers(minor: int, digits: int, text: str) -> None:
    assert decimal_text(minor, digits) == text


def test_minor_units_follow_iso_4217() -> None:
    assert (minor_digits("EUR"), minor_digits("JPY"), minor_digits("KWD")) == (2, 0, 3)
    with pytest.raises(FormatError):
        minor_digits("eur")


# ----------------------------------------------------------------- the rules
def test_a_paid_claim_is_processed_as_primary_and_balances() -> None:
    out = x12(paid())
    segs = out["segments"]
    assert out["bpr"][:5] == ["BPR", "I", "72", "C", "NON"] and out["bpr"][16] == "20250301"
    assert ["TRN", "1", "pay-1", "i1"] in segs and ["CUR", "PR", "EUR"] in segs
    assert ["N1", "PR", "i1"] in segs and ["N1", "PE", "h1"] in segs
    (c,) = out["claims"]
    assert c["clp"][1:6] == ["c-1", "1", "100", "72", "28"]
    assert c["claim_cas"] == 0  # fully paid: nothing pending
    (ln,) = c["lines"]
    assert ln["svc"][1:6] == ["HC>99213", "100", "72", "", "1"]
    assert ln["reasons"] == [("PR", "3", Decimal(10)), ("PR", "2", Decimal(18))]
    assert ["DTM", "472", "20250301"] in segs and ln["lq"] == []


def test_a_partly_paid_claim_shows_co45_pr1_pr2_pr3_and_the_pending_rest() -> None:
    out = x12(partly_paid())
    (c,) = out["claims"]
    assert c["clp"][1:6] == ["c-1", "1", "120", "30", "44"]
    assert c["claim_cas"] == Decimal(26)  # benefit 56 - paid 30
    assert c["cas"][0] == ("OA", "133", Decimal(26))
    assert c["lines"][0]["reasons"] == [
        ("CO", "45", Decimal(20)),
        ("PR", "1", Decimal(20)),
        ("PR", "3", Decimal(10)),
        ("PR", "2", Decimal(14)),
    ]
    assert out["bpr"][2] == "30"


def test_a_claim_for_a_future_service_is_denied_co110_and_nothing_is_paid() -> None:
    out = x12(denied_future(), trace="t-0")
    assert out["bpr"][1:3] == ["H", "0"]  # notification only
    (c,) = out["claims"]
    assert c["clp"][1:5] == ["c-1", "4", "100", "0"]
    assert c["lines"][0]["reasons"] == [("CO", "110", Decimal(100))] and c["claim_cas"] == 0


def test_a_voided_claim_is_reported_as_its_reversal() -> None:
    (c,) = x12(voided(), trace="t-0")["claims"]
    assert c["clp"][1:6] == ["c-1", "22", "-100", "0", "-28"]
    assert c["cas"][0] == ("OA", "133", Decimal(-72))  # the unpaid benefit, reversed
    assert c["lines"][0]["svc"][2:4] == ["-100", "-72"]
    active = x12(paid())["claims"][0]
    assert active["clp"][2] == "1"  # no-trigger: an active claim is not reversed


def test_a_secondary_claim_is_processed_as_secondary_with_the_prior_payer_oa23() -> None:
    primary, secondary = cob()
    out = x12([secondary], trace="pay-2")
    (c,) = out["claims"]
    assert c["clp"][1:5] == ["c-2", "2", "100", "28"]
    assert c["lines"][0]["reasons"] == [("OA", "23", Decimal(72))]
    assert x12([primary])["claims"][0]["clp"][2] == "1"  # no-trigger: the primary


def test_a_replacement_names_the_claim_it_replaces() -> None:
    original, replacement = replaced()
    segs = x12([replacement], trace="t")["segments"]
    assert ["REF", "F8", "c-1"] in segs
    assert not any(s[0] == "REF" for s in x12(paid())["segments"])
    (c,) = x12([original], trace="t")["claims"]
    assert c["clp"][2] == "22"


@pytest.mark.parametrize(
    ("scenario", "reason", "remarks"),
    [
        (duplicate, ("OA", "18"), ["M86"]),
        (evidence_mismatch, ("CO", "16"), ["N225"]),
        (drug_not_dispensed, ("CO", "16"), ["M119"]),
        (evidence_missing, ("CO", "252"), ["N706"]),
        (denied_future, ("CO", "110"), []),
    ],
)
def test_remark_codes_go_with_their_denials(scenario: Any, reason: Any, remarks: Any) -> None:
    (c,) = x12(scenario(), trace="t")["claims"]
    (ln,) = c["lines"]
    assert ln["reasons"][0][:2] == reason and ln["lq"] == remarks


def test_several_claims_of_a_pair_in_one_remittance() -> None:
    out = x12(claims_of("c-1", "c-2"), trace="batch-1")
    assert [c["clp"][1] for c in out["claims"]] == ["c-1", "c-2"]
    assert [s for s in out["segments"] if s[0] == "LX"] == [["LX", "1"], ["LX", "2"]]
    assert out["bpr"][2] == "80"


def test_control_numbers_and_dates() -> None:
    segs = x12(paid(), control=42)["segments"]
    assert segs[0][13] == "000000042" and segs[-1] == ["IEA", "1", "000000042"]
    assert segs[1][6] == "42" and segs[-2] == ["GE", "1", "42"]
    assert segs[0][9:11] == ["250301", "0000"] and segs[1][4:6] == ["20250301", "0000"]


# ----------------------------------------------------------------- refused
def _tampered(**over: Any) -> list[dict[str, Any]]:
    return [{**paid()[0], **over}]


@pytest.mark.parametrize(
    ("claims", "kw", "where"),
    [
        ([], {}, "claims"),
        (_tampered(paid=8_000), {}, "paid"),
        (_tampered(paid=True), {}, "paid"),
        (_tampered(status="pending"), {}, "status"),
        (_tampered(claim_id="c*1"), {}, "CLP"),
        (_tampered(provider="a-very-long-member-id"), {}, "ISA"),
        (_tampered(totals={}), {}, "totals"),
        (paid() + _tampered(insurer="i2", claim_id="c-9"), {}, "claims"),  # another pair's
        (paid() + paid(), {}, "claims"),  # twice
        (paid(), {"trace": "a~b"}, "TRN"),
        (paid(), {"control": 0}, "control"),
    ],
)
def test_what_cannot_be_an_835_is_refused(claims: Any, kw: Any, where: str) -> None:
    args = {"currency": "EUR", "time_ms": T, "trace": "pay-1", **kw}
    with pytest.raises(FormatError) as exc:
        remittance_835(claims, **args)
    assert where in exc.value.path


def test_a_line_that_does_not_balance_is_refused() -> None:
    (claim,) = paid()
    line = {**claim["items"][0], "benefit": 7_000}
    with pytest.raises(FormatError, match="adjustments"):
        remittance_835([{**claim, "items": [line]}], currency="EUR", time_ms=T, trace="pay-1")


# ----------------------------------------------------------------- the command
@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    fake = FakeNode()
    monkeypatch.setattr("node.cli.clients.common.request_json", fake)
    fake.routes["/v1/policies/gold"] = policy_answer()
    return fake


def test_remittance_prints_the_835_of_the_claims(node: FakeNode) -> None:
    (claim,) = paid()
    node.routes["/v1/claims/h1/c-1"] = claim
    out = run("claims", "remittance", "--api", API, "--provider", "h1", "--claim-id", "c-1")
    assert out.exit_code == 0, out.output
    want = remittance_835([claim], currency="EUR", time_ms=BLOCK_TIME_MS, trace="pay-1")
    assert out.output == want
    check_835(out.output)


def test_remittance_needs_a_trace_unless_there_is_one_payment(node: FakeNode) -> None:
    node.routes["/v1/claims/h1/c-1"] = denied_future()[0]
    args = ("claims", "remittance", "--api", API, "--provider", "h1", "--claim-id", "c-1")
    out = run(*args)
    assert out.exit_code != 0 and "--trace" in out.output
    out = run(*args, "--trace", "t-1")  # no policy priced it: the currency must be given
    assert out.exit_code != 0 and "--currency" in out.output
    out = run(*args, "--trace", "t-1", "--currency", "EUR")
    assert out.exit_code == 0, out.output
    assert check_835(out.output)["bpr"][2] == "0"


def test_remittance_refuses_a_currency_the_policies_contradict(node: FakeNode) -> None:
    node.routes["/v1/claims/h1/c-1"] = paid()[0]
    out = run(
        "claims", "remittance", "--api", API, "--provider", "h1", "--claim-id", "c-1",
        "--currency", "USD",
    )  # fmt: skip
    assert out.exit_code != 0 and "EUR" in out.output
