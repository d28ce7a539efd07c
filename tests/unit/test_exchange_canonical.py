"""node/exchange/canonical.py: RFC 8785 bytes of JSON text, strict parsing, commitments."""

from __future__ import annotations

import hashlib
import json
import struct

import pytest

from node.exchange.canonical import (
    MAX_DEPTH,
    MAX_RESOURCE_BYTES,
    CanonicalJSONError,
    FhirResourceError,
    ResourceTooLarge,
    commitment,
    jcs,
    parse_fhir,
    parse_json,
)


def test_rfc8785_section_3_2_2_example() -> None:
    """The worked example of RFC 8785 section 3.2.2 (numbers, escapes, literals)."""
    text = (
        '{\n  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n'
        '  "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",\n'
        '  "literals": [null, true, false]\n}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert jcs(text) == expected.encode("utf-8")


def test_rfc8785_section_3_2_3_key_order_is_utf16() -> None:
    """Keys sort by UTF-16 code units (RFC 8785 3.2.3): the emoji (a surrogate pair, D83D)
    comes before U+FB33, unlike code point order."""
    text = json.dumps(
        {
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\U0001f600": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis",
        }
    )
    out = json.loads(jcs(text))
    assert list(out) == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert sorted(out) != list(out)  # code point order would differ


# RFC 8785 appendix B: IEEE 754 bit patterns and their ECMAScript text
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),  # -0
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_rfc8785_appendix_b_numbers(bits: str, expected: str) -> None:
    """Every finite sample of appendix B, written by Python's repr and read back."""
    (value,) = struct.unpack(">d", bytes.fromhex(bits))
    assert jcs(f"[{value!r}]") == f"[{expected}]".encode()
    assert jcs(f"[{expected}]") == f"[{expected}]".encode()  # already canonical: unchanged


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("5", "5"),
        ("5.0", "5"),
        ("5e0", "5"),
        ("50E-1", "5"),
        ("-0", "0"),
        ("-0.0", "0"),
        ("1e21", "1e+21"),
        ("1E+21", "1e+21"),
        ("1e20", "100000000000000000000"),
        ("123456789012345678901", "123456789012345680000"),
        ("12345678901234567891", "12345678901234567000"),  # past 2**53: a double, like JS
        ("0.1", "0.1"),
        ("1e-7", "1e-7"),
        ("0.0000010", "0.000001"),
        ("4.50", "4.5"),
    ],
)
def test_numbers_are_doubles_in_ecmascript_text(number: str, expected: str) -> None:
    """Integers and decimals are both IEEE 754 doubles: 5 and 5.0 have one form."""
    assert jcs(f"[{number}]") == f"[{expected}]".encode()


def test_strings_escape_minimally_and_stay_utf8() -> None:
    """Only the two-character escapes and \\u00XX for other controls; everything else,
    including the solidus and non-ASCII, is written as itself in UTF-8."""
    assert jcs('"\\u0001\\b\\t\\n\\f\\r\\"\\\\\\/\\u00e9\\u2028"') == (
        '"\\u0001\\b\\t\\n\\f\\r\\"\\\\/é\u2028"'.encode()
    )
    assert jcs('"\\ud83d\\ude00"') == '"\U0001f600"'.encode()


def test_whitespace_and_key_order_do_not_matter() -> None:
    a = '{"b": [1, 2.0, {"y": null, "x": true}], "a": "z"}'
    b = '\n{ "a":"z",\t"b":[1.0,2,{"x":true,"y":null}] }\n'
    assert jcs(a) == jcs(b) == b'{"a":"z","b":[1,2,{"x":true,"y":null}]}'


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "{'a': 1}",
        '{"a": 1,}',
        "[1 2]",
        "NaN",
        "[Infinity]",
        "[-Infinity]",
        "[1e400]",
        "[-1e400]",
        '{"a": 1, "a": 2}',
        '{"a": {"b": 1, "b": 1}}',
        '"\\ud800"',
        '{"\\udc00": 1}',
        '"a\x01b"',  # a raw control character in a string
    ],
)
def test_refuses_what_has_no_canonical_form(text: str) -> None:
    with pytest.raises(CanonicalJSONError):
        jcs(text)


