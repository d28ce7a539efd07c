"""The JSON bodies of the client and admin APIs, as functions of the parts they read.

Each function takes the node's parts it reads (the store, the genesis, the
mempool, the replica, ...) and returns what one route answers; none keeps
state or changes anything, so a test can call one with stand-ins.
``node.daemon.Node`` implements the handlers' ``NodeFacade`` by calling these
with its parts. The shapes are the public contract: docs/operator.md
("Monitor") and docs/dashboard.md describe the admin ones, the OpenAPI document
(``node.api.openapi``) the client ones.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from consensus.records import decode_stable
from consensus.replica import Replica
from node import __version__
from node.core.block import Block
from node.core.codec import parse_json
from node.core.outcome_proof import outcome_json
from node.core.proof import build_proof
from node.core.state_root import BlockDigests
from node.engine.applier import Tip
from node.engine.proof_archive import digests_key, stable_key
from node.ledger.domain import QueryFn
from node.ledger.domains.epoch_attest import links_through
from node.ledger.executor import result_key
from node.ledger.outcomes import REPLAY, result_record
from node.ledger.state import BlockState
from node.ledger.validators import EpochRecord, epoch_at, genesis_epoch, load_epochs
from node.mempool import Mempool
from node.net.peers import PeerInfo
from node.net.sync import BlockSync
from node.setup.genesis import Genesis
from storage.base import ChainStorage, ChainView


# ------------------------------------------------------------------ client API
def info(genesis: Genesis, height: int) -> dict[str, Any]:
    """``GET /v1/info``: what a client needs to build a transaction."""
    return {
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis.genesis_hash_hex(),
        "height": height,
        "version": __version__,
    }


def tx_status(store: ChainView, pool: Mempool, tx_hash: str) -> dict[str, Any]:
    """``GET /v1/txs/{hash}``: committed (or rejected) where, pending, or unknown. Below
    a state-synced node's base its location is the one its result records."""
    loc = store.tx_location(bytes.fromhex(tx_hash))
    raw = store.state_get(result_key(tx_hash))
    if loc is None and raw is not None:
        kept = parse_json(raw)
        loc = (int(kept["height"]), int(kept["index"]))
    if loc is not None:
        result = parse_json(raw) if raw is not None else None
        rejected = result is not None and result.get("status") == "rejected"
        return {
            "status": "rejected" if rejected else "committed",
            "height": loc[0],
            "index": loc[1],
            "result": result,
        }
    status = "pending" if tx_hash in pool else "unknown"
    return {"status": status, "height": None, "index": None, "result": None}


def read_block(store: ChainView, height: int) -> Block | None:
    """The stored block at ``height`` (None below 1 or above the tip)."""
    raw = store.block_by_height(height) if height >= 1 else None
    return Block.from_bytes(raw) if raw is not None else None


class NotBackfilled(LookupError):
    """A block below a state-synced node's base height (``ChainView.base_height``)."""

    def __init__(self, height: int, base: int) -> None:
        super().__init__(
            f"height {height} is below this node's base height {base}: it was state-synced "
            "from a snapshot and does not hold older blocks"
        )


def block_json(store: ChainView, tip_height: int, height: int | None) -> dict[str, Any] | None:
    """``GET /v1/blocks/{height}`` (None: ``latest``, the block at ``tip_height``);
    ``NotBackfilled`` below a state-synced node's base."""
    wanted = tip_height if height is None else height
    base = store.base_height()
    if 1 <= wanted < base:
        raise NotBackfilled(wanted, base)
    block = read_block(store, wanted)
    return block.to_json() if block is not None else None


