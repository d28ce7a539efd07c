"""Canonical JSON encoding and the strict parser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core import codec
from node.core.codec import (
    INT64_MAX,
    INT64_MIN,
    CodecError,
    canonical_json,
    canonical_json_unchecked,
    parse_json,
)

# ------------------------------------------------------------------ encoding


def test_keys_sorted_compact_nested() -> None:
    obj = {"b": [1, {"d": None, "c": True}], "a": False, "aa": "x"}
    assert canonical_json(obj) == b'{"a":false,"aa":"x","b":[1,{"c":true,"d":null}]}'


def test_key_order_of_input_is_irrelevant() -> None:
    a = {"x": 1, "y": {"q": 2, "p": 3}}
    b = {"y": {"p": 3, "q": 2}, "x": 1}
    assert canonical_json(a) == canonical_json(b)


def test_unicode_written_as_utf8_not_escaped() -> None:
    out = canonical_json({"name": "Zoë 医院 🏥"})
    assert out == '{"name":"Zoë 医院 🏥"}'.encode()
    assert b"\\u" not in out


def test_escapes_only_quote_backslash_and_controls() -> None:
    out = canonical_json(['a"b\\c\n\t\x01\x7f\u2028/'])
    assert out == b'["a\\"b\\\\c\\n\\t\\u0001\x7f\xe2\x80\xa8/"]'


def test_keys_sorted_by_code_point() -> None:
    # U+FF21 (fullwidth A) sorts before U+1F600 by code point; UTF-16 order would differ
    obj = {"\U0001f600": 1, "\uff21": 2, "Z": 3, "a": 4}
    out = canonical_json(obj).decode()
    assert out == '{"Z":3,"a":4,"Ａ":2,"😀":1}'
    keys = list(json.loads(out))
    assert keys == sorted(keys, key=lambda k: k.encode("utf-8"))


def test_integers_bounds() -> None:
    assert canonical_json([INT64_MIN, INT64_MAX, 0, -1]) == (
        b"[-9223372036854775808,9223372036854775807,0,-1]"
    )
    with pytest.raises(CodecError, match=r"^\[0\]: integer 9223372036854775808 is outside"):
        canonical_json([INT64_MAX + 1])
    with pytest.raises(CodecError, match="outside the signed 64-bit range"):
        canonical_json({"n": INT64_MIN - 1})


def test_rejects_float_with_path() -> None:
    obj = {"body": {"items": [{"price": 1}, {"price": 2}, {"price": 3.5}]}}
    with pytest.raises(CodecError) as e:
        canonical_json(obj)
    assert str(e.value).startswith("body.items[2].price: floats are not allowed")
    assert e.value.path == "body.items[2].price"


def test_rejects_nan_and_inf() -> None:
    for bad in (float("nan"), float("inf")):
        with pytest.raises(CodecError, match="floats are not allowed"):
            canonical_json({"x": bad})


def test_bool_is_not_a_number() -> None:
    assert canonical_json({"x": True, "y": 1}) == b'{"x":true,"y":1}'


def test_rejects_non_string_keys() -> None:
    with pytest.raises(CodecError, match=r"^a: object key 1 is a int, keys must be strings"):
        canonical_json({"a": {1: "x"}})
    with pytest.raises(CodecError, match="keys must be strings"):
        canonical_json({True: 1})


def test_rejects_other_types() -> None:
    with pytest.raises(CodecError, match=r"^k: bytes are not allowed"):
        canonical_json({"k": b"\x00"})
    with pytest.raises(CodecError, match="type set"):
        canonical_json({"k": {1}})


def test_rejects_lone_surrogate() -> None:
    with pytest.raises(CodecError, match=r"^s: string holds a lone surrogate U\+D800"):
        canonical_json({"s": "a\ud800"})


def test_odd_key_path_rendering() -> None:
    with pytest.raises(CodecError) as e:
        canonical_json({"a b": [{"x.y": 0.5}]})
    assert e.value.path == '["a b"][0]["x.y"]'


def test_root_path() -> None:
    with pytest.raises(CodecError, match=r"^<root>: floats"):
        canonical_json(1.0)


def test_depth_limit() -> None:
    deep: Any = 1
    for _ in range(10):
        deep = [deep]
    assert canonical_json(deep, max_depth=10) == b"[" * 10 + b"1" + b"]" * 10
    with pytest.raises(CodecError, match="nesting deeper than 9 levels"):
        canonical_json(deep, max_depth=9)


def test_tuple_encodes_as_array() -> None:
    assert canonical_json({"t": (1, "a")}) == b'{"t":[1,"a"]}'


# ------------------------------------------------------------------ parsing


def test_parse_accepts_any_layout_and_canonicalises() -> None:
    data = b' { "b" : [ 1 , 2 ] ,\n "a" : "\\u00e9" } '
    obj = parse_json(data)
    assert obj == {"b": [1, 2], "a": "é"}
    assert canonical_json(obj) == '{"a":"é","b":[1,2]}'.encode()


def test_parse_rejects_floats_with_path() -> None:
    with pytest.raises(CodecError) as e:
        parse_json(b'{"body": {"items": [{"price": 1}, {"price": 2}, {"price": 2.50}]}}')
    assert str(e.value).startswith("body.items[2].price: floats are not allowed, got 2.50")
    for literal in (b"1e3", b"1E-2", b"-0.0"):
        with pytest.raises(CodecError, match="floats are not allowed"):
            parse_json(b'{"x": ' + literal + b"}")


def test_parse_rejects_nan_infinity() -> None:
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        with pytest.raises(CodecError, match=r"^x\[0\]: .* is not allowed"):
            parse_json(b'{"x": [' + literal + b"]}")


def test_parse_rejects_duplicate_keys() -> None:
    with pytest.raises(CodecError) as e:
        parse_json(b'{"a": {"k": 1, "j": 2, "k": 3}}')
    assert str(e.value) == 'a: duplicate key "k"'


def test_parse_rejects_big_integers() -> None:
    assert parse_json(b"[-9223372036854775808, 9223372036854775807]") == [INT64_MIN, INT64_MAX]
    with pytest.raises(CodecError, match=r"^\[0\]: integer 9223372036854775808 is outside"):
        parse_json(b"[9223372036854775808]")
    with pytest.raises(CodecError, match=r"integer 1111.*\.\.\..* is outside"):
        parse_json(b"[" + b"1" * 5000 + b"]")


def test_parse_depth_limit() -> None:
    assert parse_json(b"[[[1]]]", max_depth=3) == [[[1]]]
    with pytest.raises(CodecError, match=r"^\[0\]\[0\]: nesting deeper than 2 levels"):
        parse_json(b"[[[1]]]", max_depth=2)
    with pytest.raises(CodecError, match="nesting deeper than 64 levels"):
        parse_json(b"[" * 100_000 + b"]" * 100_000, max_bytes=1 << 20)


def test_parse_size_limit() -> None:
    with pytest.raises(CodecError, match="input is 11 bytes, more than the limit of 10"):
        parse_json(b'"123456789"', max_bytes=10)


def test_parse_rejects_invalid_utf8() -> None:
    with pytest.raises(CodecError, match="invalid UTF-8 at byte 7"):
        parse_json(b'{"a": "\xff"}')
    with pytest.raises(CodecError, match="byte-order mark"):
        parse_json(b'\xef\xbb\xbf{"a": 1}')


def test_parse_rejects_lone_surrogate_escape() -> None:
    with pytest.raises(CodecError, match=r"^k: string holds a lone surrogate U\+DC00"):
        parse_json(b'{"k": "\\udc00"}')
    with pytest.raises(CodecError, match="object key holds a lone surrogate"):
        parse_json(b'{"\\ud800": 1}')
    # a proper pair is fine
    assert parse_json(b'"\\ud83d\\ude00"') == "😀"


def test_parse_malformed_json_says_where() -> None:
    with pytest.raises(CodecError, match=r"invalid JSON at line 2 column 6"):
        parse_json(b'{"a": 1,\n "b" }')
    with pytest.raises(CodecError, match="invalid JSON"):
        parse_json(b"")
    with pytest.raises(CodecError, match="invalid JSON"):
        parse_json(b"{} {}")


def test_parse_wants_bytes() -> None:
    with pytest.raises(TypeError):
        parse_json("{}")  # type: ignore[arg-type]


# ------------------------------------------------------------------ properties

_keys = st.text(max_size=8)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300)
@given(_json)
def test_roundtrip_canonical_parse(value: Any) -> None:
    data = canonical_json(value)
    parsed = parse_json(data)
    assert parsed == value
    assert canonical_json(parsed) == data
    assert canonical_json_unchecked(parsed) == data


@settings(max_examples=200)
@given(_json)
def test_any_layout_parses_to_the_same_canonical_bytes(value: Any) -> None:
    pretty = json.dumps(value, indent=3, ensure_ascii=True).encode()
    assert canonical_json(parse_json(pretty)) == canonical_json(value)


# ------------------------------------------------ fast paths agree with the careful ones
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(alphabet=st.characters(), max_size=8),
    st.sampled_from(["\ud800", "caf\u00e9", "a\x00b"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=4), inner, max_size=4),
    ),
    max_leaves=20,
)


@given(_values, st.integers(min_value=0, max_value=6))
def test_canonical_fast_check_never_accepts_what_the_careful_check_refuses(
    value: object, max_depth: int
) -> None:
    if codec._plainly_valid(value, 0, max_depth):
        codec._check_value(value, [], 0, max_depth)  # must not raise


@given(_values, st.integers(min_value=0, max_value=6))
def test_parse_fast_path_agrees_with_the_careful_parse(value: object, max_depth: int) -> None:
    text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return  # a lone surrogate: not UTF-8 bytes at all
    try:
        careful = codec._decoder.decode(text)
        codec._walk_parsed(careful, [], 0, max_depth)
        expected: object = careful
    except (CodecError, RecursionError) as exc:
        expected = type(exc)
    try:
        got: object = parse_json(data, max_depth=max_depth)
    except CodecError as exc:
        got = type(exc)
    assert got == expected
