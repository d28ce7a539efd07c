"""GS1 identifiers of a medicine pack, as printed in its DataMatrix, and their checks.

One place for the formats the supply and claims domains accept
(docs/supply-chain.md, "Product identifier", maps each to its GS1 AI):

* GTIN-14 (AI 01) and SSCC-18 (AI 00): fixed-length digits whose last digit
  is the GS1 mod-10 check digit of the others;
* serial (AI 21) and lot (AI 10): 1 to 20 characters of the GS1 AI encodable
  character set 82;
* expiry (AI 17): ``YYMMDD``, where ``DD`` = ``00`` means the last day of the
  month and the century is 20YY.

``parse_element_string`` reads these fields from a GS1 element string as a
scanner gives it: the human-readable form ``(01)...(21)...(10)...(17)...`` or
the raw form in which FNC1 is sent as GS (ASCII 29) after each variable-length
field, optionally led by a symbology identifier such as ``]d2``.

A claim line names its pack more loosely (docs/claims.md): 14 digits without
the check digit validated and a serial of printable ASCII. Such a line is looked
up, not trusted: a pack that was never commissioned is flagged, not refused.
"""

from __future__ import annotations

import calendar
import re
from typing import Any

from node.ledger.schema import Str, malformed

GTIN_RE = re.compile(r"^[0-9]{14}$")
SSCC_RE = re.compile(r"^[0-9]{18}$")
# GS1 AI encodable character set 82 (GS1 General Specifications, figure 7.11-1)
GS1_CSET82 = re.compile(r"^[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}$")
EXPIRY_RE = re.compile(r"^[0-9]{6}$")
# what a claim line accepts as a serial: printable ASCII, at most 20 (a superset of set 82)
PRINTABLE_SERIAL = re.compile(r"^[!-~]{1,20}$")

GS = "\x1d"  # FNC1 as a scanner transmits it: the separator after a variable-length field
MAX_ELEMENT_STRING = 200  # a pack's DataMatrix holds far less; longer input is refused
# symbology identifiers a scanner may prefix: GS1 DataMatrix, GS1-128, GS1 QR, DataBar, DotCode
SYMBOLOGY_IDS = ("]d2", "]C1", "]Q3", "]e0", "]J1")
# the AIs read from a medicine pack: AI -> (fixed length?, data length or maximum, field)
AIS: dict[str, tuple[bool, int, str]] = {
    "00": (True, 18, "sscc"),
    "01": (True, 14, "gtin"),
    "10": (False, 20, "lot"),
    "11": (True, 6, "production_date"),
    "17": (True, 6, "expiry"),
    "21": (False, 20, "serial"),
    # national healthcare reimbursement numbers (NHRN) some markets add to the DataMatrix
    "710": (False, 20, "nhrn_de"),
    "711": (False, 20, "nhrn_fr"),
    "712": (False, 20, "nhrn_es"),
    "713": (False, 20, "nhrn_br"),
    "714": (False, 20, "nhrn_pt"),
    "715": (False, 20, "nhrn_us"),
}
HRI_AI = re.compile(r"\(([0-9]{2,4})\)")


