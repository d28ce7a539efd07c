"""GS1 identifiers of a medicine pack, as printed in its DataMatrix, and their checks.

One place for the formats the supply and claims domains accept
(docs/supply-chain.md, "Product identifier", maps each to its GS1 AI):

* GTIN-14 (AI 01) and SSCC-18 (AI 00): fixed-length digits whose last digit
  is the GS1 mod-10 check digit of the others;
* serial (AI 21) and lot (AI 10): 1 to 20 characters of the GS1 AI encodable
  character set 82;
* expiry (AI 17): ``YYMMDD``, where ``DD`` = ``00`` means the last day of the
  month and the century is 20YY.

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
