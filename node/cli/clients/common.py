"""What every ``hygeia client`` command shares: sign-and-submit, queries, output.

Transactions are built and signed locally with a key file and submitted to a
node's client API; ``submit`` prints the outcome as JSON and exits 1 when the
ledger rejected the transaction. ``get`` with a key file signs the request: a
patient's data is read only by the patient's key or an entitled member's
(docs/privacy.md). Errors a user can fix are one line
(``click.ClickException``), never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode

import click

from node.api.remote import ClientError, request_json, signed_request
from node.core.keys import KeyFileError, SigningKey, load_key
from node.core.tx import Tx, build_tx


def fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def echo(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True))


def sha256_file(path: Path) -> str:
    """The SHA-256 (hex) of a local file, read in chunks: only this digest leaves the machine."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _url(api: str, path: str, params: Mapping[str, str | None] | None) -> str:
    url = api.rstrip("/") + "/v1" + path
    query = {k: v for k, v in (params or {}).items() if v is not None}
    if query:
        url += "?" + urlencode(query)
    return url


def get(
    api: str,
    path: str,
    params: Mapping[str, str | None] | None = None,
    *,
    key_file: Path | None = None,
) -> Any:
    """``GET <api>/v1<path>?params`` (None values left out); errors end the command.
    With ``key_file``, the request is signed with that key (``X-Hygeia-*`` headers):
    a patient's data is read only by the patient's key or an entitled member's
    (docs/privacy.md)."""
    url = _url(api, path, params)
    try:
        if key_file is None:
            return request_json("GET", url)
        _, answer = signed_request("GET", url, None, load_signing_key(key_file))
        return answer
    except ClientError as exc:
        if exc.code == "signature-required":
            fail(f"{exc} (give --key FILE: the patient's key file or an entitled member's)")
        fail(str(exc))


def find(api: str, path: str) -> Any | None:
    """``get``, but None when the node answers 404 (there is no such thing)."""
    try:
        return request_json("GET", api.rstrip("/") + "/v1" + path)
    except ClientError as exc:
        if exc.status == 404:
            return None
        fail(str(exc))


def load_signing_key(key_file: Path) -> SigningKey:
    """The key in ``key_file``; an unreadable key file ends the command."""
    try:
        return load_key(key_file)
    except KeyFileError as exc:
        fail(str(exc))


def build_signed(api: str, key: SigningKey, tx_type: str, body: dict[str, Any]) -> Tx:
    """A transaction signed with ``key`` for the chain the node at ``api`` runs."""
    info = request_json("GET", f"{api.rstrip('/')}/v1/info")
    return build_tx(info["chain_id"], tx_type, body, key, secrets.randbits(62))


def wait_for_commit(api: str, tx_hash: str, wait: float) -> dict[str, Any]:
    """The status of a submitted transaction, polled for at most ``wait`` seconds
    until it is committed or rejected (``wait`` <= 0: pending, not asked)."""
    base = api.rstrip("/")
    result: dict[str, Any] = {"hash": tx_hash, "status": "pending"}
    deadline = time.monotonic() + wait
    while wait > 0 and time.monotonic() < deadline:
        result = {"hash": tx_hash, **request_json("GET", f"{base}/v1/txs/{tx_hash}")}
        if result["status"] in ("committed", "rejected"):
            break
        time.sleep(0.1)
    return result


def is_rejected(result: Mapping[str, Any]) -> bool:
    """Whether a ``wait_for_commit`` status says the ledger rejected the transaction."""
    inner = result.get("result") or {}
    return bool(result["status"] == "rejected" or inner.get("status") == "rejected")


def submit_signed(
    api: str, key_file: Path, tx_type: str, body: dict[str, Any], *, wait: float
) -> dict[str, Any]:
    """Build, sign, submit; with ``wait`` > 0 poll until committed or rejected."""
    key = load_signing_key(key_file)
    tx = build_signed(api, key, tx_type, body)
    answer = request_json("POST", f"{api.rstrip('/')}/v1/txs", tx.wire)
    return wait_for_commit(api, answer["hash"], wait)


def submit(
    api: str, key_file: Path, tx_type: str, body: dict[str, Any], wait: float
) -> dict[str, Any]:
    """Submit, print the outcome; exit 1 when the ledger rejected the transaction."""
    try:
        result = submit_signed(api, key_file, tx_type, body, wait=wait)
    except ClientError as exc:
        fail(str(exc))
    echo(result)
    if is_rejected(result):
        sys.exit(1)
    return result


def submit_tx(
    api: str, key_file: Path, tx_type: str, body: dict[str, Any], wait: bool, timeout: float
) -> dict[str, Any]:
    """``submit`` for a command with ``options.tx_options``: it waits unless ``--no-wait``."""
    return submit(api, key_file, tx_type, body, timeout if wait else 0)
