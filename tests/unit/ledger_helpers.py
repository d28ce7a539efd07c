"""Shared fixtures of the ledger unit tests: run a block on a memory store, call a query.

Every domain's tests drive the real ``Ledger`` the way the node does: execute a
block over the committed state (replay checked against the store), then commit
its writes. Only the block time and the founding members differ between them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from node.core.tx import Tx
from node.ledger.context import BlockInfo
from node.ledger.domain import Domain
from node.ledger.executor import BlockOutcome, Ledger
from node.ledger.state import BlockState
from node.ledger.validators import EpochRule
from node.setup.genesis import default_consensus_params
from storage.memory import MemoryChainStore

# genesis's default checkpoint interval and watermark window
DEFAULT_EPOCH_RULE = EpochRule.of(default_consensus_params())


def execute_and_commit(
    store: MemoryChainStore,
    ledger: Ledger,
    block: BlockInfo,
    txs: Sequence[Tx],
    prev_root: bytes,
    members: Sequence[dict[str, Any]],
    validators: Sequence[dict[str, Any]] = (),
    epoch_rule: EpochRule = DEFAULT_EPOCH_RULE,
) -> BlockOutcome:
    """Execute ``txs`` as ``block`` over ``store`` and commit the block; the founding
    ``members`` and genesis ``validators`` (epoch 0) are written at height 1 only."""
    first = block.height == 1
    out = ledger.execute_block(
        store,
        block,
        list(txs),
        prev_root,
        lambda h: store.tx_location(bytes.fromhex(h)) is not None,
        genesis_members=members if first else (),
        genesis_validators=validators if first else (),
        epoch_rule=epoch_rule,
    )
    store.commit_block(
        block.height,
        hashlib.sha256(str(block.height).encode()).digest(),
        b"block",
        [t.hash_bytes for t in txs],
        out.writes,
    )
    return out


def run_query(
    domain: Domain,
    state: BlockState,
    path: str,
    match: Mapping[str, str],
    params: Mapping[str, str] | None = None,
) -> Any:
    """Call the domain's query registered under ``path`` as the API would."""
    for q in domain.queries:
        if q.path == path:
            return q.fn(state, match, params or {})
    raise KeyError(path)
