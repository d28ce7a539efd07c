"""Unit tests of the workload clients (tests/chaos/workload.py) against a fake node.

The fake node is a real HTTP server on 127.0.0.1 whose answers the test sets:
how each answer becomes an outcome in the history (ok, fail, info), and that a
client reads an accepted tx until a read finds it in a block.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nacl.signing
import pytest

from tests.chaos import workload
from tests.chaos.history import HistoryWriter, completions, read_history
from tests.chaos.workload import Client
from tests.support.ports import HOST, unused_port


class FakeNode:
    """Answers POST /v1/txs with ``submit`` and GET /v1/txs/{h} with ``status``."""

    def __init__(self) -> None:
        self.submit: tuple[int, object] = (202, {})
        self.status: tuple[int, object] = (200, {"status": "pending"})
        node = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, code: int, body: object) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                code, body = node.submit
                if code == 202:
                    body = {"hash": "x"}
                self._answer(code, body)

            def do_GET(self) -> None:
                self._answer(*node.status)

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def node() -> Iterator[FakeNode]:
    fake = FakeNode()
    yield fake
    fake.close()


def _client(history: HistoryWriter, port: int) -> Client:
    return Client(
        client_id=0,
        history=history,
        api_ports=[port],
        chain_id="chaos-test",
        key=nacl.signing.SigningKey(b"\x01" * 32),
        rate=1.0,
        seed=1,
        submitting=threading.Event(),
        halt=threading.Event(),
    )


def _outcomes(path: Path) -> list[tuple[str, str, str | None, str | None]]:
    return [
        (inv.f, done.type, done.status, done.error)
        for inv, done in completions(read_history(path))
        if done is not None
    ]


def test_answers_become_ok_fail_and_info(node: FakeNode, tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path) as history:
        client = _client(history, node.port)
        client.submit()
        node.submit = (503, {"error": {"code": "mempool-full", "message": "full"}})
        client.submit()
        node.submit = (500, {"error": {"code": "internal", "message": "oops"}})
        client.submit()
        refused = _client(history, unused_port())
        refused.client_id = 1
        refused.submit()
    assert _outcomes(path) == [
        ("submit", "ok", "accepted", None),
        ("submit", "fail", None, "mempool-full"),  # refused: it certainly did not happen
        ("submit", "info", None, "internal"),  # a 500: unknown
        ("submit", "fail", None, "refused"),  # nobody listening: certainly not
    ]
    # the accepted one and the unknown one are looked for; the refusals are not
    assert len(client.unconfirmed) == 2 and not refused.unconfirmed


def test_a_client_reads_until_a_read_finds_the_tx_in_a_block(
    node: FakeNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workload, "REREAD_S", 0.0)
    monkeypatch.setattr(workload, "CONFIRM_READS", 0.0)
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path) as history:
        client = _client(history, node.port)
        client.submit()
        assert client.read_some()  # pending: still unconfirmed
        assert len(client.unconfirmed) == 1 and not client.confirmed
        node.status = (200, {"status": "committed", "height": 3, "index": 1})
        assert client.read_some()
        assert not client.unconfirmed and len(client.confirmed) == 1
        assert not client.read_some()  # nothing left to read
    reads = [o for o in _outcomes(path) if o[0] == "status"]
    assert reads == [("status", "ok", "pending", None), ("status", "ok", "committed", None)]
