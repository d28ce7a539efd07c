"""The one parser of non-negative decimal integers written as text (URLs, query
strings, ports, config values).

``str.isdigit`` (and ``isdecimal``) accept far more than ``0-9``: ``"²"`` is a
digit to it, ``int("²")`` is a ``ValueError``, and ``int("١٢")`` (Arabic-Indic)
is 12. A check with one and a conversion with the other turned such input into
500s. ``parse_uint`` accepts ASCII ``0-9`` only, and a bounded number of them
(``int`` refuses strings past 4300 digits, and no Hygeia integer needs more
than 19), so whatever it is given it returns an ``int`` or None, never raises.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_DIGITS", "parse_uint"]

# enough for any value of a signed 64-bit integer (2**63 - 1 has 19 digits)
MAX_DIGITS: Final = 19
_DIGITS = re.compile(r"[0-9]+")  # re's [0-9] is ASCII only, unlike \d on str


def parse_uint(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """``text`` as a non-negative integer if it is 1..``max_digits`` ASCII digits
    (no sign, no blanks, no ``_``); None otherwise. Leading zeros are allowed."""
    if not 1 <= len(text) <= max_digits or not _DIGITS.fullmatch(text):
        return None
    return int(text)
