"""A small synchronous HTTP JSON client for the CLI (standard library only).

Errors become ``ClientError`` with the node's error code and message, or a
clear line when the node cannot be reached.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ClientError(Exception):
    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


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
