"""Throughput, latency and the longest pause in commits while the validator set
changes under load (docs/benchmarks.md, "Epoch switch").

``python -m node.bench.epoch_switch [--validators 5] [--rate 300] [--seconds 40]``
starts a fresh local testnet of V validators (``hygeia testnet start``, as the
load bench does), runs the open-loop load bench at ``--rate`` tx/s for
``--seconds``, and after a third of the window the members vote the last
validator out (``remove-validator``; V-1 after the epoch boundary). Afterwards it
reads the chain and prints one JSON object: the boundary height, the largest gap
between consecutive block timestamps within 200 heights of the boundary and
elsewhere in the window, the heights either side, and the load report's
throughput and latency percentiles. A stall of the switch shows as a gap
around the boundary larger than the gaps elsewhere.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from node.api.remote import ClientError, request_json
from node.bench.load import run_load
from node.bench.run_all import local_testnet
from node.bench.workload import LoadConfig, load_testnet
from node.core.keys import load_key
from node.core.tx import Tx, build_tx

DAY_MS = 86_400_000
WINDOW = 200  # heights either side of the boundary that count as "around the switch"


def _submit(api: str, tx: Tx, timeout_s: float = 60.0) -> None:
    """POST ``tx`` (again while the mempool is busy) and wait until it is committed."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            request_json("POST", f"{api}/v1/txs", tx.wire, timeout=5)
            break
        except ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    while time.monotonic() < deadline:
        status = request_json("GET", f"{api}/v1/txs/{tx.hash}", timeout=5)
        if status.get("status") == "committed":
            return
        if status.get("status") == "rejected":
            raise RuntimeError(f"{tx.type} rejected: {status.get('result')}")
        time.sleep(0.1)
    raise RuntimeError(f"{tx.type} {tx.hash} not committed in {timeout_s} s")


def _remove_last(tn: Path, chain_id: str, api: str, n: int) -> None:
    """Members 0.. vote the last validator out (2/3 of the n members approve)."""
    meta = json.loads((tn / "testnet.json").read_text(encoding="utf-8"))
    keys = [load_key(Path(node["home"]) / "member_key.json") for node in meta["nodes"]]
    action = {"type": "remove-validator", "node_key": meta["nodes"][-1]["node_id"]}
    expires = int(time.time() * 1000) + DAY_MS
    nonce = time.time_ns() & ((1 << 62) - 1)
    body = {"action": action, "expires_ms": expires}
    propose = build_tx(chain_id, "gov.propose", body, keys[0], nonce)
    _submit(api, propose)
    need = -(-2 * n // 3)
    for voter in range(1, need):
        vote = {"proposal": propose.hash, "approve": True}
        _submit(api, build_tx(chain_id, "gov.vote", vote, keys[voter], nonce + voter))


def run(validators: int, rate: float, seconds: float) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="hygeia-bench-switch-") as tmp,
        (Path(tmp) / "testnet.log").open("wb") as log,
        local_testnet(Path(tmp) / "tn", log, validators=validators) as tn,
    ):
        chain_id, targets, keys = load_testnet(tn)
        api = targets[0].api
        cfg = LoadConfig(mode="open", rate=rate, duration_s=seconds, warmup_s=5.0, drain_s=15.0)
        report: dict[str, Any] = {}

        def load() -> None:
            report.update(run_load(cfg, targets, keys, chain_id))

        worker = threading.Thread(target=load, name="load")
        worker.start()
        time.sleep(cfg.warmup_s + seconds / 3)
        start_height = int(request_json("GET", f"{api}/v1/info")["height"])
        _remove_last(tn, chain_id, api, validators)
        worker.join()
        shown = request_json("GET", f"{api}/v1/validators")
        boundary = int(shown["from_height"])
        tip = int(request_json("GET", f"{api}/v1/info")["height"])
        times = {}
        for h in range(max(1, start_height - 2 * WINDOW), tip + 1):
            block = request_json("GET", f"{api}/v1/blocks/{h}")
            times[h] = int(block["header"]["timestamp"])
        gaps = {h: times[h] - times[h - 1] for h in times if h - 1 in times}
        near = {h: g for h, g in gaps.items() if abs(h - boundary) <= WINDOW}
        far = {h: g for h, g in gaps.items() if abs(h - boundary) > WINDOW}
        worst_near = max(near, key=lambda h: near[h]) if near else None
        return {
            "validators_before": validators,
            "validators_after": len(shown["validators"]),
            "epoch": shown["epoch"],
            "boundary_height": boundary,
            "max_gap_ms_near_switch": near.get(worst_near) if worst_near else None,
            "max_gap_at_height": worst_near,
            "max_gap_ms_elsewhere": max(far.values()) if far else None,
            "heights_measured": [min(times), max(times)],
            "committed_tps": report.get("committed_tps"),
            "latency_ms": report.get("latency_ms"),
            "not_committed": report.get("not_committed"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--validators", type=int, default=5)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    result = run(args.validators, args.rate, args.seconds)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
