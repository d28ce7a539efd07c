"""Canonical JSON: the only byte form of anything Hygeia signs or hashes.

Rules (docs/transactions.md; spelled out for other languages in
``docs/transactions.md``):

- object keys sorted by Unicode code point (equivalently by their UTF-8 bytes),
  each key once;
- separators ``,`` and ``:``, no whitespace outside strings;
- UTF-8 output, non-ASCII characters written as themselves (``ensure_ascii``
  off); inside strings only ``"``, ``\\`` and the control characters below
  U+0020 are escaped (``\\b \\f \\n \\r \\t``, others as ``\\u00xx`` in lower-case hex);
- values: objects with string keys, arrays, strings, ``true``, ``false``,
  ``null`` and integers in the signed 64-bit range. No floats, NaN or Infinity
  anywhere (money is integer minor units); Python's ``True`` is a boolean,
  never the number 1.

``canonical_json`` encodes a Python value and rejects anything outside that
model with a ``CodecError`` naming where it is (``body.items[2].price: floats
are not allowed``). ``parse_json`` is the strict decoder for untrusted input:
bounded size and depth, valid UTF-8, no floats, no duplicate keys, no lone
surrogates, integers in range; every rejection names what and where. Anything
``parse_json`` returns re-encodes with ``canonical_json`` (and, without a
second check, with ``canonical_json_unchecked``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Final

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

DEFAULT_MAX_BYTES: Final = 1 << 20
DEFAULT_MAX_DEPTH: Final = 64
# the checks recurse; keep well inside Python's recursion limit
_DEPTH_CEILING: Final = 512

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "INT64_MAX",
    "INT64_MIN",
    "CodecError",
    "canonical_json",
    "canonical_json_unchecked",
    "parse_json",
]


class CodecError(ValueError):
    """A value or a byte string outside canonical JSON; the message says where."""

    def __init__(self, reason: str, path: str | None = None) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path is not None else reason)


Path = list[str | int]


def _render(path: Path) -> str:
    if not path:
        return "<root>"
    out: list[str] = []
    for seg in path:
        if isinstance(seg, int):
            out.append(f"[{seg}]")
        elif _IDENT.fullmatch(seg):
            out.append(f".{seg}" if out else seg)
        else:
            out.append(f"[{json.dumps(seg, ensure_ascii=True)}]")
    return "".join(out)


def _check_str(s: str, path: Path, what: str) -> None:
    if s.isascii():
        return
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = ord(s[e.start])
        raise CodecError(
            f"{what} holds a lone surrogate U+{bad:04X}, not valid Unicode", _render(path)
        ) from None


# ------------------------------------------------------------------ encoding
def _check_value(value: Any, path: Path, depth: int, max_depth: int) -> None:
    # bool first: in Python True is an int
    if value is None or value is True or value is False:
        return
    if isinstance(value, str):
        _check_str(value, path, "string")
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise CodecError(f"integer {value} is outside the signed 64-bit range", _render(path))
        return
    if isinstance(value, float):
        raise CodecError("floats are not allowed (use integers, e.g. minor units)", _render(path))
    if isinstance(value, dict | list | tuple):
        if depth >= max_depth:
            raise CodecError(f"nesting deeper than {max_depth} levels", _render(path))
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise CodecError(
                        f"object key {k!r} is a {type(k).__name__}, keys must be strings",
                        _render(path),
                    )
                path.append(k)
                _check_str(k, path, "object key")
                _check_value(v, path, depth + 1, max_depth)
                path.pop()
        else:
            for i, v in enumerate(value):
                path.append(i)
                _check_value(v, path, depth + 1, max_depth)
                path.pop()
        return
    if isinstance(value, bytes | bytearray | memoryview):
        raise CodecError("bytes are not allowed (encode them as hex strings)", _render(path))
    raise CodecError(f"values of type {type(value).__name__} are not allowed", _render(path))


_dumps: Callable[[Any], str] = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def _plainly_valid(value: Any, depth: int, max_depth: int) -> bool:
    """True when ``value`` is plainly inside the model: built of exactly ``dict``,
    ``list``, ``str``, ``int``, ``bool`` and ``None`` (no subclasses), in range and
    shallow enough. False on anything else, valid or not: ``_check_value`` then
    decides and names the problem. The fast path of ``canonical_json``: no path
    bookkeeping for the values the ledger writes by the million, and the scalars
    inside a container checked in its loop rather than by a call each."""
    t = type(value)
    if t is dict or t is list or t is tuple:
        return _plain_container(value, depth, max_depth)
    return _plain_scalar(value, t)


def _plain_scalar(value: Any, t: type) -> bool:
    if t is str:
        return value.isascii() or _encodes(value)
    if t is int:
        return bool(INT64_MIN <= value <= INT64_MAX)
    return value is None or t is bool


def _plain_container(value: Any, depth: int, max_depth: int) -> bool:
    if depth >= max_depth:
        return False
    if type(value) is dict:
        for k, v in value.items():
            if type(k) is not str or not (k.isascii() or _encodes(k)):
                return False
            tv = type(v)
            if tv is str:
                if not (v.isascii() or _encodes(v)):
                    return False
            elif tv is int:
                if not INT64_MIN <= v <= INT64_MAX:
                    return False
            elif v is None or tv is bool:
                continue
            elif tv is dict or tv is list or tv is tuple:
                if not _plain_container(v, depth + 1, max_depth):
                    return False
            else:
                return False
        return True
    for v in value:
        tv = type(v)
        if tv is dict or tv is list or tv is tuple:
            if not _plain_container(v, depth + 1, max_depth):
                return False
        elif not _plain_scalar(v, tv):
            return False
    return True


def _encodes(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def canonical_json(obj: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> bytes:
    """The canonical JSON bytes of ``obj``; ``CodecError`` (with a path) if it has none."""
    if not 0 <= max_depth <= _DEPTH_CEILING:
        raise ValueError(f"codec: max_depth must be in 0..{_DEPTH_CEILING}")
    if not _plainly_valid(obj, 0, max_depth):
        _check_value(obj, [], 0, max_depth)
    return _dumps(obj).encode("utf-8")


def canonical_json_unchecked(obj: Any) -> bytes:
    """``canonical_json`` without the checks: only for values ``parse_json`` returned
    (or built solely from such values and checked strings/integers)."""
    return _dumps(obj).encode("utf-8")


# ------------------------------------------------------------------ decoding
class _Bad:
    """Stands in for a rejected literal or object during parsing; the walk after
    the parse reports it with its path."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_float(literal: str) -> _Bad:
    return _Bad(f"floats are not allowed, got {literal} (use integers, e.g. minor units)")


