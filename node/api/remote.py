"""A small synchronous HTTP JSON client for the CLI (standard library only).

Errors become ``ClientError`` with the node's error code and message, or a
clear line when the node cannot be reached.

``signed_request`` sends a request signed with a member's key
(``node.exchange.signed_request``: the document exchange's ``X-Hygeia-*``
headers). The path and query it signs are the request target urllib puts on
the wire (``Request.selector``), so what the node verifies (aiohttp's
``raw_path``) is exactly what was signed.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import nacl.signing

from node.exchange.signed_request import sign_request


class ClientError(Exception):
    """An HTTP error (``status``, and the node's error ``code`` and ``detail`` message
    when its answer says them) or a node that cannot be reached (``status`` None)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail


def request_json(
    method: str,
    url: str,
    body: bytes | None = None,
    *,
    token: str | None = None,
    timeout: float = 10.0,
    answer_statuses: tuple[int, ...] = (),
) -> Any:
    """The JSON answer of ``url``. An HTTP error status raises ``ClientError``,
    except the ``answer_statuses`` whose JSON body is an answer too (e.g. 503
    from ``/health``, which carries the reasons)."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        raw = err.read()
        if err.code in answer_statuses:
            try:
                return json.loads(raw or b"null")
            except ValueError:
                raise ClientError(f"{url}: the answer is not JSON", err.code) from None
        try:
            detail = json.loads(raw)["error"]
            raise ClientError(
                f"{url}: {err.code} {detail['code']}: {detail['message']}", err.code, detail["code"]
            ) from None
        except (ValueError, KeyError, TypeError):
            raise ClientError(f"{url}: HTTP {err.code} {err.reason}", err.code) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ClientError(f"{url}: cannot reach the node ({reason})") from None


_last_ms = 0
_last_lock = threading.Lock()


def _request_time_ms() -> int:
    """This machine's clock in unix ms, but later than any time this process signed
    before: Ed25519 signatures are deterministic, so the same request signed twice in
    one millisecond (a quick retry) would be the same signature, refused as replayed."""
    global _last_ms
    with _last_lock:
        _last_ms = max(time.time_ns() // 1_000_000, _last_ms + 1)
        return _last_ms


def signed_request(
    method: str,
    url: str,
    body: bytes | None,
    key: nacl.signing.SigningKey,
    *,
    timeout: float = 10.0,
    now_ms: int | None = None,
) -> tuple[int, Any]:
    """``(status, JSON answer)`` of ``url`` requested with ``body`` (None: no body),
    signed with ``key`` at ``now_ms`` (default: this machine's clock, strictly later
    than the previous request this process signed). An HTTP error status raises
    ``ClientError`` with the node's ``code`` and ``detail`` message, as ``request_json``
    does; so do an unusable URL and an answer that is not JSON."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        req = urllib.request.Request(url, data=body, method=method.upper(), headers=headers)
    except ValueError as err:
        raise ClientError(f"{url}: not a URL ({err})") from None
    if req.type not in ("http", "https"):
        raise ClientError(f"{url}: not an http(s) URL")
    path_qs = req.selector or "/"  # http.client sends "/" for an empty target
    when = _request_time_ms() if now_ms is None else now_ms
    for name, value in sign_request(key, req.get_method(), path_qs, body, when).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = int(resp.status), resp.read()
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            detail = json.loads(raw)["error"]
            code, message = str(detail["code"]), str(detail["message"])
        except (ValueError, KeyError, TypeError):
            raise ClientError(f"{url}: HTTP {err.code} {err.reason}", err.code) from None
        raise ClientError(f"{url}: {err.code} {code}: {message}", err.code, code, message) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ClientError(f"{url}: cannot reach the node ({reason})") from None
    except ValueError as err:  # http.client: a URL it cannot send (control characters)
        raise ClientError(f"{url}: not a URL it can send ({err})") from None
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        raise ClientError(f"{url}: the answer is not JSON", status) from None
