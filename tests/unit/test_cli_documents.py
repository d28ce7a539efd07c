"""``hygeia client ehr publish`` / ``fetch`` against a fake node, and the signed-request helper.

The client API's plain requests are faked as ``test_cli_client.py`` fakes them (the
``request_json`` that ``node.cli.clients.common`` calls); signed requests go through
the real ``node.api.remote.signed_request`` down to ``urllib.request.urlopen``, faked
here by a node that checks every signature with a ``RequestVerifier``. The last
tests run ``signed_request`` against a real HTTP server on the loopback interface.
"""

from __future__ import annotations

import email.message
import hashlib
import io
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner, Result

from node.api.remote import ClientError, signed_request
from node.cli.client import client
from node.cli.clients import documents
from node.core.codec import canonical_json
from node.core.keys import SigningKey, generate_key, public_key_hex, save_key
from node.core.tx import Tx, decode_tx
from node.exchange.canonical import commitment
from node.exchange.payload import fetch_answer
from node.exchange.signed_request import RequestVerifier, SignedRequestError

API = "http://node.test:26657"
CHAIN_ID = "hygeia-test"
RECORD_ID = "obs-hba1c-1"
CONSENT = "cc" * 32
# exact text as a custodian wrote it: CRLF, key order, a decimal as written, non-ASCII
RESOURCE = (
    '{"resourceType": "Observation",\r\n "valueQuantity": {"value": 6.30, "unit": "%"},\r\n'
    ' "code": {"text": "HbA1c \u00e9l\u00e8ve"}}\r\n'
)
# its RFC 8785 form, written out by hand: sorted keys, 6.30 as 6.3, no whitespace
RESOURCE_JCS = (
    '{"code":{"text":"HbA1c \u00e9l\u00e8ve"},"resourceType":"Observation",'
    '"valueQuantity":{"unit":"%","value":6.3}}'
).encode()
SALT = bytes(range(32))


class _Answer:
    """What ``urlopen`` returns: a status and a body, as a context manager."""

    def __init__(self, status: int, obj: Any) -> None:
        self.status = status
        self._raw = json.dumps(obj).encode()

    def read(self) -> bytes:
        return self._raw

    def __enter__(self) -> _Answer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _http_error(url: str, status: int, code: str, message: str) -> urllib.error.HTTPError:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return urllib.error.HTTPError(url, status, code, email.message.Message(), io.BytesIO(body))


