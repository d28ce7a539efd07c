"""RFC 8785 (JCS) canonical bytes of a JSON text, and a document's commitment.

A published document is a FHIR resource sent as JSON *text*; its commitment on
chain is ``SHA-256(salt || JCS(resource))`` where JCS is the JSON Canonicalization
Scheme of RFC 8785 applied to the parsed text. The serialization itself (ECMAScript
number formatting, UTF-16 key order, minimal string escaping) is Trail of Bits'
``rfc8785``; this module owns the parsing, which RFC 8785 leaves to the caller:

- strict JSON only: ``NaN``, ``Infinity`` and ``-Infinity`` are refused (Python's
  ``json`` accepts them), and so is an object with a duplicate key (RFC 8785
  section 3.1: the I-JSON rules; which of two values would win is up to a parser);
- every number is read as an IEEE 754 double, as ECMAScript's ``JSON.parse``
  reads it (RFC 8785 section 3.2.2.3): ``5``, ``5.0`` and ``5e0`` all give ``5``,
  and a number a double cannot hold finitely (``1e400``) is refused. An integer
  past 2**53 is rounded like any double (``12345678901234567891`` gives
  ``12345678901234567000``): the commitment binds the canonical form, not the
  digits a double cannot hold;
- a string holding a lone surrogate (``"\\ud800"``) has no UTF-8 form and is refused;
- nesting deeper than ``MAX_DEPTH`` is refused, so hostile input cannot exhaust
  the interpreter's stack.

``parse_fhir`` adds what a resource must be: a JSON object with a non-empty string
``resourceType`` (the full FHIR validation is the custodian's business), at most
``MAX_RESOURCE_BYTES`` of UTF-8 text.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Final

import rfc8785

__all__ = [
    "MAX_DEPTH",
    "MAX_RESOURCE_BYTES",
    "SALT_BYTES",
    "CanonicalJSONError",
    "FhirResourceError",
    "ResourceTooLarge",
    "canonicalize",
    "commitment",
    "jcs",
    "parse_fhir",
    "parse_json",
    "utf8_length",
]

MAX_RESOURCE_BYTES: Final = 16 * 1024 * 1024  # a resource's JSON text, as UTF-8
MAX_DEPTH: Final = 256  # nested arrays and objects; FHIR resources need a few dozen
SALT_BYTES: Final = 32


class CanonicalJSONError(ValueError):
    """Text that is not strict JSON, or JSON that has no RFC 8785 form."""

    code = "bad-json"


class FhirResourceError(CanonicalJSONError):
    """Valid JSON that is not a FHIR resource (an object with a ``resourceType``)."""

    code = "not-a-resource"


class ResourceTooLarge(FhirResourceError):
    """A resource's text longer than ``MAX_RESOURCE_BYTES`` in UTF-8."""

    code = "too-large"


# ------------------------------------------------------------------ parsing
def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise CanonicalJSONError(f"duplicate object key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise CanonicalJSONError(f"{name} is not JSON")


def _double(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise CanonicalJSONError(f"number {text[:40]} is out of the range of a double")
    return value


def _check_depth(value: Any) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH`` (iteratively: no recursion here)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            raise CanonicalJSONError(f"JSON nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def parse_json(text: str) -> Any:
    """``text`` parsed strictly (see the module's header); ``CanonicalJSONError`` if not."""
    if not isinstance(text, str):
        raise CanonicalJSONError(f"JSON text must be a str, not {type(text).__name__}")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=_double,
            parse_int=_double,
        )
    except CanonicalJSONError:
        raise
    except json.JSONDecodeError as exc:
        raise CanonicalJSONError(f"not JSON: {exc}") from None
    except RecursionError:
        raise CanonicalJSONError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    _check_depth(value)
    return value


# ------------------------------------------------------------------ canonical bytes
def canonicalize(value: Any) -> bytes:
    """The RFC 8785 bytes of a value ``parse_json`` returned."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeError) as exc:
        # UnicodeError: a lone surrogate in a key (the library encodes keys to UTF-16)
        raise CanonicalJSONError(f"no canonical form: {exc}") from None
    except RecursionError:
        raise CanonicalJSONError(f"JSON nested deeper than {MAX_DEPTH} levels") from None


def jcs(text: str) -> bytes:
    """The RFC 8785 canonical bytes of the JSON ``text``; ``CanonicalJSONError`` if none."""
    return canonicalize(parse_json(text))


def parse_fhir(text: str) -> dict[str, Any]:
    """``text`` parsed as a FHIR resource: a JSON object whose ``resourceType`` is a
    non-empty string, at most ``MAX_RESOURCE_BYTES`` of UTF-8. Raises
    ``ResourceTooLarge``, ``CanonicalJSONError`` (not JSON) or ``FhirResourceError``."""
    if not isinstance(text, str):
        raise CanonicalJSONError(f"JSON text must be a str, not {type(text).__name__}")
    # a str of n characters is at least n UTF-8 bytes: check before encoding a huge one
    if len(text) > MAX_RESOURCE_BYTES or utf8_length(text) > MAX_RESOURCE_BYTES:
        raise ResourceTooLarge(f"a resource's text is at most {MAX_RESOURCE_BYTES} bytes")
    value = parse_json(text)
    if not isinstance(value, dict):
        raise FhirResourceError(f"a FHIR resource is a JSON object, not {_kind(value)}")
    rtype = value.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise FhirResourceError("a FHIR resource has a string resourceType")
    return value


def utf8_length(text: str) -> int:
    """The length of ``text`` in UTF-8; ``CanonicalJSONError`` for a lone surrogate."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise CanonicalJSONError("text holds a lone surrogate: it has no UTF-8 form") from None


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


# ------------------------------------------------------------------ commitment
def commitment(salt: bytes, text: str) -> bytes:
    """``SHA-256(salt || JCS(text))``, 32 bytes; ``ValueError`` for a salt that is not
    32 bytes, ``CanonicalJSONError`` for text with no canonical form."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a salt is {SALT_BYTES} bytes, got {len(salt)}")
    return hashlib.sha256(bytes(salt) + jcs(text)).digest()
