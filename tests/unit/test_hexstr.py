"""node/core/hexstr.py: the one hex pattern (lower case, exact length) every layer uses."""

from __future__ import annotations

import re

from node.core.hexstr import HEX64, HEX128, hex_pattern, hex_regex, is_hex


def test_exact_length_lower_case_only() -> None:
    """32 and 64 bytes in lower-case hex pass; upper case, other lengths and non-hex fail."""
    assert is_hex("ab" * 32, 32) and is_hex("0f" * 64, 64)
    for bad in ["AB" * 32, "ab" * 31, "ab" * 33, "zz" * 32, "", None, b"ab" * 32, 7]:
        assert not is_hex(bad, 32), bad
    assert HEX64.fullmatch("a" * 64) and not HEX64.fullmatch("a" * 63)
    assert HEX128.fullmatch("1" * 128) and not HEX128.fullmatch("1" * 64)


def test_text_pattern_matches_the_compiled_one() -> None:
    """The anchored text form (for OpenAPI) accepts exactly what the compiled one does."""
    assert hex_pattern(32) == "^[0-9a-f]{64}$"
    text = re.compile(hex_pattern(4))
    for sample in ["deadbeef", "DEADBEEF", "deadbee", "deadbeef0"]:
        assert bool(text.match(sample)) == bool(hex_regex(4).fullmatch(sample)), sample
    assert hex_regex(32) is HEX64


def test_pattern_text_is_pinned() -> None:
    """A rejected body's committed result quotes the pattern ("must match ..."), so its
    text is consensus-visible: changing it would change state roots."""
    assert HEX64.pattern == "^[0-9a-f]{64}$"
    assert HEX128.pattern == "^[0-9a-f]{128}$"
