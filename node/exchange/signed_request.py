"""Signed HTTP requests between members' nodes and clients: signing and verifying.

A request carries three headers::

    X-Hygeia-Signer:    the member's Ed25519 public key, 64 hex
    X-Hygeia-Time:      unix time in milliseconds, decimal (no sign, no leading zero)
    X-Hygeia-Signature: 128 hex, the Ed25519 signature of the signing string

and the signing string is, in UTF-8, with ``\\n`` between the fields::

    METHOD
    <path with query, exactly as sent>
    <time, as in X-Hygeia-Time>
    <hex SHA-256 of the body, or empty for no body>

``RequestVerifier.check`` refuses, with a ``SignedRequestError`` (HTTP 401 and a
code): a header missing or malformed, or a signature that does not verify
(``bad-signature``); a time more than ``WINDOW_MS`` from the node's clock, either
way (``stale``); a signature already accepted within that window (``replayed``).
The signature is checked before the replay cache is touched, so unsigned junk
cannot fill it. The cache keeps each accepted signature until its time is out of
the window and holds at most ``max_entries``: when it is full of live entries a
request is refused with 503 ``replay-cache-full`` rather than let the cache grow
or forget a signature that could still be replayed.

The verifier must be given the path and query exactly as the client sent them
(aiohttp: ``request.raw_path``, not the decoded ``request.path_qs``) and the
body's raw bytes, or percent-encoding and decoding break the signature.

Sans-IO: the time is passed in (``now_ms``); nothing here reads a clock. Not
thread-safe: call it from one thread (the event loop).
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections.abc import Mapping
from typing import Final

import nacl.signing

from node.core.hexstr import HEX64, HEX128
from node.core.keys import public_key_hex, sign, verify

__all__ = [
    "HEADER_SIGNATURE",
    "HEADER_SIGNER",
    "HEADER_TIME",
    "MAX_REPLAY_ENTRIES",
    "WINDOW_MS",
    "RequestVerifier",
    "SignedRequestError",
    "header_value",
    "sign_request",
    "signing_string",
]

HEADER_SIGNER: Final = "X-Hygeia-Signer"
HEADER_TIME: Final = "X-Hygeia-Time"
HEADER_SIGNATURE: Final = "X-Hygeia-Signature"
WINDOW_MS: Final = 60_000
MAX_REPLAY_ENTRIES: Final = 100_000

_TIME = re.compile(r"0|[1-9][0-9]{0,15}")  # ASCII only; 16 digits reach the year 318857
_METHOD = re.compile(r"[A-Z]{1,16}")


class SignedRequestError(Exception):
    """A refused request: the HTTP ``status``, the error ``code`` and a ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def signing_string(method: str, path_qs: str, time_ms: int, body: bytes | None) -> bytes:
    """The bytes a request's signature covers (see the module's header)."""
    body_hash = hashlib.sha256(body).hexdigest() if body else ""
    return f"{method.upper()}\n{path_qs}\n{time_ms}\n{body_hash}".encode()


def sign_request(
    key: nacl.signing.SigningKey, method: str, path_qs: str, body: bytes | None, now_ms: int
) -> dict[str, str]:
    """The three headers that sign this request with ``key`` at time ``now_ms``."""
    if now_ms < 0:
        raise ValueError("the request time is unix milliseconds, not negative")
    sig = sign(key, signing_string(method, path_qs, now_ms, body))
    return {
        HEADER_SIGNER: public_key_hex(key),
        HEADER_TIME: str(now_ms),
        HEADER_SIGNATURE: sig.hex(),
    }


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` in any case (aiohttp's headers already ignore case)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, val in headers.items():
        if key.lower() == wanted:
            return val
    return None


def _bad(message: str) -> SignedRequestError:
    return SignedRequestError(401, "bad-signature", message)


class RequestVerifier:
    """Checks signed requests, remembering accepted signatures for the window."""

    def __init__(self, *, window_ms: int = WINDOW_MS, max_entries: int = MAX_REPLAY_ENTRIES):
        if window_ms <= 0 or max_entries <= 0:
            raise ValueError("window_ms and max_entries must be positive")
        self._window = window_ms
        self._max = max_entries
        self._seen: dict[bytes, int] = {}  # signature -> the last ms it could still be accepted
        self._expiry: list[tuple[int, bytes]] = []  # min-heap of the same

    def __len__(self) -> int:
        return len(self._seen)

    def _forget_expired(self, now_ms: int) -> None:
        heap = self._expiry
        while heap and heap[0][0] < now_ms:
            _, sig = heapq.heappop(heap)
            del self._seen[sig]

    def check(
        self,
        method: str,
        path_qs: str,
        headers: Mapping[str, str],
        body: bytes | None,
        now_ms: int,
    ) -> bytes:
        """The signer's 32-byte public key if the request is signed, fresh and new;
        ``SignedRequestError`` otherwise. An accepted signature is remembered."""
        signer_hex = header_value(headers, HEADER_SIGNER)
        time_text = header_value(headers, HEADER_TIME)
        sig_hex = header_value(headers, HEADER_SIGNATURE)
        missing = [
            name
            for name, value in (
                (HEADER_SIGNER, signer_hex),
                (HEADER_TIME, time_text),
                (HEADER_SIGNATURE, sig_hex),
            )
            if value is None
        ]
        if missing:
            raise _bad(f"unsigned request: no {', '.join(missing)} header")
        assert signer_hex is not None and time_text is not None and sig_hex is not None
        if not HEX64.fullmatch(signer_hex.lower()):
            raise _bad(f"{HEADER_SIGNER} is not an Ed25519 public key in hex (64 digits)")
        if not HEX128.fullmatch(sig_hex.lower()):
            raise _bad(f"{HEADER_SIGNATURE} is not an Ed25519 signature in hex (128 digits)")
        if not _TIME.fullmatch(time_text):
            raise _bad(f"{HEADER_TIME} is not unix milliseconds in decimal")
        if not _METHOD.fullmatch(method.upper()):
            raise _bad("not an HTTP method")
        time_ms = int(time_text)
        if abs(now_ms - time_ms) > self._window:
            raise SignedRequestError(
                401,
                "stale",
                f"{HEADER_TIME} is {(time_ms - now_ms) / 1000:+.1f} s from this node's clock; "
                f"at most {self._window / 1000:g} s either way is accepted (check the clocks)",
            )
        signer = bytes.fromhex(signer_hex)
        sig = bytes.fromhex(sig_hex)
        if not verify(signer, signing_string(method, path_qs, time_ms, body), sig):
            raise _bad("the signature does not verify for this signer, method, path, time and body")
        self._forget_expired(now_ms)
        if sig in self._seen:
            raise SignedRequestError(401, "replayed", "this signed request was already accepted")
        if len(self._seen) >= self._max:
            raise SignedRequestError(
                503,
                "replay-cache-full",
                f"{self._max} signed requests in the last {self._window / 1000:g} s; "
                "try again shortly",
            )
        expires = time_ms + self._window
        self._seen[sig] = expires
        heapq.heappush(self._expiry, (expires, sig))
        return signer
