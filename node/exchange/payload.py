"""The fetch answer: what a custodian's node seals, and what a requester checks.

Sealed plaintext (JSON text, UTF-8)::

    {"resource": "<the resource's JSON text, exactly as published>", "salt": "<64 hex>"}

HTTP answer body (JSON)::

    {"version_id": "<64 hex>", "sealed": "<standard base64 of the sealed box>"}

``open_fetch_answer`` is the requester's side in one call: it checks the answer's
form and version, opens the box with the member's key, reads the plaintext
strictly, and recomputes ``SHA-256(salt || JCS(resource))`` against the commitment
anchored on chain before returning a byte of it. Every refusal is a
``PayloadError`` whose ``code`` says which step failed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import nacl.signing

from node.core.hexstr import HEX64, is_hex
from node.exchange.canonical import (
    MAX_RESOURCE_BYTES,
    SALT_BYTES,
    CanonicalJSONError,
    commitment,
    parse_fhir,
)
from node.exchange.sealing import SEAL_OVERHEAD, SealingError, open_sealed, seal_to_member

__all__ = [
    "MAX_PLAINTEXT_BYTES",
    "FetchedDocument",
    "PayloadError",
    "decode_fetch_plaintext",
    "encode_fetch_plaintext",
    "fetch_answer",
    "open_fetch_answer",
]

# the resource as a JSON string: each byte of text at most 6 characters (\u00XX),
# plus the salt and the punctuation
MAX_PLAINTEXT_BYTES: Final = 6 * MAX_RESOURCE_BYTES + 256
_MAX_SEALED_B64: Final = 4 * ((MAX_PLAINTEXT_BYTES + SEAL_OVERHEAD + 2) // 3)


class PayloadError(ValueError):
    """A fetch answer that is malformed, does not open, or does not match its commitment."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class FetchedDocument:
    version_id: str
    text: str  # the resource's JSON text, exactly as published
    salt: bytes
    resource: dict[str, Any]  # the text parsed


def encode_fetch_plaintext(text: str, salt: bytes) -> bytes:
    """The plaintext a custodian seals: ``{"resource": text, "salt": hex}`` as UTF-8."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a salt is {SALT_BYTES} bytes, got {len(salt)}")
    doc = {"resource": text, "salt": bytes(salt).hex()}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_fetch_plaintext(data: bytes) -> tuple[str, bytes]:
    """``(text, salt)`` of an opened plaintext; ``PayloadError("bad-payload")`` unless it
    is exactly an object with a string ``resource`` and a 64-hex ``salt``."""
    if len(data) > MAX_PLAINTEXT_BYTES:
        raise PayloadError("bad-payload", f"the plaintext is over {MAX_PLAINTEXT_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise PayloadError("bad-payload", "the plaintext is not JSON text in UTF-8") from None
    if not isinstance(doc, dict) or set(doc) != {"resource", "salt"}:
        raise PayloadError("bad-payload", 'the plaintext is not {"resource": ..., "salt": ...}')
    text, salt = doc["resource"], doc["salt"]
    if not isinstance(text, str):
        raise PayloadError("bad-payload", "the plaintext's resource is not a string")
    if not is_hex(salt, SALT_BYTES):
        raise PayloadError("bad-payload", "the plaintext's salt is not 64 lower-case hex digits")
    return text, bytes.fromhex(salt)


def fetch_answer(
    version_id: str, member_public_key: bytes, text: str, salt: bytes
) -> dict[str, str]:
    """The custodian's HTTP answer: the document sealed to the requesting member."""
    sealed = seal_to_member(member_public_key, encode_fetch_plaintext(text, salt))
    return {"version_id": version_id, "sealed": base64.b64encode(sealed).decode("ascii")}


def open_fetch_answer(
    member_signing_key: nacl.signing.SigningKey,
    answer: Mapping[str, Any],
    *,
    version_id: str,
    expected_commitment: bytes,
) -> FetchedDocument:
    """The document of a custodian's answer, once it matches ``expected_commitment``
    (the 32-byte commitment of ``version_id`` read from the chain)."""
    if not HEX64.fullmatch(version_id):
        raise ValueError("version_id must be 64 lower-case hex digits")
    if len(expected_commitment) != 32:
        raise ValueError(f"a commitment is 32 bytes, got {len(expected_commitment)}")
    if answer.get("version_id") != version_id:
        raise PayloadError("wrong-version", "the answer is for another version than asked for")
    sealed_b64 = answer.get("sealed")
    if not isinstance(sealed_b64, str) or len(sealed_b64) > _MAX_SEALED_B64:
        raise PayloadError("bad-answer", "the answer's sealed is not a string of bounded size")
    try:
        sealed = base64.b64decode(sealed_b64.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise PayloadError("bad-answer", "the answer's sealed is not standard base64") from None
    try:
        plaintext = open_sealed(member_signing_key, sealed)
    except SealingError as exc:
        raise PayloadError("not-sealed-to-us", str(exc)) from None
    text, salt = decode_fetch_plaintext(plaintext)
    try:
        resource = parse_fhir(text)
        actual = commitment(salt, text)
    except CanonicalJSONError as exc:
        raise PayloadError("bad-resource", f"the resource is not usable: {exc}") from None
    if not hmac.compare_digest(actual, bytes(expected_commitment)):
        raise PayloadError(
            "commitment-mismatch",
            "the document does not match the commitment anchored on chain: not trusted",
        )
    return FetchedDocument(version_id=version_id, text=text, salt=salt, resource=resource)