class FakeNode:
    """The client API's plain routes (``__call__``, in place of ``request_json``) and its
    signed document routes (``urlopen``), recording every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Any] = {"/v1/info": {"chain_id": CHAIN_ID}}
        self.gets: list[str] = []
        self.txs: list[Tx] = []
        self.tx_result: dict[str, Any] = {"status": "ok", "code": "ok", "message": "", "data": {}}
        self.verifier = RequestVerifier()
        self.signed: list[tuple[str, str, bytes, bytes | None]] = []  # method, path, signer, body
        self.published: list[dict[str, Any]] = []
        self.documents: dict[str, tuple[str, bytes]] = {}  # version id -> (text, salt)
        self.tickets: set[str] = set()
        self.behind = 0  # answer this many fetches 503 custodian-behind
        self.refusal: tuple[int, str, str] | None = None  # answer every signed request so

    # ------------------------------------------------------------ plain requests
    def __call__(self, method: str, url: str, body: bytes | None = None, **_: Any) -> Any:
        assert url.startswith(API + "/"), url
        path = url[len(API) :]
        if method == "POST":
            assert path == "/v1/txs" and body is not None
            tx = decode_tx(body, chain_id=CHAIN_ID)
            self.txs.append(tx)
            return {"hash": tx.hash}
        self.gets.append(path)
        if path.startswith("/v1/txs/"):
            status = "rejected" if self.tx_result["status"] == "rejected" else "committed"
            return {"status": status, "height": 7, "index": 0, "result": self.tx_result}
        if path in self.routes:
            return self.routes[path]
        raise ClientError(f"{url}: 404 not_found: no such thing", 404, "not_found")

    # ------------------------------------------------------------ signed requests
    def urlopen(self, req: urllib.request.Request, timeout: float = 0) -> _Answer:
        url = req.full_url
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == API, url
        path_qs = parts.path + (f"?{parts.query}" if parts.query else "")
        method = req.get_method()
        body = req.data if isinstance(req.data, bytes) else None
        try:
            signer = self.verifier.check(
                method, path_qs, dict(req.header_items()), body, time.time_ns() // 1_000_000
            )
        except SignedRequestError as exc:
            raise _http_error(url, exc.status, exc.code, exc.message) from None
        self.signed.append((method, path_qs, signer, body))
        if self.refusal is not None:
            raise _http_error(url, *self.refusal)
        if method == "POST" and parts.path == "/v1/documents":
            assert body is not None
            return self._publish(body)
        assert method == "GET" and parts.path.startswith("/v1/documents/"), (method, url)
        return self._fetch(url, parts.path.removeprefix("/v1/documents/"), parts.query, signer)

    def _publish(self, body: bytes) -> _Answer:
        request = json.loads(body)
        self.published.append(request)
        anchor = decode_tx(canonical_json(request["anchor"]), chain_id=CHAIN_ID)
        return _Answer(
            202, {"hash": anchor.hash, "record_id": RECORD_ID, "version_id": anchor.hash}
        )

    def _fetch(self, url: str, version_id: str, query: str, signer: bytes) -> _Answer:
        if self.behind > 0:
            self.behind -= 1
            raise _http_error(url, 503, "custodian-behind", "below the ticket's height; retry")
        (ticket,) = parse_qs(query)["access"]
        committed = {tx.hash for tx in self.txs} if self.tx_result["status"] == "ok" else set()
        if ticket not in self.tickets | committed:
            raise _http_error(url, 403, "ticket-rejected", "no such access on chain")
        text, salt = self.documents[version_id]
        return _Answer(200, fetch_answer(version_id, signer, text, salt))


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    fake = FakeNode()
    monkeypatch.setattr("node.cli.clients.common.request_json", fake)
    monkeypatch.setattr("node.api.remote.urllib.request.urlopen", fake.urlopen)
    monkeypatch.setattr(documents, "BEHIND_RETRY_DELAYS_S", (0.0, 0.0, 0.0))
    return fake


@pytest.fixture
def member(tmp_path: Path) -> tuple[Path, SigningKey]:
    path = tmp_path / "member.json"
    key = generate_key()
    save_key(path, key)
    return path, key


@pytest.fixture
def resource(tmp_path: Path) -> Path:
    path = tmp_path / "hba1c.json"
    path.write_bytes(RESOURCE.encode("utf-8"))
    return path


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(client, [str(a) for a in args], catch_exceptions=False)


# ------------------------------------------------------------------ publish
def _publish(key_file: Path, fhir: Path, *extra: str) -> Result:
    return run("ehr", "publish", "--api", API, "--key", key_file, "--fhir", fhir,
               "--patient", "aa" * 32, "--record-id", RECORD_ID, *extra)  # fmt: skip


def test_publish_sends_the_exact_text_and_an_anchor_of_its_jcs_commitment(
    node: FakeNode, member: tuple[Path, SigningKey], resource: Path
) -> None:
    key_file, key = member
    result = _publish(key_file, resource)
    assert result.exit_code == 0, result.output
    ((method, path, signer, _body),) = node.signed
    assert (method, path, signer) == ("POST", "/v1/documents", bytes(key.verify_key))
    (request,) = node.published
    assert set(request) == {"resource", "salt", "anchor"}
    assert request["resource"] == RESOURCE  # the file's text exactly: CRLF, 6.30, é
    salt = bytes.fromhex(request["salt"])
    assert len(salt) == 32 and request["salt"] == salt.hex()
    anchor = decode_tx(canonical_json(request["anchor"]), chain_id=CHAIN_ID)
    assert anchor.type == "record.anchor" and anchor.signer == public_key_hex(key)
    assert anchor.verify_signature() and anchor.chain_id == CHAIN_ID
    assert anchor.body == {
        "record_id": RECORD_ID,
        "patient": "aa" * 32,
        "type": "Observation",
        "commitment": hashlib.sha256(salt + RESOURCE_JCS).hexdigest(),
        "version": 1,  # the record is new (its query answered 404)
    }
    assert node.gets == [f"/v1/ehr/records/{RECORD_ID}", "/v1/info", f"/v1/txs/{anchor.hash}"]
    out = json.loads(result.stdout)
    assert out["version_id"] == out["hash"] == anchor.hash
    assert (out["record_id"], out["status"], out["result"]["status"]) == (
        RECORD_ID,
        "committed",
        "ok",
    )


def test_publish_versions_follow_the_latest_and_no_wait_does_not_poll(
    node: FakeNode, member: tuple[Path, SigningKey], resource: Path
) -> None:
    node.routes[f"/v1/ehr/records/{RECORD_ID}"] = {"version": 3, "version_id": "dd" * 32}
    result = _publish(member[0], resource, "--type", "11506-3", "--no-wait")
    assert result.exit_code == 0, result.output
    anchor = decode_tx(canonical_json(node.published[0]["anchor"]), chain_id=CHAIN_ID)
    assert anchor.body["version"] == 4 and anchor.body["replaces"] == "dd" * 32
    assert anchor.body["type"] == "11506-3"
    assert json.loads(result.stdout)["status"] == "pending"
    assert not any(g.startswith("/v1/txs/") for g in node.gets)


def test_publish_refusals_exit_1_with_code_and_message(
    node: FakeNode, member: tuple[Path, SigningKey], resource: Path, tmp_path: Path
) -> None:
    key_file = member[0]
    node.refusal = (403, "not-member", "the signer is no key of an active member")
    result = _publish(key_file, resource)
    assert result.exit_code == 1
    assert "not-member: the signer is no key of an active member" in result.stderr

    node.refusal = None
    node.tx_result = {"status": "rejected", "code": "unknown-patient", "message": "x", "data": {}}
    result = _publish(key_file, resource)
    assert result.exit_code == 1  # the anchor was refused at commit: the outcome is printed
    assert json.loads(result.stdout)["status"] == "rejected"

    calls = len(node.signed)
    for text, code in (
        ('{"status": "final"}', "not-a-resource"),
        ('{"resourceType": "Observation", "a": 1, "a": 2}', "bad-json"),
        ('{"resourceType": "Observation", "value": NaN}', "bad-json"),
    ):
        bad = tmp_path / "bad.json"
        bad.write_text(text, encoding="utf-8")
        result = _publish(key_file, bad)
        assert result.exit_code == 1 and f"Error: {code}: " in result.stderr, result.stderr
    bad.write_bytes(b'{"resourceType": "Observation", "text": "\xff"}')
    result = _publish(key_file, bad)
    assert result.exit_code == 1 and "bad-json" in result.stderr and "UTF-8" in result.stderr
    assert len(node.signed) == calls  # nothing sent for a file that is no resource


# ------------------------------------------------------------------ fetch
VERSION = "ee" * 32
TICKET = "ab" * 32


def _version(node: FakeNode, text: str = RESOURCE, *, erased: Any = None) -> None:
    """Version VERSION of RECORD_ID on chain, committing to RESOURCE under SALT; the
    custodian holds ``text`` (tampered if it is not RESOURCE)."""
    node.routes[f"/v1/ehr/versions/{VERSION}"] = {
        "version_id": VERSION,
        "record_id": RECORD_ID,
        "custodian": "hosp-a",
        "commitment": commitment(SALT, RESOURCE).hex(),
        "version": 1,
        "latest": 1,
        "erased": erased,
    }
    node.documents[VERSION] = (text, SALT)


def _fetch(key_file: Path, out: Path, *extra: str) -> Result:
    return run("ehr", "fetch", "--api", API, "--key", key_file, "--version", VERSION,
               "--out", out, *extra)  # fmt: skip


def test_fetch_with_a_ticket_writes_the_verified_text_exactly(
    node: FakeNode, member: tuple[Path, SigningKey], tmp_path: Path
) -> None:
    key_file, key = member
    _version(node)
    node.tickets.add(TICKET)
    out = tmp_path / "got.json"
    result = _fetch(key_file, out, "--access", TICKET)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == RESOURCE.encode("utf-8")
    assert out.stat().st_mode & 0o777 == 0o600
    assert result.stdout.count("\n") == 1
    assert json.loads(result.stdout) == {
        "version_id": VERSION,
        "record_id": RECORD_ID,
        "ticket": TICKET,
        "bytes": len(RESOURCE.encode("utf-8")),
    }
    ((method, path, signer, body),) = node.signed
    assert (method, path, signer, body) == (
        "GET",
        f"/v1/documents/{VERSION}?access={TICKET}",
        bytes(key.verify_key),
        None,
    )
    assert node.txs == []  # a ticket given: none committed


def test_fetch_refuses_a_tampered_answer(
    node: FakeNode, member: tuple[Path, SigningKey], tmp_path: Path
) -> None:
    _version(node, RESOURCE.replace("6.30", "5.30"))
    node.tickets.add(TICKET)
    out = tmp_path / "got.json"
    result = _fetch(member[0], out, "--access", TICKET)
    assert result.exit_code == 1
    assert "Error: commitment-mismatch: " in result.stderr
    assert not out.exists() and os.listdir(tmp_path) == ["member.json"]


@pytest.mark.parametrize(
    ("args", "tx_type", "body"),
    [
        (
            ("--purpose", "TREAT", "--consent", CONSENT),
            "access.log",
            {"record_id": RECORD_ID, "purpose": "TREAT", "consent_id": CONSENT},
        ),
        (
            ("--emergency", "BTG", "--minutes", "5"),
            "access.emergency",
            {"record_id": RECORD_ID, "reason": "BTG", "duration_ms": 300_000},
        ),
    ],
)
def test_fetch_commits_a_ticket_when_none_is_given(
    node: FakeNode,
    member: tuple[Path, SigningKey],
    tmp_path: Path,
    args: tuple[str, ...],
    tx_type: str,
    body: dict[str, Any],
) -> None:
    key_file, key = member
    _version(node)
    out = tmp_path / "got.json"
    result = _fetch(key_file, out, *args)
    assert result.exit_code == 0, result.output
    (tx,) = node.txs
    assert (tx.type, tx.body, tx.signer) == (tx_type, body, public_key_hex(key))
    assert json.loads(result.stdout)["ticket"] == tx.hash
    assert node.signed[0][1] == f"/v1/documents/{VERSION}?access={tx.hash}"
    assert node.gets[:3] == [f"/v1/ehr/versions/{VERSION}", "/v1/info", f"/v1/txs/{tx.hash}"]
    assert f"access ticket {tx.hash} committed" in result.stderr
    assert out.read_bytes() == RESOURCE.encode("utf-8")


def test_fetch_stops_when_the_ticket_is_rejected(
    node: FakeNode, member: tuple[Path, SigningKey], tmp_path: Path
) -> None:
    _version(node)
    node.tx_result = {
        "status": "rejected",
        "code": "consent-revoked",
        "message": "the consent was revoked",
        "data": {},
    }
    out = tmp_path / "got.json"
    result = _fetch(member[0], out, "--purpose", "TREAT", "--consent", CONSENT)
    assert result.exit_code == 1
    assert "Error: consent-revoked: the consent was revoked" in result.stderr
    assert node.signed == [] and not out.exists()


def test_fetch_asks_again_while_the_custodian_is_behind(
    node: FakeNode, member: tuple[Path, SigningKey], tmp_path: Path
) -> None:
    _version(node)
    node.tickets.add(TICKET)
    node.behind = 2
    result = _fetch(member[0], tmp_path / "a.json", "--access", TICKET)
    assert result.exit_code == 0, result.output
    assert len(node.signed) == 3  # each one freshly signed (no replay refusal)
    assert result.stderr.count("custodian-behind") == 2

    node.behind = 10
    result = _fetch(member[0], tmp_path / "b.json", "--access", TICKET)
    assert result.exit_code == 1
    assert "Error: custodian-behind: " in result.stderr
    assert len(node.signed) == 3 + 4  # three retries, then the refusal


def test_fetch_refusals_exit_1_with_code_and_message(
    node: FakeNode, member: tuple[Path, SigningKey], tmp_path: Path
) -> None:
    key_file, out = member[0], tmp_path / "got.json"
    result = _fetch(key_file, out, "--access", TICKET)  # no such version on chain
    assert result.exit_code == 1 and "Error: unknown-version: " in result.stderr
    _version(node)
    result = _fetch(key_file, out, "--access", TICKET)  # the node refuses the ticket
    assert result.exit_code == 1
    assert "Error: ticket-rejected: no such access on chain" in result.stderr
    node.tickets.add(TICKET)
    node.refusal = (403, "consent-revoked", "consent " + CONSENT + " was revoked")
    result = _fetch(key_file, out, "--access", TICKET)
    assert result.exit_code == 1 and f"consent-revoked: consent {CONSENT}" in result.stderr
    _version(node, erased={"height": 9, "reason": "patient-request"})
    calls = len(node.signed)
    result = _fetch(key_file, out, "--access", TICKET)
    assert result.exit_code == 1 and "Error: erased: " in result.stderr
    assert len(node.signed) == calls and not out.exists()
    for args in ((), ("--access", TICKET, "--emergency", "BTG"), ("--purpose", "TREAT")):
        result = _fetch(key_file, out, *args)
        assert result.exit_code == 1 and "Error: " in result.stderr, args


def test_fetch_refuses_an_existing_out_without_force(
    node: FakeNode, member: tuple[Path, SigningKey], tmp_path: Path
) -> None:
    _version(node)
    node.tickets.add(TICKET)
    out = tmp_path / "got.json"
    out.write_bytes(b"keep me")
    result = _fetch(member[0], out, "--access", TICKET)
    assert result.exit_code == 1 and "Error: out-exists: " in result.stderr
    assert out.read_bytes() == b"keep me"
    assert node.gets == [] and node.signed == []  # refused before asking anything
    result = _fetch(member[0], out, "--access", TICKET, "--force")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == RESOURCE.encode("utf-8")


# ------------------------------------------------------------------ signed_request on the wire
class _Recorder(BaseHTTPRequestHandler):
    """Records each request's raw target, headers and body; answers from ``reply``."""

    seen: list[tuple[str, str, dict[str, str], bytes | None]]
    reply: tuple[int, Any]

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        self.seen.append((self.command, self.path, dict(self.headers.items()), body))
        status, obj = self.reply
        raw = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = _handle

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, type[_Recorder]]]:
    monkeypatch.setenv("no_proxy", "*")  # straight to the loopback server
    handler = type("Handler", (_Recorder,), {"seen": [], "reply": (200, {"ok": True})})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_signed_request_signs_the_target_sent_on_the_wire(
    server: tuple[str, type[_Recorder]],
) -> None:
    base, handler = server
    key = generate_key()
    verifier = RequestVerifier()
    now = time.time_ns() // 1_000_000
    target = f"/v1/documents/{VERSION}?access={TICKET}&x=a%2Fb%20c"  # kept percent-encoded
    assert signed_request("GET", base + target, None, key) == (200, {"ok": True})
    body = b'{"resource": "\xc3\xa9"}'
    handler.reply = (202, {"hash": "h"})
    assert signed_request("post", base + "/v1/documents", body, key) == (202, {"hash": "h"})
    (get_method, get_path, get_headers, get_body), (method, path, headers, sent) = handler.seen
    assert (get_method, get_path, get_body) == ("GET", target, None)
    assert (method, path, sent) == ("POST", "/v1/documents", body)
    assert verifier.check(get_method, get_path, get_headers, None, now) == bytes(key.verify_key)
    assert verifier.check(method, path, headers, sent, now) == bytes(key.verify_key)
    with pytest.raises(SignedRequestError, match="bad-signature"):  # the body is covered
        RequestVerifier().check(method, path, headers, body + b" ", now)


def test_signed_request_errors_are_client_errors_with_code_and_detail(
    server: tuple[str, type[_Recorder]],
) -> None:
    base, handler = server
    key = generate_key()
    handler.reply = (403, {"error": {"code": "no-ticket", "message": "name a ticket"}})
    with pytest.raises(ClientError) as caught:
        signed_request("GET", base + f"/v1/documents/{VERSION}", None, key)
    assert (caught.value.status, caught.value.code, caught.value.detail) == (
        403,
        "no-ticket",
        "name a ticket",
    )
    assert str(caught.value).endswith("403 no-ticket: name a ticket")
    handler.reply = (502, "not an error object")
    with pytest.raises(ClientError, match="HTTP 502") as caught:
        signed_request("GET", base + "/v1/x", None, key)
    assert caught.value.code is None
    with pytest.raises(ClientError, match="cannot reach the node"):
        signed_request("GET", "http://127.0.0.1:9/v1/x", None, key, timeout=2)
    with pytest.raises(ClientError, match="not an http"):
        signed_request("GET", "file:///etc/passwd", None, key)
    with pytest.raises(ClientError, match="not a URL"):
        signed_request("GET", "node.test/v1/x", None, key)
