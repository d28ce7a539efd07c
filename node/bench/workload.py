"""What a load run sends, and where: targets, the run's settings, pre-signed transactions.

Transaction ``i`` is a ``data.anchor`` of a fresh digest (SHA-256 of a per-run
salt and ``i``), signed by member key ``i mod K``; all are built and signed
before the clock starts, in worker processes (signing is not part of the
measurement). node/bench/load.py describes the method.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import nacl.signing

from node.core.tx import build_tx
from node.setup.testnet import TestnetError, read_testnet

Mode = Literal["open", "closed"]
TX_TYPE: Final = "data.anchor"
# closed loop: how many transactions to pre-sign per second of run when not told
CLOSED_CEILING_TPS: Final = 2000
_PRESIGN_CHUNK: Final = 5000


# ------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class NodeTarget:
    """One node to submit to: its client API, and what is needed to watch it."""

    name: str
    api: str
    admin: str | None = None
    admin_token: str | None = None
    home: str | None = None


@dataclass(frozen=True)
class LoadConfig:
    mode: Mode
    rate: float = 500.0
    concurrency: int = 500
    duration_s: float = 60.0
    warmup_s: float = 5.0
    drain_s: float = 15.0
    poll_interval_s: float = 0.02
    connections_per_node: int = 32
    max_in_flight: int = 4096
    request_timeout_s: float = 30.0
    txs: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("open", "closed"):
            raise ValueError(f"mode must be 'open' or 'closed', got {self.mode!r}")
        if self.mode == "open" and not self.rate > 0:
            raise ValueError("open loop: rate must be > 0")
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if not self.duration_s > 0 or self.warmup_s < 0 or self.drain_s < 0:
            raise ValueError("duration must be > 0, warm-up and drain >= 0")

    def planned_txs(self) -> int:
        """How many transactions to pre-sign (``txs`` when given)."""
        if self.txs is not None:
            return self.txs
        run_s = self.warmup_s + self.duration_s
        if self.mode == "open":
            return math.ceil(self.rate * run_s) + 16
        return math.ceil(CLOSED_CEILING_TPS * run_s) + self.concurrency


def load_testnet(directory: str | os.PathLike[str]) -> tuple[str, list[NodeTarget], list[Path]]:
    """``(chain_id, targets, member key files)`` of a ``hygeia testnet init`` directory."""
    meta = read_testnet(Path(directory), need=("name", "api", "home"))
    if not isinstance(meta.get("chain_id"), str):
        raise TestnetError(f'{directory}: testnet.json has no string "chain_id"')
    targets: list[NodeTarget] = []
    keys: list[Path] = []
    for n in meta["nodes"]:
        token: str | None = None
        token_file = n.get("admin_token_file")
        if token_file:
            with contextlib.suppress(OSError):
                token = Path(token_file).read_text(encoding="utf-8").strip()
        targets.append(NodeTarget(n["name"], n["api"], n.get("admin"), token, n.get("home")))
        key = Path(n["home"]) / "member_key.json"
        if key.exists():
            keys.append(key)
    return str(meta["chain_id"]), targets, keys


# ------------------------------------------------------------------ pre-signing
@dataclass(frozen=True, slots=True)
class SignedTx:
    hash: str
    wire: bytes


def anchor_digest(salt: bytes, index: int) -> str:
    return hashlib.sha256(salt + index.to_bytes(8, "big")).hexdigest()


def _sign_range(
    seeds: Sequence[bytes], chain_id: str, salt: bytes, start: int, stop: int
) -> list[tuple[str, bytes]]:
    keys = [nacl.signing.SigningKey(s) for s in seeds]
    out: list[tuple[str, bytes]] = []
    for i in range(start, stop):
        body = {"digest": anchor_digest(salt, i)}
        tx = build_tx(chain_id, TX_TYPE, body, keys[i % len(keys)], i)
        out.append((tx.hash, tx.wire))
    return out


def presign(
    seeds: Sequence[bytes],
    chain_id: str,
    count: int,
    *,
    salt: bytes | None = None,
    workers: int | None = None,
) -> list[SignedTx]:
    """``count`` signed anchors of distinct digests; tx ``i`` is signed by ``seeds[i % K]``.

    Large batches are signed in ``workers`` processes (default: one per CPU),
    started with ``spawn``: a script calling this needs the usual
    ``if __name__ == "__main__":`` guard.
    """
    if not seeds:
        raise ValueError("presign: no signing key")
    if count < 0:
        raise ValueError("presign: count must be >= 0")
    salt = os.urandom(16) if salt is None else salt
    seeds = list(seeds)
    ranges = [(s, min(s + _PRESIGN_CHUNK, count)) for s in range(0, count, _PRESIGN_CHUNK)]
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers <= 1 or len(ranges) <= 1:
        parts = [_sign_range(seeds, chain_id, salt, a, b) for a, b in ranges]
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(ranges)), mp_context=ctx) as pool:
            futures = [pool.submit(_sign_range, seeds, chain_id, salt, a, b) for a, b in ranges]
            parts = [f.result() for f in futures]
    return [SignedTx(h, w) for part in parts for h, w in part]
