"""node/exchange/signed_request.py: every refusal of the verifier, and the replay cache."""

from __future__ import annotations

import hashlib

import pytest

from node.core.keys import generate_key, public_key_bytes, sign
from node.exchange.signed_request import (
    HEADER_SIGNATURE,
    HEADER_SIGNER,
    HEADER_TIME,
    WINDOW_MS,
    RequestVerifier,
    SignedRequestError,
    sign_request,
    signing_string,
)

NOW = 1_750_000_000_000
PATH = "/v1/exchange/documents/" + "ab" * 32 + "?purpose=TREAT"
BODY = b'{"purpose":"TREAT"}'
KEY = generate_key()


def refused(
    verifier: RequestVerifier,
    headers: dict[str, str],
    *,
    method: str = "POST",
    path: str = PATH,
    body: bytes | None = BODY,
    now: int = NOW,
) -> SignedRequestError:
    with pytest.raises(SignedRequestError) as info:
        verifier.check(method, path, headers, body, now)
    return info.value


def test_signing_string_layout() -> None:
    digest = hashlib.sha256(BODY).hexdigest()
    assert signing_string("post", PATH, 12, BODY) == f"POST\n{PATH}\n12\n{digest}".encode()
    assert signing_string("GET", "/x", 0, None) == b"GET\n/x\n0\n"
    assert signing_string("GET", "/x", 0, b"") == b"GET\n/x\n0\n"


def test_signed_request_is_accepted_and_names_the_signer() -> None:
    headers = sign_request(KEY, "POST", PATH, BODY, NOW)
    assert set(headers) == {HEADER_SIGNER, HEADER_TIME, HEADER_SIGNATURE}
    assert headers[HEADER_TIME] == str(NOW)
    assert RequestVerifier().check("POST", PATH, headers, BODY, NOW) == public_key_bytes(KEY)


def test_headers_in_any_case_and_a_get_without_body() -> None:
    headers = {k.lower(): v for k, v in sign_request(KEY, "GET", "/v1/x", None, NOW).items()}
    assert RequestVerifier().check("GET", "/v1/x", headers, b"", NOW) == public_key_bytes(KEY)


def test_signature_by_hand_matches_the_contract() -> None:
    """A client that follows the contract's text, not this module, is understood."""
    t = NOW - 5
    text = f"PUT\n{PATH}\n{t}\n{hashlib.sha256(BODY).hexdigest()}".encode()
    headers = {
        "X-Hygeia-Signer": public_key_bytes(KEY).hex(),
        "X-Hygeia-Time": str(t),
        "X-Hygeia-Signature": sign(KEY, text).hex(),
    }
    assert RequestVerifier().check("PUT", PATH, headers, BODY, NOW) == public_key_bytes(KEY)


@pytest.mark.parametrize("offset", [WINDOW_MS, -WINDOW_MS, 0])
def test_the_window_edges_are_accepted(offset: int) -> None:
    headers = sign_request(KEY, "POST", PATH, BODY, NOW + offset)
    assert RequestVerifier().check("POST", PATH, headers, BODY, NOW) == public_key_bytes(KEY)


@pytest.mark.parametrize("offset", [WINDOW_MS + 1, -WINDOW_MS - 1, 3_600_000, -NOW])
def test_stale_either_way(offset: int) -> None:
    headers = sign_request(KEY, "POST", PATH, BODY, NOW + offset)
    err = refused(RequestVerifier(), headers)
    assert (err.status, err.code) == (401, "stale")


def test_replayed_within_the_window() -> None:
    verifier = RequestVerifier()
    headers = sign_request(KEY, "POST", PATH, BODY, NOW)
    verifier.check("POST", PATH, headers, BODY, NOW)
    err = refused(verifier, headers, now=NOW + 1000)
    assert (err.status, err.code) == (401, "replayed")
    # the same signature in upper-case hex is the same signature
    upper = {**headers, HEADER_SIGNATURE: headers[HEADER_SIGNATURE].upper()}
    assert refused(verifier, upper, now=NOW + 2000).code == "replayed"
    # at the window's last millisecond it is still refused as a replay, after it as stale
    assert refused(verifier, headers, now=NOW + WINDOW_MS).code == "replayed"
    assert refused(verifier, headers, now=NOW + WINDOW_MS + 1).code == "stale"


def test_a_new_signature_of_the_same_request_is_not_a_replay() -> None:
    verifier = RequestVerifier()
    verifier.check("POST", PATH, sign_request(KEY, "POST", PATH, BODY, NOW), BODY, NOW)
    # one millisecond later: another signing string, another signature
    again = sign_request(KEY, "POST", PATH, BODY, NOW + 1)
    assert verifier.check("POST", PATH, again, BODY, NOW + 1) == public_key_bytes(KEY)