# ------------------------------------------------------------------ check digits
def with_check_digit(body: str) -> str:
    """``body`` (13 digits for a GTIN-14, 17 for an SSCC) plus its check digit
    (GS1 mod-10: weights 3,1,3,... from the rightmost digit of ``body``)."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return body + str((10 - total % 10) % 10)


def check_digit_ok(digits: str) -> bool:
    """Is the last digit the GS1 check digit of the others? (``digits`` are digits.)"""
    return with_check_digit(digits[:-1]) == digits


# ------------------------------------------------------------------ expiry dates
def expiry_ok(value: str) -> bool:
    """Is ``value`` a ``YYMMDD`` date (``DD`` 00 = the month's last day)?"""
    if not EXPIRY_RE.fullmatch(value):
        return False
    yy, mm, dd = int(value[:2]), int(value[2:4]), int(value[4:])
    if not 1 <= mm <= 12:
        return False
    return 0 <= dd <= calendar.monthrange(2000 + yy, mm)[1]


def expiry_yyyymmdd(value: str) -> int:
    """The last valid day as an integer 20YYMMDD (day 00 = the month's last day)."""
    yy, mm, dd = int(value[:2]), int(value[2:4]), int(value[4:])
    if dd == 0:
        dd = calendar.monthrange(2000 + yy, mm)[1]
    return (2000 + yy) * 10000 + mm * 100 + dd


# ------------------------------------------------------------------ element strings
class Gs1Error(ValueError):
    """An element string that cannot be read: the message says where and why."""


def _ai_at(text: str, i: int) -> str | None:
    """The supported AI that starts at ``text[i]`` (the AI table is prefix-free)."""
    for n in (2, 3):
        if text[i : i + n] in AIS:
            return text[i : i + n]
    return None


def _value_ok(ai: str, value: str) -> bool:
    field = AIS[ai][2]
    if field == "gtin":
        return bool(GTIN_RE.fullmatch(value)) and check_digit_ok(value)
    if field == "sscc":
        return bool(SSCC_RE.fullmatch(value)) and check_digit_ok(value)
    if AIS[ai][0]:  # the fixed-length dates (11, 17)
        return expiry_ok(value)
    return bool(GS1_CSET82.fullmatch(value))


def _put(out: dict[str, str], ai: str, value: str) -> None:
    fixed, length, field = AIS[ai]
    if fixed and len(value) != length:
        raise Gs1Error(f"AI ({ai}) {field} must be {length} characters")
    if ai in out:
        raise Gs1Error(f"AI ({ai}) {field} appears twice")
    if not _value_ok(ai, value):
        raise Gs1Error(f"AI ({ai}) {field} {value!r} is not valid")
    out[ai] = value


def _parse_hri(text: str) -> dict[str, str]:
    """``(01)...(21)...``: a variable-length value runs to the next ``(AI)`` of a
    supported AI (so a serial holding such a text must be scanned raw, not typed)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(text):
        m = HRI_AI.match(text, i)
        if m is None or m.group(1) not in AIS:
            raise Gs1Error(f"expected a supported (AI) at position {i}")
        ai, i = m.group(1), m.end()
        fixed, length, _ = AIS[ai]
        end = i + length if fixed else len(text)
        if not fixed:
            for nxt in HRI_AI.finditer(text, i):
                if nxt.group(1) in AIS:
                    end = nxt.start()
                    break
        _put(out, ai, text[i:end])
        i = end
    return out


def _parse_raw(text: str) -> dict[str, str]:
    """AI and value concatenated; GS ends a variable-length value (and may follow a
    fixed-length one, which some printers do)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(text):
        if text[i] == GS:
            i += 1
            continue
        ai = _ai_at(text, i)
        if ai is None:
            raise Gs1Error(f"unsupported AI at position {i}")
        i += len(ai)
        fixed, length, _ = AIS[ai]
        if fixed:
            end = i + length
        else:
            end = text.find(GS, i)
            end = len(text) if end < 0 else end
            if end - i > length:
                raise Gs1Error(f"AI ({ai}) {AIS[ai][2]} is longer than {length} characters")
        _put(out, ai, text[i:end])
        i = end
    return out


def parse_element_string(text: str) -> dict[str, str]:
    """The fields of a scanned GS1 element string, keyed by field name (``gtin``,
    ``serial``, ``lot``, ``expiry``, ``sscc``, ...), each checked like a body field.

    Accepts the human-readable form and the raw form (GS-separated, optionally led
    by a symbology identifier and an FNC1); surrounding whitespace (a scanner's
    Enter) is dropped. Raises ``Gs1Error`` for anything else.
    """
    text = text.strip(" \t\r\n")
    if not text:
        raise Gs1Error("the element string is empty")
    if len(text) > MAX_ELEMENT_STRING:
        raise Gs1Error(f"the element string is longer than {MAX_ELEMENT_STRING} characters")
    for sid in SYMBOLOGY_IDS:
        if text.startswith(sid):
            text = text[len(sid) :]
            break
    by_ai = _parse_hri(text) if text.startswith("(") else _parse_raw(text)
    if not by_ai:
        raise Gs1Error("the element string holds no AI")
    return {AIS[ai][2]: value for ai, value in by_ai.items()}


# ------------------------------------------------------------------ body schemas
class Gs1Key(Str):
    """A GS1 identification key of fixed length whose last digit is a check digit."""

    def __init__(self, length: int, pattern: re.Pattern[str], name: str, optional: bool) -> None:
        super().__init__(max_len=length, min_len=length, pattern=pattern, optional=optional)
        self.name = name

    def check(self, value: Any, path: str) -> None:
        super().check(value, path)
        if not check_digit_ok(value):
            raise malformed(path, f"{self.name} check digit is wrong")


def Gtin(optional: bool = False) -> Gs1Key:
    """A GTIN-14 (AI 01), check digit validated."""
    return Gs1Key(14, GTIN_RE, "GTIN", optional)


def Sscc(optional: bool = False) -> Gs1Key:
    """An SSCC-18 (AI 00), check digit validated."""
    return Gs1Key(18, SSCC_RE, "SSCC", optional)


def Gs1Text(optional: bool = False) -> Str:
    """A serial number (AI 21) or a lot number (AI 10): 1 to 20 characters of set 82."""
    return Str(max_len=20, pattern=GS1_CSET82, optional=optional)


class Expiry(Str):
    """An expiry date (AI 17), ``YYMMDD``."""

    def __init__(self, optional: bool = False) -> None:
        super().__init__(max_len=6, min_len=6, pattern=EXPIRY_RE, optional=optional)

    def check(self, value: Any, path: str) -> None:
        super().check(value, path)
        if not expiry_ok(value):
            raise malformed(path, "must be a valid date YYMMDD (DD 00 = end of month)")