def proof_json(
    store: ChainStorage, tx_hash: str, *, genesis_root: bytes, checkpoint_interval: int
) -> dict[str, Any] | None:
    """``GET /v1/proofs/{hash}``: the inclusion proof of a committed transaction, with
    the epoch links from genesis to its block's validator set and, once a stable
    checkpoint at or above the block is archived here, the proof of its outcome
    (one snapshot of the committed state). ``NotAttested`` while a link lacks its
    quorum on chain."""
    with store.snapshot() as view:
        loc = view.tx_location(bytes.fromhex(tx_hash))
        if loc is None:
            kept = view.state_get(result_key(tx_hash))
            if kept is not None:  # committed below a state-synced node's base
                raise NotBackfilled(int(parse_json(kept)["height"]), view.base_height())
            return None
        block = read_block(view, loc[0])
        if block is None:
            return None
        outcome = _outcome(view, block, loc[1], genesis_root, checkpoint_interval)
        checkpoint = block.height if outcome is None else outcome["checkpoint"]["height"]
        return build_proof(block, loc[1], links_through(BlockState(view), checkpoint), outcome)


MAX_CHECKPOINTS_TRIED = 64  # archived checkpoints looked for above a block


def _outcome(
    view: ChainView, block: Block, index: int, genesis_root: bytes, interval: int
) -> dict[str, Any] | None:
    """The proof of outcome of ``block``'s transaction ``index`` (``node/core/
    outcome_proof.py``) against the first archived stable checkpoint at or above
    the block, or None: none yet, or a digest this node lacks (below a state-synced
    node's base, or a block applied before proofs of outcome existed)."""
    h = block.height
    tip = view.tip_height()
    c = -(-h // interval) * interval
    raw = None
    for _ in range(MAX_CHECKPOINTS_TRIED):
        if c > tip:
            return None
        raw = view.proof_record(stable_key(c))
        if raw is not None:
            break
        c += interval
    if raw is None:
        return None
    stable = decode_stable(raw)
    digests: list[BlockDigests] = []
    for height in range(h, c + 1):
        d = view.proof_record(digests_key(height))
        if d is None:
            return None
        digests.append(BlockDigests.from_bytes(d))
    if h == 1:
        prev_root = genesis_root
    else:
        below = read_block(view, h - 1)
        if below is None:
            return None
        prev_root = bytes.fromhex(below.header.state_root)
    records: list[tuple[str, dict[str, Any]]] = []
    for i, raw_hash in enumerate(block.tx_hashes):
        hx = raw_hash.hex()
        kept = view.state_get(result_key(hx))
        record = parse_json(kept) if kept is not None else None
        if not isinstance(record, dict) or (record.get("height"), record.get("index")) != (h, i):
            record = result_record(REPLAY, h, i)  # a replay: the state keeps its first result
        records.append((hx, record))
    return outcome_json(
        tx_hash=block.tx_hashes[index].hex(),
        records=records,
        index=index,
        prev_state_root=prev_root,
        blocks=digests,
        checkpoint_height=c,
        signatures=[(cp.sender, cp.sig) for cp in stable.proof],
    )


def run_query(
    store: ChainStorage, fn: QueryFn, path: Mapping[str, str], query: Mapping[str, str]
) -> Any:
    """A ledger-domain query on a consistent snapshot of the committed state."""
    with store.snapshot() as view:
        return fn(BlockState(view), path, query)


def epochs(store: ChainStorage, genesis: Genesis) -> tuple[list[EpochRecord], int]:
    """The validator set's epochs and the tip height, from one snapshot of the committed
    state (before block 1 wrote epoch 0: genesis's validators as epoch 0)."""
    with store.snapshot() as view:
        records = load_epochs(BlockState(view))
        tip_height = view.tip_height()
    return records or [genesis_epoch(genesis.validators_json())], tip_height


def validator_set(
    records: Sequence[EpochRecord], tip_height: int, height: int | None
) -> dict[str, Any]:
    """``GET /v1/validators[?height=H]``: the set that certifies height H (default: the
    next block, tip + 1) as far as the state knows, and the committed change not in
    force for the next block yet (``pending``), if any."""
    current = epoch_at(records, tip_height + 1 if height is None else height)
    latest = records[-1]
    return {
        "epoch": current.epoch,
        "from_height": current.from_height,
        "validators": [v.to_json() for v in current.validators],
        "pending": latest.to_json() if latest.from_height > tip_height + 1 else None,
    }


def epoch_role(records: Sequence[EpochRecord], tip_height: int, node_id: bytes) -> tuple[int, str]:
    """(the epoch in force for the next block, ``"validator"`` if this node is in its set
    else ``"observer"``): what ``/status`` shows."""
    current = epoch_at(records, tip_height + 1)
    return current.epoch, "observer" if current.index_of(node_id.hex()) is None else "validator"


# ------------------------------------------------------------------ admin API
def status(
    *,
    node_id: bytes,
    name: str,
    chain_id: str,
    tip: Tip,
    replica: Replica | None,
    validator_index: int | None,
    validators: int,
    peers: int,
    sync: BlockSync,
    mempool_size: int,
    epoch: int,
    role: str,
) -> dict[str, Any]:
    """``GET /status`` (also what ``hygeia status`` prints). ``epoch`` and ``role``:
    ``epoch_role``."""
    return {
        "node_id": node_id.hex(),
        "name": name,
        "chain_id": chain_id,
        "height": tip.height,
        "epoch": epoch,
        "role": role,
        "last_block_hash": tip.block_hash,
        "last_block_time": tip.timestamp,
        "view": replica.view if replica else None,
        "primary": replica.primary if replica else None,
        "validator_index": validator_index,
        "validators": validators,
        "peers": peers,
        "syncing": sync.syncing,
        "sync": sync.progress(),
        "mempool_size": mempool_size,
        "version": __version__,
    }


def peers(
    genesis: Genesis, known: Iterable[PeerInfo], heights: Mapping[bytes, int]
) -> list[dict[str, Any]]:
    """``GET /peers``: every known peer, with its validator name and reported height."""
    names = {v.public_key: v.name for v in genesis.validators}
    out = []
    for peer in known:
        node_id = bytes.fromhex(peer.node_id)
        d = peer.to_dict()
        d["name"] = names.get(node_id, "")
        d["height"] = heights.get(node_id)
        out.append(d)
    return out


def consensus(
    replica: Replica | None,
    index: int | None,
    counts: Mapping[str, Any],
    divergence: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """``GET /consensus``: the replica's round and the consensus counts since start
    (``counts``: ``ConsensusCounts.summary()``, what ``/metrics`` exposes too)."""
    if replica is None:
        return {"validator": False}
    return {
        "validator": True,
        "index": index,
        "view": replica.view,
        "primary": replica.primary,
        "in_view_change": replica.in_view_change,
        "height": replica.height,
        "low_watermark": replica.low_watermark,
        "high_watermark": replica.high_watermark,
        "pending_requests": replica.pending_count,
        "in_flight": replica.in_flight(),
        **counts,
        "divergence": divergence,
    }


def mempool(pool: Mempool, now_ms: int) -> dict[str, Any]:
    """``GET /mempool``: size, bytes, the oldest transaction's age, refusals by code."""
    return {
        "size": len(pool),
        "bytes": pool.total_bytes,
        "oldest_age_ms": pool.oldest_age_ms(now_ms),
        "rejected": dict(sorted(pool.rejected.items())),
    }


def validators(
    records: Sequence[EpochRecord], tip_height: int, connected: Collection[bytes], node_id: bytes
) -> list[dict[str, Any]]:
    """``GET /validators``: the set in force for the next block (with its indices in
    that epoch), which is us, which have a link."""
    current = epoch_at(records, tip_height + 1).validators
    return [
        {
            "index": i,
            "name": v.name,
            "member": v.member,
            "node_key": v.node_key,
            "p2p": v.p2p,
            "self": v.node_key == node_id.hex(),
            "connected": bytes.fromhex(v.node_key) in connected,
        }
        for i, v in enumerate(current)
    ]


def recent_blocks(store: ChainView, tip_height: int, limit: int) -> list[dict[str, Any]]:
    """``GET /blocks/recent``: the last ``limit`` committed blocks, newest first, in brief."""
    out: list[dict[str, Any]] = []
    for h in range(tip_height, max(tip_height - limit, 0), -1):
        block = read_block(store, h)
        if block is None:
            break
        hd = block.header
        out.append(
            {
                "height": h,
                "hash": block.hash,
                "time": hd.timestamp,
                "view": hd.view,
                "proposer": hd.proposer,
                "txs": len(block.tx_hashes),
            }
        )
    return out
