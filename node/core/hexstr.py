"""Hex strings as the chain, the API and the files write them: lower case, fixed length.

One pattern for every hex field: hashes, public keys and seeds (32 bytes, 64
digits), signatures (64 bytes, 128 digits). Consensus-critical fields accept
lower case only, so one value has one spelling and one hash. Text a person types
(a key file, a peer id in ``config.toml``) is lower-cased by the caller before it
is checked, so upper case is accepted there, and visibly only there.
"""

from __future__ import annotations

import functools
import re
from typing import TypeGuard

__all__ = ["HEX64", "HEX128", "hex_pattern", "hex_regex", "is_hex"]


@functools.cache
def hex_regex(n_bytes: int) -> re.Pattern[str]:
    """The compiled pattern of exactly ``n_bytes`` bytes in lower-case hex (use ``fullmatch``)."""
    return re.compile(hex_pattern(n_bytes))


def hex_pattern(n_bytes: int) -> str:
    """The same pattern as text, anchored, for JSON Schema and OpenAPI documents."""
    return f"^[0-9a-f]{{{2 * n_bytes}}}$"


def is_hex(value: object, n_bytes: int) -> TypeGuard[str]:
    """True when ``value`` is a string of exactly ``n_bytes`` bytes in lower-case hex."""
    return isinstance(value, str) and hex_regex(n_bytes).fullmatch(value) is not None


HEX64 = hex_regex(32)  # hashes, Ed25519 public keys and seeds
HEX128 = hex_regex(64)  # Ed25519 signatures
