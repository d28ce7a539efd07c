"""GS1 identifiers (node/ledger/gs1.py): mod-10 check digits, GTIN-14 and SSCC-18 keys,
serial/lot text of character set 82, YYMMDD expiry dates, and the looser claim serial."""

from __future__ import annotations

from typing import Any

import pytest

from node.ledger import gs1
from node.ledger.result import Rejection


def reason(chk: Any, value: Any) -> str | None:
    """The malformed message of ``chk`` for ``value``, or None if it passes."""
    try:
        chk.check(value, "x")
    except Rejection as err:
        assert err.code == "malformed"
        return err.message
    return None


# ------------------------------------------------------------------ check digits
@pytest.mark.parametrize(
    ("body", "full"),
    [
        ("0950110153000", "09501101530003"),  # GS1's example GTIN-13 9501101530003, padded
        ("0061414100003", "00614141000036"),
        ("0950600013435", "09506000134352"),
        ("10614141123456789", "106141411234567897"),  # GS1's SSCC example
        ("0000000000000", "00000000000000"),  # a weighted sum of 0: check digit 0, not 10
    ],
)
def test_with_check_digit_known_values(body: str, full: str) -> None:
    """The check digit appended to known GS1 keys (a weighted sum of 0 gives 0)."""
    assert gs1.with_check_digit(body) == full
    assert gs1.check_digit_ok(full)


def test_every_wrong_check_digit_is_refused() -> None:
    """Of the ten possible last digits exactly one is right."""
    good = [d for d in "0123456789" if gs1.check_digit_ok("0950110153000" + d)]
    assert good == ["3"]
    assert not gs1.check_digit_ok("106141411234567890")


def test_check_digit_weights_run_from_the_right() -> None:
    """Weights are 3,1,3,... from the rightmost digit of the body, whatever its length:
    a leading zero (GTIN-13 padded to 14) does not change the check digit."""
    assert gs1.with_check_digit("950110153000")[-1] == gs1.with_check_digit("0950110153000")[-1]
    assert gs1.with_check_digit("1") == "17"  # 1*3 = 3 -> 7
    assert gs1.with_check_digit("10") == "109"  # 0*3 + 1*1 = 1 -> 9


# ------------------------------------------------------------------ GTIN and SSCC keys
def test_gtin_schema() -> None:
    """A GTIN is 14 digits with the right check digit; anything else is malformed."""
    assert reason(gs1.Gtin(), "09501101530003") is None
    assert reason(gs1.Gtin(), "09501101530004") == "body.x: GTIN check digit is wrong"
    assert reason(gs1.Gtin(), "9501101530003") == "body.x: length must be 14..14"  # 13 digits
    assert reason(gs1.Gtin(), "095011015300030") == "body.x: length must be 14..14"
    assert reason(gs1.Gtin(), "0950110153000A") == "body.x: must match ^[0-9]{14}$"
    assert reason(gs1.Gtin(), " 9501101530003") == "body.x: must match ^[0-9]{14}$"
    assert reason(gs1.Gtin(), 9501101530003) == "body.x: must be a string"
    assert gs1.Gtin().optional is False and gs1.Gtin(optional=True).optional is True


def test_sscc_schema() -> None:
    """An SSCC is 18 digits with the right check digit."""
    assert reason(gs1.Sscc(), "106141411234567897") is None
    assert reason(gs1.Sscc(), "106141411234567890") == "body.x: SSCC check digit is wrong"
    assert reason(gs1.Sscc(), "09501101530003") == "body.x: length must be 18..18"
    assert reason(gs1.Sscc(), "10614141123456789X") == "body.x: must match ^[0-9]{18}$"


def test_gtin_digits_of_unicode_are_not_digits() -> None:
    """Only ASCII 0-9 count: other Unicode decimal digits are refused by the pattern."""
    arabic_indic = "٠٩٥٠١١٠١٥٣٠٠٠٣"  # 09501101530003 in Arabic-Indic digits
    assert reason(gs1.Gtin(), arabic_indic) == "body.x: must match ^[0-9]{14}$"


# ------------------------------------------------------------------ serial and lot
@pytest.mark.parametrize(
    "value", ["S1", "PACK0001", "a-b_c.d/e:f", "!\"%&'()*+,-./:;<=>?", "9" * 20]
)
def test_set82_text_accepted(value: str) -> None:
    """Serials and lots: 1 to 20 characters of GS1 character set 82."""
    assert reason(gs1.Gs1Text(), value) is None


@pytest.mark.parametrize("value", ["", "9" * 21, "A B", "A#B", "A$B", "A@B", "A~B", "é"])
def test_set82_text_refused(value: str) -> None:
    """Empty, too long, or a character outside set 82 (space, #, $, @, ~, non-ASCII)."""
    assert reason(gs1.Gs1Text(), value) is not None


