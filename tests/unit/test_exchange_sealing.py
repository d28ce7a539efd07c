"""node/exchange/sealing.py and payload.py: a fetch answer sealed to one member's key,
opened by that member only, and trusted only once it matches its commitment."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

import nacl.bindings
import nacl.public
import pytest
from nacl.signing import SigningKey

from node.core.keys import generate_key, public_key_bytes
from node.exchange.canonical import commitment
from node.exchange.payload import (
    PayloadError,
    decode_fetch_plaintext,
    encode_fetch_plaintext,
    fetch_answer,
    open_fetch_answer,
)
from node.exchange.sealing import (
    SEAL_OVERHEAD,
    SealingError,
    member_box_key,
    open_sealed,
    seal_to_member,
)

TEXT = '{"resourceType": "DiagnosticReport", "status": "final", "result": [1.50, 2]}'
SALT = bytes.fromhex("ab" * 32)
VERSION = "cd" * 32


def test_seal_and_open_roundtrip() -> None:
    member = generate_key()
    sealed = seal_to_member(public_key_bytes(member), b"the document")
    assert len(sealed) == len(b"the document") + SEAL_OVERHEAD
    assert open_sealed(member, sealed) == b"the document"


def test_each_seal_is_fresh() -> None:
    """An ephemeral key per box: sealing the same bytes twice gives different boxes."""
    member = generate_key()
    pk = public_key_bytes(member)
    assert seal_to_member(pk, b"x") != seal_to_member(pk, b"x")


def test_the_box_key_is_libsodiums_conversion() -> None:
    """Interop: the box opens with libsodium's own X25519 conversion of the Ed25519 key."""
    member = generate_key()
    pk = public_key_bytes(member)
    assert member_box_key(pk) == nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(pk)
    sk = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(
        bytes(member) + pk  # libsodium's 64-byte secret key: seed then public key
    )
    box = nacl.public.SealedBox(nacl.public.PrivateKey(sk))
    assert box.decrypt(seal_to_member(pk, b"interop")) == b"interop"


def test_another_member_cannot_open() -> None:
    sealed = seal_to_member(public_key_bytes(generate_key()), b"secret")
    with pytest.raises(SealingError, match="does not open"):
        open_sealed(generate_key(), sealed)


@pytest.mark.parametrize("cut", [0, 1, SEAL_OVERHEAD - 1])
def test_truncated_box_is_refused(cut: int) -> None:
    member = generate_key()
    sealed = seal_to_member(public_key_bytes(member), b"secret")
    with pytest.raises(SealingError):
        open_sealed(member, sealed[:cut])


def test_altered_box_is_refused() -> None:
    member = generate_key()
    sealed = bytearray(seal_to_member(public_key_bytes(member), b"secret"))
    sealed[-1] ^= 1
    with pytest.raises(SealingError):
        open_sealed(member, bytes(sealed))
    with pytest.raises(SealingError):
        open_sealed(member, bytes(sealed[:-1]))  # a byte short: MAC fails


@pytest.mark.parametrize(
    "key",
    [b"", b"\x01" * 31, b"\x01" * 33, b"\x00" * 32, b"\xff" * 32],
    ids=["empty", "short", "long", "identity-ish", "not-a-point"],
)
def test_invalid_member_key_is_refused(key: bytes) -> None:
    with pytest.raises(SealingError):
        seal_to_member(key, b"secret")


# ------------------------------------------------------------------ the fetch answer
def test_fetch_answer_roundtrip_keeps_the_exact_text() -> None:
    member = generate_key()
    answer = fetch_answer(VERSION, public_key_bytes(member), TEXT, SALT)
    assert set(answer) == {"version_id", "sealed"}
    assert answer["version_id"] == VERSION
    base64.b64decode(answer["sealed"], validate=True)  # standard base64
    doc = open_fetch_answer(
        member, answer, version_id=VERSION, expected_commitment=commitment(SALT, TEXT)
    )
    assert doc.text == TEXT  # byte for byte, whitespace and "1.50" included
    assert doc.salt == SALT
    assert doc.resource["resourceType"] == "DiagnosticReport"


def test_plaintext_is_the_contract_json() -> None:
    raw = encode_fetch_plaintext('{"resourceType":"X","n":"é"}', SALT)
    assert json.loads(raw) == {"resource": '{"resourceType":"X","n":"é"}', "salt": "ab" * 32}
    assert decode_fetch_plaintext(raw) == ('{"resourceType":"X","n":"é"}', SALT)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff",
        b"not json",
        b"[]",
        b'{"resource": "{}"}',
        b'{"resource": "{}", "salt": "' + b"ab" * 32 + b'", "extra": 1}',
        b'{"resource": 1, "salt": "' + b"ab" * 32 + b'"}',
        b'{"resource": "{}", "salt": "' + b"AB" * 32 + b'"}',
        b'{"resource": "{}", "salt": "abcd"}',
    ],
)
def test_malformed_plaintext_is_refused(raw: bytes) -> None:
    with pytest.raises(PayloadError) as info:
        decode_fetch_plaintext(raw)
    assert info.value.code == "bad-payload"


def test_a_document_that_does_not_match_the_commitment_is_not_trusted() -> None:
    member = generate_key()
    forged = TEXT.replace("final", "amended")
    answer = fetch_answer(VERSION, public_key_bytes(member), forged, SALT)
    with pytest.raises(PayloadError) as info:
        open_fetch_answer(
            member, answer, version_id=VERSION, expected_commitment=commitment(SALT, TEXT)
        )
    assert info.value.code == "commitment-mismatch"
    # the right text with another salt neither
    answer = fetch_answer(VERSION, public_key_bytes(member), TEXT, bytes(32))
    with pytest.raises(PayloadError, match="commitment"):
        open_fetch_answer(
            member, answer, version_id=VERSION, expected_commitment=commitment(SALT, TEXT)
        )


def test_fetch_answer_refusals() -> None:
    member = generate_key()
    good = fetch_answer(VERSION, public_key_bytes(member), TEXT, SALT)
    expected = commitment(SALT, TEXT)

    def code(answer: Mapping[str, object], key: SigningKey = member) -> str:
        with pytest.raises(PayloadError) as info:
            open_fetch_answer(key, answer, version_id=VERSION, expected_commitment=expected)
        return info.value.code

    assert code({**good, "version_id": "ee" * 32}) == "wrong-version"
    assert code({"version_id": VERSION}) == "bad-answer"
    assert code({**good, "sealed": 5}) == "bad-answer"
    assert code({**good, "sealed": "not base64!"}) == "bad-answer"
    assert code({**good, "sealed": good["sealed"].replace("+", "-").replace("/", "_") + "@"}) == (
        "bad-answer"
    )
    assert code(good, generate_key()) == "not-sealed-to-us"
    not_fhir = fetch_answer(VERSION, public_key_bytes(member), "[1, 2]", SALT)
    assert code(not_fhir) == "bad-resource"