def test_duplicate_key_message_names_the_key() -> None:
    with pytest.raises(CanonicalJSONError, match="duplicate object key 'status'"):
        parse_json('{"status": "final", "status": "amended"}')


def test_nesting_is_bounded() -> None:
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert jcs(ok) == ok.encode()
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(CanonicalJSONError, match="nested deeper"):
        jcs(deep)
    hostile = "[" * 200_000 + "]" * 200_000  # past the interpreter's recursion limit
    with pytest.raises(CanonicalJSONError, match="nested deeper"):
        jcs(hostile)


def test_non_object_top_level_is_json() -> None:
    assert jcs(" 42 ") == b"42"
    assert jcs('"x"') == b'"x"'
    assert jcs("null") == b"null"


# ------------------------------------------------------------------ FHIR resources
OBSERVATION = (
    '{"resourceType": "Observation", "status": "final", '
    '"valueQuantity": {"value": 6.30, "unit": "mmol/L"}}'
)


def test_parse_fhir_accepts_a_resource() -> None:
    doc = parse_fhir(OBSERVATION)
    assert doc["resourceType"] == "Observation"
    assert doc["valueQuantity"]["value"] == 6.3


@pytest.mark.parametrize(
    "text",
    ["[]", '"Observation"', "3", "null", "{}", '{"resourceType": 1}', '{"resourceType": ""}'],
)
def test_parse_fhir_refuses_what_is_not_a_resource(text: str) -> None:
    with pytest.raises(FhirResourceError):
        parse_fhir(text)


def test_parse_fhir_refuses_invalid_json_as_json_error() -> None:
    with pytest.raises(CanonicalJSONError) as info:
        parse_fhir('{"resourceType": "Observation",')
    assert not isinstance(info.value, FhirResourceError)
    assert info.value.code == "bad-json"


def test_parse_fhir_bounds_the_text_in_utf8_bytes() -> None:
    head = '{"resourceType":"Binary","data":"'
    fill = MAX_RESOURCE_BYTES - len(head) - 2
    assert parse_fhir(head + "a" * fill + '"}')["resourceType"] == "Binary"
    with pytest.raises(ResourceTooLarge) as info:
        parse_fhir(head + "a" * (fill + 1) + '"}')
    assert info.value.code == "too-large"
    # fewer characters than the bound, more bytes: é is two bytes in UTF-8
    with pytest.raises(ResourceTooLarge):
        parse_fhir(head + "é" * (fill // 2 + 1) + '"}')


# ------------------------------------------------------------------ commitment
def test_commitment_is_sha256_of_salt_then_jcs() -> None:
    salt = bytes(range(32))
    expected = hashlib.sha256(salt + jcs(OBSERVATION)).digest()
    assert commitment(salt, OBSERVATION) == expected
    assert len(expected) == 32
    # the same resource written differently has the same commitment ...
    respaced = json.dumps(json.loads(OBSERVATION), indent=4)
    assert commitment(salt, respaced) == expected
    # ... another salt or another value another one
    assert commitment(bytes(32), OBSERVATION) != expected
    assert commitment(salt, OBSERVATION.replace("6.30", "6.31")) != expected


def test_commitment_known_answer() -> None:
    """Pinned bytes, so the rule cannot drift: salt 00..1f, a small resource."""
    salt = bytes(range(32))
    text = '{"status":"final","resourceType":"Observation","value":5.0}'
    canon = b'{"resourceType":"Observation","status":"final","value":5}'
    assert jcs(text) == canon
    assert commitment(salt, text).hex() == (
        "4e0c23de82c0b80484fc2137394abec95bf0751c740313739271ead2ebdad411"
    )


def test_commitment_needs_a_32_byte_salt() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        commitment(b"short", OBSERVATION)