def test_claim_serial_is_printable_ascii() -> None:
    """A claim line's serial is looser than set 82: any printable ASCII, 1 to 20."""
    assert gs1.PRINTABLE_SERIAL.fullmatch("A#B$C@D~")
    assert not gs1.PRINTABLE_SERIAL.fullmatch("A B")
    assert not gs1.PRINTABLE_SERIAL.fullmatch("X" * 21)
    assert not gs1.PRINTABLE_SERIAL.fullmatch("")


# ------------------------------------------------------------------ expiry dates
@pytest.mark.parametrize("value", ["301231", "300200", "280229", "250131", "991231", "000101"])
def test_expiry_accepted(value: str) -> None:
    """YYMMDD dates, day 00 (end of month), 29 February of a leap year."""
    assert gs1.expiry_ok(value) and reason(gs1.Expiry(), value) is None


@pytest.mark.parametrize("value", ["270229", "301301", "300001", "300431", "2030-12", "30123"])
def test_expiry_refused(value: str) -> None:
    """Not a leap year, month 13 or 00, 31 April, another format, a wrong length."""
    assert not gs1.expiry_ok(value) and reason(gs1.Expiry(), value) is not None


def test_expiry_as_a_day_number() -> None:
    """An expiry's last valid day as 20YYMMDD; day 00 is the month's last day."""
    assert gs1.expiry_yyyymmdd("301231") == 20301231
    assert gs1.expiry_yyyymmdd("280200") == 20280229
    assert gs1.expiry_yyyymmdd("270200") == 20270228
    assert gs1.expiry_yyyymmdd("250400") == 20250430


# ------------------------------------------------------------------ element strings
GTIN = "09501101530003"
GS = "\x1d"
PACK = {"gtin": GTIN, "serial": "PACK0001", "lot": "LOT1", "expiry": "301200"}


@pytest.mark.parametrize(
    "text",
    [
        f"(01){GTIN}(21)PACK0001(10)LOT1(17)301200",  # human-readable, as printed
        f"(01){GTIN}(17)301200(10)LOT1(21)PACK0001",  # any order
        f"01{GTIN}1730120010LOT1{GS}21PACK0001",  # raw, GS after the variable lot
        f"]d201{GTIN}21PACK0001{GS}10LOT1{GS}17301200\r\n",  # symbology id, scanner's Enter
        f"{GS}01{GTIN}{GS}17301200{GS}10LOT1{GS}21PACK0001{GS}",  # FNC1 first, extra GS
    ],
)
def test_element_string_forms_give_the_pack(text: str) -> None:
    """The human-readable form and the GS-separated form (symbology identifier, leading
    FNC1, a GS after a fixed-length value, a trailing CR/LF) give the same fields."""
    assert gs1.parse_element_string(text) == PACK


def test_element_string_other_ais_and_parentheses_in_values() -> None:
    """SSCC (00), production date (11) and an NHRN (714) are read; in the human-readable
    form a value may hold parentheses that do not spell a supported (AI)."""
    fields = gs1.parse_element_string("(00)106141411234567897(11)250101(714)1234567(21)A(1)B")
    assert fields == {
        "sscc": "106141411234567897",
        "production_date": "250101",
        "nhrn_pt": "1234567",
        "serial": "A(1)B",
    }
    assert gs1.parse_element_string(f"01{GTIN}21A(10)B")["serial"] == "A(10)B"  # raw: no doubt


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        (" \r\n", "empty"),
        ("]d2", "holds no AI"),
        ("x" * 201, "longer than 200"),
        ("(99)12", "supported (AI) at position 0"),
        (f"(01){GTIN}21PACK", "supported (AI) at position 18"),
        ("9912", "unsupported AI at position 0"),
        ("01" + GTIN[:-1] + "4", "AI (01) gtin '09501101530004' is not valid"),
        ("(01)0950110153000", "AI (01) gtin must be 14 characters"),
        (f"01{GTIN}01{GTIN}", "AI (01) gtin appears twice"),
        ("21" + "9" * 21, "AI (21) serial is longer than 20 characters"),
        ("(21)" + "9" * 21, "AI (21) serial '" + "9" * 21 + "' is not valid"),
        ("(17)301301", "AI (17) expiry '301301' is not valid"),
        ("(21)A B", "AI (21) serial 'A B' is not valid"),
        (f"(10)L{GS}1", "AI (10) lot"),
        ("(00)106141411234567890", "AI (00) sscc"),
    ],
)
def test_element_string_refused(text: str, message: str) -> None:
    """Empty, too long, an unknown AI, a bad check digit, a short fixed value, an AI
    twice, a value too long or outside set 82, an invalid date: Gs1Error says which."""
    with pytest.raises(gs1.Gs1Error) as err:
        gs1.parse_element_string(text)
    assert message in str(err.value)
