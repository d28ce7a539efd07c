"""HTTP to the nodes of a functional test: a keep-alive JSON client and one-shot requests."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

from tests.functional.framework.waiting import FrameworkError
from tests.support.ports import HOST


class NodeUnreachable(FrameworkError):
    """No HTTP answer from a node (it is down, or the connection broke)."""


class HttpClient:
    """JSON over HTTP/1.1 with one keep-alive connection per port (one thread only)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout
        self._conns: dict[int, http.client.HTTPConnection] = {}

    def request(
        self,
        port: int,
        method: str,
        path: str,
        body: bytes | None = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in (1, 2):  # a kept-alive connection the server closed: one fresh retry
            conn = self._conns.get(port)
            if conn is None:
                conn = self._conns[port] = http.client.HTTPConnection(
                    HOST, port, timeout=self._timeout
                )
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._conns.pop(port, None)
                if attempt == 2 or isinstance(exc, ConnectionRefusedError):
                    raise NodeUnreachable(f"{method} :{port}{path}: {exc!r}") from None
                continue
            ctype = resp.getheader("Content-Type", "")
            return resp.status, json.loads(raw) if "json" in ctype else raw.decode()
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


def fetch(
    port: int, path: str, *, method: str = "GET", token: str | None = None, timeout: float = 10.0
) -> Response:
    """One request to ``HOST:port`` on a fresh connection, the answer as it came (any
    status, the body unparsed); ``OSError`` if nothing answers."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()