@pytest.mark.parametrize("missing", [HEADER_SIGNER, HEADER_TIME, HEADER_SIGNATURE])
def test_missing_header(missing: str) -> None:
    headers = sign_request(KEY, "POST", PATH, BODY, NOW)
    del headers[missing]
    err = refused(RequestVerifier(), headers)
    assert (err.status, err.code) == (401, "bad-signature")
    assert missing in err.message


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (HEADER_SIGNER, "zz" * 32),
        (HEADER_SIGNER, "ab" * 31),
        (HEADER_SIGNER, ""),
        (HEADER_SIGNATURE, "ab" * 63),
        (HEADER_SIGNATURE, "xy" * 64),
        (HEADER_SIGNATURE, "ab" * 64 + " "),
        (HEADER_TIME, ""),
        (HEADER_TIME, "-1"),
        (HEADER_TIME, "+1750000000000"),
        (HEADER_TIME, "01750000000000"),  # a leading zero: two spellings of one time
        (HEADER_TIME, "1750000000000.0"),
        (HEADER_TIME, "1" * 17),
        (HEADER_TIME, "١٧٥٠٠٠٠٠٠٠٠٠٠"),  # Arabic-Indic digits
    ],
)
def test_malformed_header(header: str, value: str) -> None:
    headers = sign_request(KEY, "POST", PATH, BODY, NOW)
    headers[header] = value
    err = refused(RequestVerifier(), headers)
    assert (err.status, err.code) == (401, "bad-signature")


def test_signature_over_another_request_is_bad() -> None:
    headers = sign_request(KEY, "POST", PATH, BODY, NOW)
    verifier = RequestVerifier()
    for err in (
        refused(verifier, headers, body=b'{"purpose":"HRESCH"}'),
        refused(verifier, headers, body=None),
        refused(verifier, headers, path=PATH.replace("TREAT", "HRESCH")),
        refused(verifier, headers, path=PATH.split("?")[0]),
        refused(verifier, headers, method="PUT"),
    ):
        assert (err.status, err.code) == (401, "bad-signature")
    # another signer's key in the header
    other = {**headers, HEADER_SIGNER: public_key_bytes(generate_key()).hex()}
    assert refused(verifier, other).code == "bad-signature"
    # a time edited after signing
    edited = {**headers, HEADER_TIME: str(NOW + 1)}
    assert refused(verifier, edited).code == "bad-signature"
    # none of these refusals filled the replay cache, so the real request still passes
    assert len(verifier) == 0
    assert verifier.check("POST", PATH, headers, BODY, NOW) == public_key_bytes(KEY)


def test_replay_cache_forgets_expired_entries() -> None:
    verifier = RequestVerifier(max_entries=3)
    for i in range(3):
        verifier.check("GET", f"/r{i}", sign_request(KEY, "GET", f"/r{i}", None, NOW), None, NOW)
    assert len(verifier) == 3
    later = NOW + WINDOW_MS + 1
    verifier.check("GET", "/r3", sign_request(KEY, "GET", "/r3", None, later), None, later)
    assert len(verifier) == 1


def test_replay_cache_full_of_live_entries_refuses_rather_than_forget() -> None:
    verifier = RequestVerifier(max_entries=2)
    for i in range(2):
        verifier.check("GET", f"/r{i}", sign_request(KEY, "GET", f"/r{i}", None, NOW), None, NOW)
    headers = sign_request(KEY, "GET", "/r2", None, NOW)
    err = refused(verifier, headers, method="GET", path="/r2", body=None)
    assert (err.status, err.code) == (503, "replay-cache-full")
    assert len(verifier) == 2
    # the first two are still remembered (not evicted to make room)
    first = sign_request(KEY, "GET", "/r0", None, NOW)
    assert refused(verifier, first, method="GET", path="/r0", body=None).code == "replayed"
    # once they expire there is room again
    later = NOW + WINDOW_MS + 1
    fresh = sign_request(KEY, "GET", "/r2", None, later)
    assert verifier.check("GET", "/r2", fresh, None, later) == public_key_bytes(KEY)


def test_entries_expire_by_their_own_time() -> None:
    """A request signed late in the window is kept until its own time leaves the window."""
    verifier = RequestVerifier()
    early = sign_request(KEY, "GET", "/a", None, NOW - WINDOW_MS)
    late = sign_request(KEY, "GET", "/b", None, NOW + WINDOW_MS)
    verifier.check("GET", "/a", early, None, NOW)
    verifier.check("GET", "/b", late, None, NOW)
    verifier.check("GET", "/c", sign_request(KEY, "GET", "/c", None, NOW + 1), None, NOW + 1)
    assert len(verifier) == 2  # /a expired at NOW + 1
    err = refused(verifier, late, method="GET", path="/b", body=None, now=NOW + 2 * WINDOW_MS)
    assert err.code == "replayed"
    assert len(verifier) == 1


def test_constructor_bounds() -> None:
    with pytest.raises(ValueError):
        RequestVerifier(window_ms=0)
    with pytest.raises(ValueError):
        RequestVerifier(max_entries=0)
    with pytest.raises(ValueError):
        sign_request(KEY, "GET", "/", None, -1)
