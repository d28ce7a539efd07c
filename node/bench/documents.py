"""Publish and fetch throughput and latency of documents between two nodes
(docs/benchmarks.md, "Document exchange").

``python -m node.bench.documents [--small 40] [--large 8] [--rounds 3]`` starts a
fresh local testnet of four validators (``hygeia testnet start``). The custodian
is ``pharmacy-2`` on node2, the requester ``hospital-0`` on node0. For a 10 KiB
and a 5 MiB FHIR ``Binary`` resource it measures, one request at a time:

- **publish**: ``POST /v1/documents`` on node2 until its 202 (stored, anchor
  submitted), and until the anchor is committed;
- **fetch**: with the ticket already committed (``access.log`` under the
  patient's consent), ``GET /v1/documents/{version}?access=<ticket>`` on node0,
  relayed to node2 over the peer link, until the answer is opened with the
  requester's key and its commitment checked (what ``hygeia client ehr fetch``
  does), ``--rounds`` times per version.

Prints one JSON object: per size the medians and p99 of each phase, the
throughput (documents/s and MiB/s of resource text) and the nodes' peak RSS
(node0 relays, node2 serves), which shows the memory a fetch holds.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nacl.signing

from node.api.remote import request_json
from node.bench.procs import find_node_pid, peak_rss_mb
from node.bench.run_all import local_testnet
from node.bench.stats import percentile
from node.bench.workload import load_testnet
from node.core.keys import load_key, public_key_hex
from node.core.tx import Tx, build_tx
from node.exchange.canonical import commitment
from node.exchange.payload import open_fetch_answer
from node.exchange.signed_request import sign_request

REQUESTER, CUSTODIAN = 0, 2
SIZES = {"10KiB": 10 << 10, "5MiB": 5 << 20}


def _resource(size: int) -> str:
    """A FHIR Binary of about ``size`` bytes of JSON text (random content)."""
    raw = os.urandom(size * 3 // 4 - 64)
    data = base64.b64encode(raw).decode("ascii")
    return json.dumps({"resourceType": "Binary", "contentType": "application/pdf", "data": data})


def _signed(method: str, api: str, path: str, body: bytes | None, key: Any) -> tuple[int, Any]:
    headers = sign_request(key, method, path, body, int(time.time() * 1000))
    if body is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(api + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _commit(api: str, tx: Tx) -> dict[str, Any]:
    """Submit ``tx`` and wait for its commit; its status."""
    request_json("POST", f"{api}/v1/txs", tx.wire)
    return _wait_committed(api, tx.hash, tx.type)


def _summary(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    median, p99 = percentile(ordered, 50), percentile(ordered, 99)
    return {
        "median_ms": round(median or 0.0, 1),
        "p99_ms": round(p99 or 0.0, 1),
        "n": len(ordered),
    }


def run(small: int, large: int, rounds: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="hygeia-bench-docs-") as tmp,
        (Path(tmp) / "testnet.log").open("wb") as log,
        local_testnet(Path(tmp) / "tn", log, validators=4) as tn,
    ):
        chain_id, targets, key_files = load_testnet(tn)
        keys = [load_key(k) for k in key_files]
        requester_api, custodian_api = targets[REQUESTER].api, targets[CUSTODIAN].api
        patient = nacl.signing.SigningKey.generate()

        def tx(kind: str, body: dict[str, Any], key: nacl.signing.SigningKey) -> Tx:
            return build_tx(chain_id, kind, body, key, secrets.randbits(62))

        _commit(requester_api, tx("patient.enroll", {"patient": public_key_hex(patient)}, keys[0]))
        grant = {
            "grantee": "hospital-0",
            "scope": "all",
            "purpose": ["TREAT"],
            "period": {"start": 0, "end": int(time.time() * 1000) + 86_400_000},
        }
        consent = _commit(requester_api, tx("consent.grant", grant, patient))["result"]["data"]
        results: dict[str, Any] = {}
        for label, size in SIZES.items():
            count = small if size < (1 << 20) else large
            publish_ms, commit_ms, fetch_ms = [], [], []
            published: list[tuple[str, str, str]] = []  # (version, ticket, commitment)
            text_bytes = 0
            for i in range(count):
                text, salt = _resource(size), secrets.token_bytes(32)
                text_bytes = len(text.encode())
                body = {
                    "record_id": f"bench-{label}-{i}",
                    "patient": public_key_hex(patient),
                    "type": "Binary",
                    "commitment": commitment(salt, text).hex(),
                    "version": 1,
                }
                anchor = tx("record.anchor", body, keys[CUSTODIAN])
                payload = json.dumps(
                    {"resource": text, "salt": salt.hex(), "anchor": json.loads(anchor.wire)}
                ).encode()
                started = time.perf_counter()
                status, answer = _signed("POST", custodian_api, "/v1/documents", payload, keys[2])
                if status != 202:
                    raise RuntimeError(f"publish: {status} {answer}")
                publish_ms.append((time.perf_counter() - started) * 1000)
                _wait_committed(custodian_api, anchor.hash)
                commit_ms.append((time.perf_counter() - started) * 1000)
                access = {
                    "record_id": body["record_id"],
                    "purpose": "TREAT",
                    "consent_id": consent["consent_id"],
                }
                ticket = tx("access.log", access, keys[REQUESTER])
                _commit(requester_api, ticket)
                published.append((anchor.hash, ticket.hash, str(body["commitment"])))
            fetch_started = time.perf_counter()
            for _ in range(rounds):
                for version, ticket_hash, digest in published:
                    path = f"/v1/documents/{version}?access={ticket_hash}"
                    started = time.perf_counter()
                    status, answer = _signed("GET", requester_api, path, None, keys[REQUESTER])
                    if status != 200:
                        raise RuntimeError(f"fetch: {status} {answer}")
                    open_fetch_answer(
                        keys[REQUESTER],
                        answer,
                        version_id=version,
                        expected_commitment=bytes.fromhex(digest),
                    )
                    fetch_ms.append((time.perf_counter() - started) * 1000)
            fetch_s = time.perf_counter() - fetch_started
            fetches = rounds * len(published)
            results[label] = {
                "resource_bytes": text_bytes,
                "publish_until_202": _summary(publish_ms),
                "publish_until_committed": _summary(commit_ms),
                "fetch_opened_and_verified": _summary(fetch_ms),
                "fetches_per_s": round(fetches / fetch_s, 1),
                "fetch_mib_per_s": round(fetches * text_bytes / fetch_s / (1 << 20), 1),
            }
        homes = {t.name: t.home for t in targets}
        results["peak_rss_mb"] = {
            name: peak_rss_mb(find_node_pid(home)) if home else None
            for name, home in sorted(homes.items())
        }
        return results


def _wait_committed(
    api: str, tx_hash: str, what: str = "anchor", timeout_s: float = 60.0
) -> dict[str, Any]:
    """The status of ``tx_hash`` once committed; ``RuntimeError`` if rejected or late."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status: dict[str, Any] = request_json("GET", f"{api}/v1/txs/{tx_hash}")
        if status["status"] == "committed":
            return status
        if status["status"] == "rejected":
            raise RuntimeError(f"{what} {tx_hash} rejected: {status['result']}")
        time.sleep(0.01)
    raise RuntimeError(f"{what} {tx_hash} not committed in {timeout_s} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small", type=int, default=40, help="10 KiB documents")
    parser.add_argument("--large", type=int, default=8, help="5 MiB documents")
    parser.add_argument("--rounds", type=int, default=3, help="fetches of each document")
    args = parser.parse_args()
    result = run(args.small, args.large, args.rounds)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
