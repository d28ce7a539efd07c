"""Executes committed blocks: the ledger's single entry point for the node.

For each transaction in block order: replay check (its hash committed before,
or earlier in this block), schema, authorisation, apply — inside a per-tx
savepoint, so a rejected transaction changes nothing but its own recorded
result. Results are state too (``txr/<hash>``), so they are covered by the
state root and every node answers ``/v1/txs/{hash}`` the same way; they are
also the leaves of the block's results root (``node/ledger/outcomes.py``),
which the state root covers so that a proof can show one result alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from node.core.codec import CodecError, canonical_json
from node.core.state_root import BlockDigests, chain_state_root
from node.ledger.context import BlockInfo, ExecContext, LedgerTx
from node.ledger.domains import DOMAINS
from node.ledger.members import put_member
from node.ledger.outcomes import REPLAY, result_leaf, result_record, results_root
from node.ledger.registry import Registry
from node.ledger.result import Rejection, TxResult
from node.ledger.state import (
    TIME_KEY,
    BlockState,
    StateReader,
    block_time,
    writes_digest,
)
from node.ledger.state_hash import STATE_HASH_KEY, StateHash
from node.ledger.validators import EpochRule, genesis_epoch, put_epoch

# what ``check_signer`` hands ``authorize``: no rule reads it (nor the block)
_NO_EPOCH_RULE = EpochRule(checkpoint_interval=1, watermark_window=0)


def default_registry() -> Registry:
    reg = Registry()
    for domain in DOMAINS:
        for tx_type in domain.tx_types:
            reg.register(tx_type)
    return reg


def result_key(tx_hash: str) -> bytes:
    return b"txr/" + tx_hash.encode()


@dataclass(frozen=True)
class BlockOutcome:
    results: list[TxResult]
    writes: list[tuple[bytes, bytes | None]]
    state_root: bytes
    digests: BlockDigests  # what the block adds to the state root chain


class Ledger:
    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or default_registry()

    def check_tx(self, tx: LedgerTx) -> None:
        """Stateless admission check (the mempool's): known type, valid body."""
        self.registry.check_body(tx.type, tx.body)

    def check_signer(
        self,
        committed: StateReader,
        tx: LedgerTx,
        genesis_members: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Admission check against the committed state: may ``tx.signer`` sign this type?

        Runs the type's own ``authorize`` (the rule execution applies: an active
        member holding one of the type's roles, or an enrolled patient key for
        the patient-signed types) on a read-only view of ``committed``, so the
        rules are not written twice. Every ``authorize`` reads the signer's member
        or patient record and nothing else (one or two lookups; ``epoch.attest``
        reads the one epoch record its signer must be a validator of), which is what
        makes this cheap enough for admission. It is not the final word: state
        moves on between admission and execution, where ``authorize`` runs again.
        Raises ``Rejection("signer-not-allowed", ...)``; the body must have passed
        ``check_tx`` first. Before block 1 the state has no members yet (block 1
        writes those of genesis): pass them as ``genesis_members`` until then.
        """
        tx_type = self.registry.get(tx.type)
        state = BlockState(committed)
        for member in genesis_members:
            put_member(state, {**member, "status": "active"})
        # no rule reads the block (tests/unit/test_admission.py checks what they read)
        nowhere = BlockInfo(chain_id="", height=0, time_ms=0, proposer=-1)
        try:
            tx_type.authorize(ExecContext(nowhere, state, tx, 0, _NO_EPOCH_RULE))
        except Rejection as rej:
            raise Rejection("signer-not-allowed", f"{tx.type}: {rej.message}") from None

    @staticmethod
    def _monotonic_time(state: BlockState, block: BlockInfo) -> BlockInfo:
        """Block time never goes backwards: the later of the certified timestamp and
        the previous block's time (a Byzantine primary may skew a timestamp within
        the allowed clock drift; consent periods must not be reopened by it)."""
        prev = block_time(state)
        if block.time_ms <= prev:
            return replace(block, time_ms=prev)
        state.put(TIME_KEY, block.time_ms)
        return block

    def execute_block(
        self,
        base: StateReader,
        block: BlockInfo,
        txs: Sequence[LedgerTx],
        prev_root: bytes,
        is_committed: Callable[[str], bool],
        genesis_members: Sequence[dict[str, Any]] = (),
        genesis_validators: Sequence[dict[str, Any]] = (),
        *,
        epoch_rule: EpochRule,
    ) -> BlockOutcome:
        """Execute one block. Block 1 also writes the founding members of genesis and
        its validators as epoch 0 (``genesis_members``, ``genesis_validators``: pass
        them at height 1 only). ``epoch_rule`` is genesis's: where a validator change
        takes effect."""
        state = BlockState(base)
        for member in sorted(genesis_members, key=lambda m: str(m["id"])):
            put_member(state, {**member, "status": "active"})
        if genesis_validators:
            put_epoch(state, genesis_epoch(genesis_validators))
        block = self._monotonic_time(state, block)
        results: list[TxResult] = []
        leaves: list[bytes] = []
        seen: dict[str, None] = {}
        for index, tx in enumerate(txs):
            state.begin_tx()
            try:
                if tx.hash in seen or is_committed(tx.hash):
                    raise Rejection(REPLAY.code, REPLAY.message)
                seen[tx.hash] = None
                tx_type = self.registry.get(tx.type)
                tx_type.schema.check(tx.body, "")
                ctx = ExecContext(block, state, tx, index, epoch_rule)
                tx_type.authorize(ctx)
                result = TxResult.ok(tx_type.apply(ctx))
            except Rejection as err:
                state.rollback_tx()
                result = TxResult.rejected(err)
            except CodecError as err:
                # a value the codec refuses (e.g. a total past 64 bits): the same on
                # every node, so reject the transaction instead of halting the chain
                state.rollback_tx()
                result = TxResult.rejected(Rejection("invalid-value", str(err)))
            record = canonical_json(result_record(result, block.height, index))
            if result.code != REPLAY.code:
                state.put_raw(result_key(tx.hash), record)
            leaves.append(result_leaf(tx.hash, record))
            results.append(result)
        content = self._update_state_hash(state)
        writes = state.writes()
        digests = BlockDigests(writes_digest(writes), content.digest(), results_root(leaves))
        return BlockOutcome(
            results, writes, chain_state_root(prev_root, block.height, digests), digests
        )

    @staticmethod
    def _update_state_hash(state: BlockState) -> StateHash:
        """The state's LtHash after this block's writes (node/ledger/state_hash.py),
        written under its key: the previous value plus the new items less the old."""
        before = StateHash.from_state_value(state.stored(STATE_HASH_KEY))
        after = before.updated(
            (key, state.stored(key), value)
            for key, value in state.writes()
            if key != STATE_HASH_KEY
        )
        state.put_raw(STATE_HASH_KEY, after.to_state_value())
        return after