def _parse_constant(literal: str) -> _Bad:
    return _Bad(f"{literal} is not allowed (JSON numbers must be integers)")


def _parse_int(literal: str) -> int | _Bad:
    # bound the length first: int() of a huge literal is slow, and refused past 4300 digits
    if len(literal) <= 20:
        value = int(literal)
        if INT64_MIN <= value <= INT64_MAX:
            return value
    shown = literal if len(literal) <= 40 else literal[:20] + "..." + literal[-8:]
    return _Bad(f"integer {shown} is outside the signed 64-bit range")


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any] | _Bad:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: dict[str, None] = {}
        for k, _ in pairs:
            if k in seen:
                return _Bad(f"duplicate key {json.dumps(k, ensure_ascii=False)}")
            seen[k] = None
    return obj


_decoder = json.JSONDecoder(
    parse_float=_parse_float,
    parse_int=_parse_int,
    parse_constant=_parse_constant,
    object_pairs_hook=_object_pairs,
)


class _NotPlain(Exception):
    """Raised by the fast decoder's hooks: the input needs the careful parse."""


def _refuse(_literal: str) -> Any:
    raise _NotPlain


def _plain_int(literal: str) -> int:
    if len(literal) <= 18:  # inside the signed 64-bit range whatever the digits
        return int(literal)
    raise _NotPlain


def _plain_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _NotPlain
    return obj


# The fast path of parse_json: the same grammar, but any literal or object the
# careful decoder would flag (a float, a constant, a long integer, a duplicate
# key) aborts it, and the careful parse runs and says what and where.
_plain_decoder = json.JSONDecoder(
    parse_float=_refuse,
    parse_int=_plain_int,
    parse_constant=_refuse,
    object_pairs_hook=_plain_pairs,
)


def _walk_parsed(value: Any, path: Path, depth: int, max_depth: int) -> None:
    t = type(value)
    if t is str:
        _check_str(value, path, "string")
    elif t is dict or t is list:
        if depth >= max_depth:
            raise CodecError(f"nesting deeper than {max_depth} levels", _render(path))
        if t is dict:
            for k, v in value.items():
                path.append(k)
                _check_str(k, path, "object key")
                _walk_parsed(v, path, depth + 1, max_depth)
                path.pop()
        else:
            for i, v in enumerate(value):
                path.append(i)
                _walk_parsed(v, path, depth + 1, max_depth)
                path.pop()
    elif t is _Bad:
        raise CodecError(value.reason, _render(path))


def parse_json(
    data: bytes | bytearray | memoryview,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Decode untrusted JSON bytes strictly; ``CodecError`` says what is wrong and where.

    Accepts any JSON layout (whitespace, key order, escapes); the result
    re-encodes to canonical JSON. Rejected: input over ``max_bytes``, invalid
    UTF-8 (or a byte-order mark), malformed JSON, nesting deeper than
    ``max_depth`` containers, floats/exponents/NaN/Infinity, integers outside
    the signed 64-bit range, duplicate object keys and lone surrogate escapes.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"parse_json wants bytes, got {type(data).__name__}")
    if not 0 <= max_depth <= _DEPTH_CEILING:
        raise ValueError(f"codec: max_depth must be in 0..{_DEPTH_CEILING}")
    size = len(data) if not isinstance(data, memoryview) else data.nbytes
    if size > max_bytes:
        raise CodecError(f"input is {size} bytes, more than the limit of {max_bytes}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as e:
        raise CodecError(f"invalid UTF-8 at byte {e.start}: {e.reason}") from None
    if text.startswith("\ufeff"):
        raise CodecError("input starts with a byte-order mark; send plain UTF-8")
    # Fast path: when no escape can hide a lone surrogate (only ``\\u`` escapes can:
    # the text is valid UTF-8) and there are fewer brackets than the depth limit,
    # what the plain decoder accepts needs no walk afterwards.
    if "\\u" not in text and text.count("{") + text.count("[") <= max_depth:
        try:
            return _plain_decoder.decode(text)
        except (_NotPlain, json.JSONDecodeError, RecursionError):
            pass  # the careful parse below says what is wrong
    try:
        value = _decoder.decode(text)
    except json.JSONDecodeError as e:
        raise CodecError(
            f"invalid JSON at line {e.lineno} column {e.colno} (character {e.pos}): {e.msg}"
        ) from None
    except RecursionError:
        raise CodecError(f"nesting deeper than {max_depth} levels") from None
    _walk_parsed(value, [], 0, max_depth)
    return value
