"""The node daemon: wires storage, ledger, replica, network, sync and HTTP together.

``Node`` owns the event loop's work for one home. ``start()`` opens the
database (a second process on the same home fails at once), rebuilds the
replica from its persisted records and the stored chain, starts the peer
transport (dialing every other validator of genesis and the configured
peers), the consensus driver, block sync and both HTTP listeners, in that
order, so the node never answers before it can serve. ``stop()`` does the
reverse: stop accepting requests, let the driver finish the input in hand (a
block being written), close the network, close LevelDB.

Transactions enter through ``submit_tx`` (client API) or gossip: decode and
chain check, schema check, signature (in a worker thread), mempool
admission (which also asks the ledger whether the signer may sign the type,
by the committed state: a random key's transaction is refused, not ordered and
stored as rejected; gossip is checked before its signatures, and a peer that
sends such transactions loses one point a frame), then the replica's request
queue; each admitted transaction is gossiped once per link in small batches.

Consensus messages from a validator's link: the sender must be the link's
validator; the message must fit the peer's per-second budget
(``node.net.budget``: dropped before anything costly, repeated excess is
penalised); every signature in it is checked in the verify pool
(``node.net.signatures``: a bad signature of its own drops it and penalises
the peer) and only then does it reach the consensus driver, whose replica
finds those signatures in the pre-verified cache instead of checking them on
the event loop. The replica's refusals and equivocation evidence come back
through ``DriverHooks.blame`` and are scored against the validator's link
(``node.net.penalties.consensus_points``); a validator over the penalty
threshold is disconnected and banned for the transport's ban period, then
accepted again.

The replica's ``max_message_bytes`` is the peer frame limit less a
``ConsensusFrame``'s own bytes, so the replica refuses at start a
configuration whose largest messages could not be sent.

A write to the data directory that fails (a full disk) stops the node's writing,
not the node: the driver suspends itself, or a non-validator's block loop
pauses, and ``node.engine.storage_recovery`` logs it once, reports it on
``/health`` and retries; once the database writes again, ``_resume_writing``
reloads the tip and starts a fresh replica and driver from the persisted
records, as a restart would, and block sync catches up (docs/operator.md,
"A full disk").

The HTTP handlers reach the node through ``NodeFacade`` (node/api/facade.py):
``Node`` hands each JSON view of node/api/views.py the parts it reads, and the
driver's observer is the node's ``NodeMetrics``, whose ``ConsensusCounts`` both
``/consensus`` and ``/metrics`` read.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from consensus.config import ConsensusConfig
from consensus.crypto import Verifier
from consensus.epochs import Epoch, signing_domain
from consensus.messages import CommittedBlock, Message
from consensus.replica import ChainTip, Replica
from node.api import views
from node.api.admin import admin_app
from node.api.client import client_app
from node.api.errors import ApiError, api_errors
from node.api.health import health_reasons
from node.api.listener import (
    ListenerSection,
    check_open_files,
    open_files_needed,
    start_listener,
)
from node.core.block import Block
from node.core.codec import parse_json
from node.core.keys import KeySigner, ValidatorVerifier, load_key, verify_batch
from node.core.tx import MAX_TX_BYTES, Tx, TxError, TxPayloadRules, decode_tx
from node.engine.applier import BlockApplier, genesis_root
from node.engine.driver import ConsensusDriver, DriverHooks, wall_clock_ms
from node.engine.epoch_attester import EpochAttester
from node.engine.epoch_keys import EpochKeys
from node.engine.epoch_switch import EpochSwitch
from node.engine.storage_recovery import StorageRecovery
from node.exchange.service import DocumentExchange, ExchangeLimits
from node.exchange.store import KEY_FILE as DOCUMENT_KEY_FILE
from node.exchange.store import DocumentStore, DocumentStoreError
from node.ledger.domain import QueryFn
from node.ledger.domains.ehr import erased_records
from node.ledger.domains.nodes import registered_node
from node.ledger.executor import BlockOutcome, Ledger
from node.ledger.result import Rejection
from node.ledger.state import BlockState
from node.ledger.validators import genesis_epoch, load_epochs
from node.mempool import Mempool, MempoolError, MempoolTx
from node.net.addr import parse_host_port
from node.net.budget import TrafficBudget, Verdict, consensus_budget
from node.net.penalties import consensus_points
from node.net.signatures import PreverifiedSignatures, Triple
from node.net.sync import BlockServer, BlockSync
from node.net.transport import Transport
from node.net.wire import (
    BlocksFrame,
    ChunkFrame,
    ConsensusFrame,
    DocumentFrame,
    FrameError,
    GetBlocksFrame,
    GetChunkFrame,
    GetDocumentFrame,
    GetSnapshotFrame,
    GetStableFrame,
    SnapshotFrame,
    StableFrame,
    StatusFrame,
    TxsFrame,
    decode_frame,
    encode_frame,
    gossip_frames,
)
from node.ops import logs
from node.ops.metrics import NodeMetrics
from node.setup.config import NodeConfig
from node.setup.genesis import Genesis, genesis_hash, load_genesis, replica_config
from node.setup.home import read_admin_token
from node.statesync.runner import StateSync
from node.statesync.service import SnapshotService
from node.statesync.store import SnapshotStore
from storage.chain import ChainStore
from storage.errors import StorageError

log = structlog.get_logger("hygeia.node")

GOSSIP_INTERVAL_S = 0.005
STATUS_INTERVAL_S = 1.0
# a peer over the penalty threshold is disconnected and refused this long, then
# accepted again (no ban is for good: an honest node scored by mistake comes back)
PEER_BAN_SECONDS = 600.0


class Node:
    """One node of one home: its parts, their lifecycle, and the callbacks between them."""

    def __init__(self, cfg: NodeConfig, *, clock: Any = wall_clock_ms) -> None:
        self.cfg = cfg
        self.clock = clock
        self.genesis: Genesis = load_genesis(cfg.genesis_path)
        self.key = load_key(cfg.node_key_path)
        self.node_id = bytes(self.key.verify_key)
        self.admin_token = read_admin_token(cfg.admin_token_path)
        self.me = self.genesis.validator_index(self.node_id)
        self.consensus_config = replica_config(self.genesis, cfg.p2p.max_frame_bytes)
        self.validator_ids = self.genesis.validator_public_keys()
        # the replica's verifier: signatures checked in the verify pool are trusted
        self.signatures = PreverifiedSignatures(
            ValidatorVerifier(self.validator_ids), self.validator_ids
        )
        self.budget = TrafficBudget(
            consensus_budget(self.consensus_config, cfg.p2p.max_frame_bytes)
        )
        self.chain_id = self.genesis.chain_id
        # admission may be stricter than the protocol, never looser: what a valid
        # block may hold (MAX_TX_BYTES) must not depend on a node's own setting
        self._max_tx = min(cfg.mempool.max_tx_bytes, MAX_TX_BYTES)
        self.last_commit_ms = clock()  # since start, when no block is committed yet
        self.metrics = NodeMetrics()
        self._tasks: list[asyncio.Task[None]] = []
        self._runners: list[web.AppRunner] = []
        self._stopped = False
        self._gossip_queued = asyncio.Event()  # set when the mempool queues a tx for gossip
        self.store: ChainStore | None = None
        self.driver: ConsensusDriver | None = None
        self.recovery: StorageRecovery | None = None
        # one replica per epoch, or none where this node only follows (set at start)
        self.switch: EpochSwitch | None = None
        # a joining node's state sync while it runs (node/statesync/runner.py)
        self.statesync: StateSync | None = None
        # the document store and its exchange (node/exchange/), once started
        self.documents: DocumentExchange | None = None

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        cfg = self.cfg
        self._db_exec = ThreadPoolExecutor(1, thread_name_prefix="hygeia-db")
        self._verify_exec = ThreadPoolExecutor(2, thread_name_prefix="hygeia-verify")
        self.store = ChainStore.open(cfg.data_dir)
        self.recovery = StorageRecovery(
            self.store, cfg.data_dir, self._db_exec, self._resume_writing
        )
        self.rules = TxPayloadRules(self.chain_id, executor=self._verify_exec)
        self.ledger = Ledger()
        self.applier = BlockApplier(self.store, self.genesis, self.ledger, self.rules)
        self.epochs = EpochKeys(
            self.consensus_config, self.applier.epoch_schedule(), self.signatures
        )
        self.mempool = Mempool(
            cfg.mempool_limits(),
            is_committed=self.applier.is_committed,
            check_signer=self._check_signer,
        )
        host, port = parse_host_port(cfg.p2p.listen, allow_zero_port=True)
        self.transport = Transport(
            self.key,
            self.chain_id,
            host,
            port,
            allowed=self._allowed_peer,
            on_frame=self._on_frame,
            on_peer_up=self._on_peer_up,
            on_peer_down=self._on_peer_down,
            max_frame_bytes=cfg.p2p.max_frame_bytes,
            send_queue_limit=cfg.p2p.send_queue_limit,
            backoff_base=cfg.p2p.dial_backoff_min_ms / 1000,
            backoff_cap=cfg.p2p.dial_backoff_max_ms / 1000,
            ban_seconds=PEER_BAN_SECONDS,
            genesis_hash=genesis_hash(self.genesis),
        )
        self.sync = BlockSync(
            self.consensus_config,
            self.signatures,
            send=self.transport.send,
            feed=self._feed_synced,
            payload_root=self.rules.payload_root,
            penalise=self.transport.penalise,
            parallel=cfg.sync.parallel_peers,
            chunk=cfg.sync.batch_size,
            certifier=lambda h: self.epochs.certifier(h, self.applier.tip.height),
        )
        self.sync.on_committed(self.applier.tip.height, self.clock())
        self.block_server = BlockServer(
            self._read_blocks,
            self.transport.send,
            self.transport.wait_for_room,
            self.transport.penalise,
            room_bytes=cfg.p2p.max_frame_bytes,
        )
        self.attester = EpochAttester(self.chain_id, self.key, self._submit_own)
        self._snap_exec = ThreadPoolExecutor(1, thread_name_prefix="hygeia-snapshot")
        self._doc_exec = ThreadPoolExecutor(1, thread_name_prefix="hygeia-documents")
        self.snapshot_service = SnapshotService(
            chain_id=self.chain_id,
            store=self.store,
            snapshots=SnapshotStore(cfg.home / "snapshots", cfg.sync.snapshot_keep),
            every=cfg.sync.snapshot_interval * self.consensus_config.checkpoint_interval,
            chunk_bytes=cfg.sync.snapshot_chunk_bytes,
            executor=self._snap_exec,
            send=self.transport.send,
            connected=self.transport.connected,
            penalise=self.transport.penalise,
            schedule=lambda: self.epochs.schedule,
            genesis_root=genesis_root(self.genesis),
        )
        self.documents = self._new_document_exchange()
        self._finish_erasures()
        if cfg.sync.state_sync and self.store.tip_height() == 0:
            self.statesync = self._new_state_sync()
        else:
            self.driver = self._new_driver()
        logs.bind_node(self.cfg.node.name)
        logs.bind_height(self.applier.tip.height)
        await self.transport.start()
        self._dial_validators()
        for peer in cfg.p2p.peers:
            self.transport.add_peer(bytes.fromhex(peer.id), peer.address)
        if self.driver is not None:
            await self.driver.start()
        else:
            self._tasks.append(asyncio.create_task(self._state_sync(), name="state-sync"))
        self._tasks.append(asyncio.create_task(self._gossip_loop(), name="gossip"))
        self._tasks.append(asyncio.create_task(self._status_loop(), name="status"))
        check_open_files(open_files_needed(cfg, len(self.validator_ids)))
        await self._serve(client_app(self, clock_ms=self.clock), cfg.api)
        mutations = self if cfg.admin.enable_mutations else None
        await self._serve(admin_app(self, self.admin_token, mutations), cfg.admin)
        log.info(
            "node started",
            node_id=self.node_id.hex(),
            validator=self.me,
            height=self.applier.tip.height,
            p2p=self.transport.address,
            api=cfg.api.listen,
            admin=cfg.admin.listen,
        )

    def _new_driver(self) -> ConsensusDriver:
        """The epoch's replica (or none: this node follows) rebuilt from the persisted
        records and the stored tip, and its driver (node/engine/epoch_switch.py)."""
        assert self.store is not None and self.recovery is not None
        signer = KeySigner(self.key)
        epochs = self.epochs

        def make(
            config: ConsensusConfig,
            index: int,
            records: Mapping[bytes, bytes],
            tip: ChainTip,
            end: int | None,
        ) -> Replica:
            epoch = epochs.epoch(config.epoch)
            assert epoch is not None
            return Replica(
                config,
                index,
                signer,
                epochs.signatures(epoch),
                self.rules,
                records=records,
                tip=tip,
                epoch_end=end,
            )

        def verifier_for(epoch: Epoch) -> Verifier:
            return epochs.signatures(epoch)

        self.switch = EpochSwitch(
            self.consensus_config,
            self.node_id,
            schedule=lambda: epochs.schedule,
            make_replica=make,
            verifier_for=verifier_for,
            rules=self.rules,
            records=self.store.consensus_records(),
            tip=self.applier.chain_tip(),
        )
        return ConsensusDriver(
            self.switch,
            self.applier,
            self.store,
            self.switch,
            DriverHooks(
                send=self.transport.send,
                on_block=self._on_block,
                on_need_sync=self._on_need_sync,
                observer=self.metrics,
                max_frame_bytes=self.cfg.p2p.max_frame_bytes,
                blame=self._blame,
                on_storage_failure=self.recovery.report,
            ),
            self._db_exec,
            clock=self.clock,
        )

    def _new_state_sync(self) -> StateSync:
        return StateSync(
            chain_id=self.chain_id,
            genesis_keys=self.genesis.validator_public_keys(),
            payload_root=self.rules.payload_root,
            max_chunk_bytes=self.cfg.p2p.max_frame_bytes,
            store=self._chain(),
            send=self.transport.send,
            connected=self.transport.connected,
            penalise=self.transport.penalise,
            verify_exec=self._verify_exec,
            db_exec=self._db_exec,
            clock=self.clock,
            parallel=self.cfg.sync.parallel_peers,
        )

    async def _state_sync(self) -> None:
        """Restore the newest verified snapshot (node/statesync/runner.py), then run as a
        node that is behind: its replica (or follower) from the snapshot's height, and
        block sync from there."""
        assert self.statesync is not None
        snapshot = await self.statesync.run()
        self.applier.reload()
        tip = self.applier.tip.height
        self.epochs.refresh(self.applier.epoch_schedule())
        self.sync.on_committed(tip, self.clock())
        logs.bind_height(tip)
        self.driver = self._new_driver()
        await self.driver.start()
        self._dial_validators()
        for peer in self.transport.connected():
            self.transport.send(peer, self._status_frame())
        log.info(
            "state sync done: following the chain",
            height=tip,
            epoch=snapshot.epoch.number,
            role="validator" if self._index() is not None else "observer",
        )

    async def _resume_writing(self) -> None:
        """The database was reopened after a failed write (``StorageRecovery``): the tip
        as it holds it, and for a validator a fresh replica and driver from the
        persisted records, as at start, given the pending transactions. Raises
        ``StorageWriteError`` if the new driver's first write fails."""
        before = self.applier.tip.height
        self.applier.reload()
        tip = self.applier.tip.height
        if tip != before:  # the write that failed had landed after all
            self.sync.on_committed(tip, self.clock())
            logs.bind_height(tip)
        if self.driver is None:
            return
        old = self.driver
        await old.stop()
        self.driver = self._new_driver()
        self.driver.stats = old.stats
        await self.driver.start()
        for tx in self.mempool.pending():
            if not self.applier.is_committed(tx.hash):
                self.driver.submit_request(tx.wire)
        log.info("consensus resumed", height=tip, view=self._view())

    async def _serve(self, app: web.Application, section: ListenerSection) -> None:
        # connection caps, read and keep-alive timeouts: node/api/listener.py
        self._runners.append(await start_listener(app, section))

    async def stop(self) -> None:
        """Clean shutdown; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        for runner in self._runners:  # stop accepting requests first
            await runner.cleanup()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.block_server.stop()
        if self.documents is not None:
            await self.documents.close()
        if self.recovery is not None:
            await self.recovery.stop()
        if self.driver is not None:
            await self.driver.stop()  # finishes the block being written
        await self.transport.stop()
        self._snap_exec.shutdown(wait=True)
        self._doc_exec.shutdown(wait=True)
        self._db_exec.shutdown(wait=True)
        self._verify_exec.shutdown(wait=True)
        if self.store is not None:
            self.store.close()
        log.info("node stopped", height=self.applier.tip.height)

    @property
    def failed(self) -> BaseException | None:
        return self.driver.fatal if self.driver is not None else None

    def _view(self) -> int:
        return self.switch.view if self.switch is not None else 0

    def _replica(self) -> Replica | None:
        """The replica of the epoch in force (None: this node follows)."""
        return self.switch.replica if self.switch is not None else None

    def _index(self) -> int | None:
        """Our index in the set in force for the next block (None: not a validator)."""
        return self.epochs.schedule.at(self.applier.tip.height + 1).index_of(self.node_id)

    # ----------------------------------------------------------- peers
    def _allowed_peer(self, node_id: bytes) -> bool:
        """Who may link: a validator of the set in force or of a committed later one, a
        node a member registered on chain, or a peer of our own config."""
        if node_id in self.epochs.current_keys(self.applier.tip.height):
            return True
        if any(bytes.fromhex(p.id) == node_id for p in self.cfg.p2p.peers):
            return True
        return self.store is not None and registered_node(self.store, node_id.hex()) is not None

    def _dial_validators(self) -> None:
        """Dial every validator of the sets in force and to come, at the address the
        chain holds for it; stop dialling (and drop) the ones no longer there."""
        assert self.store is not None
        keys = self.epochs.current_keys(self.applier.tip.height)
        # our own config's address of a node wins (a proxy, a private route)
        configured = {bytes.fromhex(p.id) for p in self.cfg.p2p.peers}
        records = load_epochs(BlockState(self.store))  # none before block 1: genesis's
        for record in records or [genesis_epoch(self.genesis.validators_json())]:
            for v in record.validators:
                key = bytes.fromhex(v.node_key)
                if key in keys and key != self.node_id and key not in configured:
                    self.transport.add_peer(key, v.p2p)
        self._drop_unallowed()

    def _drop_unallowed(self) -> None:
        """Stop dialling, and close the links of, the nodes the chain no longer allows
        (a validator removed, a node unregistered)."""
        for peer in sorted(set(self.transport.dialled()) | set(self.transport.connected())):
            if not self._allowed_peer(peer):
                self.transport.remove_peer(peer, "no longer a validator or registered node")

    def _on_peer_up(self, peer: bytes) -> None:
        """A new link: our height, and every pending transaction (gossip goes once
        per link, and this link did not exist when they were admitted)."""
        self.transport.send(peer, self._status_frame())
        for frame in gossip_frames(
            [tx.wire for tx in self.mempool.pending()], self.transport.max_frame_bytes
        ):
            self.transport.send(peer, frame)

    def _new_document_exchange(self) -> DocumentExchange:
        """The document store and its exchange (node/exchange/service.py); the store's
        key lies beside the node key."""
        max_frame = self.cfg.p2p.max_frame_bytes
        store = DocumentStore.open(
            self.cfg.home, key_path=self.cfg.node_key_path.parent / DOCUMENT_KEY_FILE
        )
        return DocumentExchange(
            store,
            me=self.node_id,
            state=self._chain,
            height=lambda: self.applier.tip.height,
            submit=self.submit_tx,
            send=self.transport.send,
            connected=self.transport.connected,
            wait_for_room=self.transport.wait_for_room,
            clock_ms=self.clock,
            executor=self._doc_exec,
            limits=ExchangeLimits(
                piece_bytes=min(1 << 20, max_frame - (64 << 10)), room_bytes=max_frame
            ),
            observe=lambda operation, result: self.metrics.documents.labels(
                operation, result
            ).inc(),
        )

    def _finish_erasures(self) -> None:
        """Erase from the store every record the chain says is erased: a crash between
        a block's commit and its erasure (``_erase_documents``), or a failed erasure,
        is made good at the next start (a record with nothing stored costs a lookup)."""
        if self.documents is None:
            return
        for record_id in erased_records(BlockState(self._chain())):
            try:
                erased = self.documents.store.erase_record(record_id)
            except DocumentStoreError as exc:
                log.error("cannot erase a record's documents", record_id=record_id, error=str(exc))
                continue
            if erased:
                log.info("record erased at start", record_id=record_id, versions=len(erased))

    def _erase_documents(self, block: Block, outcome: BlockOutcome) -> None:
        """Delete from the store every record this block's ``record.erase`` erased."""
        if self.documents is None:
            return
        for wire, result in zip(block.txs, outcome.results, strict=True):
            if result.status != "ok" or b'"type":"record.erase"' not in wire:
                continue
            record_id = str(parse_json(wire)["body"]["record_id"])
            try:
                erased = self.documents.store.erase_record(record_id)
            except DocumentStoreError as exc:
                log.error("cannot erase a record's documents", record_id=record_id, error=str(exc))
                continue
            log.info("record erased", record_id=record_id, versions=len(erased))

    def _on_peer_down(self, peer: bytes) -> None:
        if self.documents is not None:
            self.documents.on_peer_down(peer)
        self.sync.on_peer_down(peer)
        self.snapshot_service.forget(peer)
        if self.statesync is not None:
            self.statesync.on_peer_down(peer)
        self.block_server.forget(peer)
        self.budget.forget(peer)

    def _status_frame(self) -> bytes:
        return encode_frame(StatusFrame(self.applier.tip.height, self._view()))

    async def _on_frame(self, peer: bytes, data: bytes) -> None:
        try:
            frame = decode_frame(data)
        except FrameError as exc:
            self.metrics.rejected_frames.labels("malformed").inc()
            self.transport.penalise(peer, str(exc))
            return
        if isinstance(frame, ConsensusFrame):
            await self._on_consensus(peer, frame.message, frame.epoch, len(data))
        elif isinstance(frame, TxsFrame):
            await self._on_gossiped_txs(peer, frame.txs)
        elif isinstance(frame, StatusFrame):
            if self.driver is not None:  # not while a state sync restores the chain
                self.sync.on_status(peer, frame.height, self.clock())
        elif isinstance(frame, GetSnapshotFrame):
            self.snapshot_service.serve_manifest(peer)
        elif isinstance(frame, GetChunkFrame):
            self.snapshot_service.serve_chunk(peer, frame.height, frame.index)
        elif isinstance(frame, SnapshotFrame):
            if self.statesync is not None:
                self.statesync.on_manifest(peer, frame.manifest)
        elif isinstance(frame, ChunkFrame):
            if self.statesync is not None:
                self.statesync.on_chunk(peer, frame.height, frame.index, frame.data)
        elif isinstance(frame, GetStableFrame):
            self.snapshot_service.serve_stable(peer, frame.height)
        elif isinstance(frame, StableFrame):
            self.snapshot_service.on_stable(peer, frame.record)
        elif isinstance(frame, GetDocumentFrame):
            if self.documents is not None:
                self.documents.on_get_document(peer, frame)
        elif isinstance(frame, DocumentFrame):
            reason = self.documents.on_document(peer, frame) if self.documents else None
            if reason is not None:
                self.transport.penalise(peer, reason)
        elif isinstance(frame, GetBlocksFrame):
            # answered lazily, one chunk at a time as the peer reads (BlockServer)
            self.block_server.on_request(peer, frame.start, frame.count)
        elif isinstance(frame, BlocksFrame):
            # their certificates' signatures in the verify pool; sync (then the
            # replica) finds them checked
            loop = asyncio.get_running_loop()
            triples = await loop.run_in_executor(
                self._verify_exec, self._certificate_triples, frame.blocks
            )
            self.signatures.remember(triples)
            self.sync.on_blocks(peer, frame.blocks, self.clock())

    def _certificate_triples(self, blocks: list[bytes]) -> list[Triple]:
        """The good commit signatures of ``blocks`` (in a worker thread; a block that
        does not decode is left to sync, which penalises it)."""
        triples: list[Triple] = []
        tip = self.applier.tip.height
        for raw in blocks:
            try:
                committed = Block.from_bytes(raw).committed()
            except Exception:  # BlockError and the like: sync refuses it and penalises
                continue
            sets = self.epochs.certifier(committed.height, tip)
            if sets is None:  # beyond the horizon: checked once its set is known
                continue
            config, signatures = sets
            triples.extend(signatures.check(committed, config.signing_domain))
        return triples

    async def _on_consensus(self, peer: bytes, msg: Message, epoch: int, size: int) -> None:
        """Sender, budget, signatures (in the verify pool), then the driver. A message
        of an epoch this node does not know yet goes to the driver unchecked: the
        epoch's replica checks it when the node gets there."""
        known = self.epochs.epoch(epoch)
        if known is not None and known.index_of(peer) != msg.sender:
            self.metrics.rejected_frames.labels("consensus-sender").inc()
            self.transport.penalise(peer, "consensus message not from the peer's validator index")
            return
        if self.driver is None:
            return
        verdict = self.budget.admit(peer, type(msg).__name__, size, time.monotonic())
        if verdict is not Verdict.ADMIT:
            self.metrics.rejected_frames.labels("over-budget").inc()
            if verdict is Verdict.PENALISE:
                self.transport.penalise(
                    peer, "consensus traffic over budget", self.budget.budget.penalty_points
                )
            return
        if known is not None:
            signatures = self.epochs.signatures(known)
            domain = signing_domain(self.chain_id, epoch)
            loop = asyncio.get_running_loop()
            good, triples = await loop.run_in_executor(
                self._verify_exec, signatures.preverify, msg, domain
            )
            signatures.remember(triples)
            if not good:
                self.metrics.rejected_frames.labels("bad-signature").inc()
                self.transport.penalise(
                    peer, "consensus: bad-signature", consensus_points("bad-signature")
                )
                return
        if self.driver is not None:  # counts it (ConsensusCounts, via the metrics observer)
            self.driver.submit_message(msg, epoch)

    def _blame(self, validator: bytes, reason: str) -> None:
        """The replica refused a message of ``validator`` (its node key) or caught it
        equivocating."""
        points = consensus_points(reason)
        if points and validator != self.node_id:
            self.transport.penalise(validator, f"consensus: {reason}", points)

    def _read_blocks(self, start: int, count: int) -> list[bytes]:
        """The stored blocks from ``start`` (at most ``count``) that fit one frame."""
        assert self.store is not None
        budget = self.cfg.p2p.max_frame_bytes - 1024
        blocks: list[bytes] = []
        tip = self.applier.tip.height
        for h in range(start, min(start + count, tip + 1)):
            try:
                raw = self.store.block_by_height(h)
            except StorageError:  # closed: being reopened after a failed write
                break
            if raw is None or len(raw) + 16 > budget:
                break
            budget -= len(raw) + 16
            blocks.append(raw)
        return blocks

    # ------------------------------------------------------------ sync
    def _on_need_sync(self, target: int, hints: Any) -> None:
        self.sync.request(target, hints)
        self.sync.tick(self.clock())

    def _feed_synced(self, block: CommittedBlock) -> None:
        if self.recovery is not None and self.recovery.failed:
            return  # not writing: fetched again once it does
        if self.driver is not None:  # a validator's replica, or the follower, takes it
            self.driver.submit_block(block)

    # ------------------------------------------------------------ blocks
    def _on_block(self, block: Block, outcome: BlockOutcome) -> None:
        now = self.clock()
        self.last_commit_ms = now
        self.mempool.remove_committed(h.hex() for h in block.tx_hashes)
        if self.epochs.refresh(self.applier.epoch_schedule()):
            log.info(
                "validator set changed",
                epoch=self.epochs.schedule.latest.number,
                from_height=self.epochs.schedule.latest.first_height,
                validators=self.epochs.schedule.latest.n,
            )
            self._dial_validators()
        elif any(k.startswith(b"node/") and v is None for k, v in outcome.writes):
            self._drop_unallowed()  # a node unregistered in this block
        self._erase_documents(block, outcome)
        if self.documents is not None:
            self.documents.on_committed()
        self.sync.on_committed(block.height, now)
        self._attest_epochs()
        if not self.sync.syncing:  # no snapshots of the heights a catch-up runs through
            self.snapshot_service.on_block(block, outcome)
        self.snapshot_service.tick(now)
        logs.bind_height(block.height)
        logs.bind_view(self._view())
        self.metrics.on_block(
            block, outcome, now - block.header.timestamp, observe_latency=not self.sync.syncing
        )
        log.info(
            "block committed",
            height=block.height,
            hash=block.hash[:16],
            txs=len(block.txs),
            view=block.header.view,
        )

    # ------------------------------------------------------------ transactions
    async def submit_tx(self, data: bytes) -> str:
        """Client API entry; raises ``ApiError`` with a stable code."""
        if self.driver is None:
            raise ApiError(
                503, "state-syncing", "the node is restoring a snapshot; submit to another node"
            )
        with api_errors():
            tx = decode_tx(data, chain_id=self.chain_id, max_bytes=self._max_tx)
            if self.mempool.holds(tx):  # these very bytes: same answer, no work
                return tx.hash
            self.ledger.check_tx(tx)
            loop = asyncio.get_running_loop()
            if not await loop.run_in_executor(self._verify_exec, tx.verify_signature):
                raise ApiError(400, "bad-signature", "signature does not verify for the signer")
            self._admit(tx)
        return tx.hash

    def _attest_epochs(self) -> None:
        """Submit this node's missing ``epoch.attest`` transactions
        (node/engine/epoch_attester.py); not while catching up, when the chain ahead
        may hold them already."""
        if self.sync.syncing or self.driver is None:
            return
        self.attester.tick(
            BlockState(self._chain()), self.epochs.schedule.latest.number, self.clock()
        )

    def _submit_own(self, tx: Tx) -> None:
        """A transaction this node signed itself, into its mempool and gossip."""
        try:
            self._admit(tx)
        except MempoolError as exc:
            log.warning("own transaction refused", type=tx.type, tx=tx.hash, reason=str(exc))
            return
        log.info("own transaction submitted", type=tx.type, tx=tx.hash, body=tx.body)

    def _check_signer(self, tx: MempoolTx) -> None:
        """Mempool admission: the ledger's rule of who may sign ``tx``'s type, read from
        the committed state (``Ledger.check_signer``); ``MempoolError`` 403 if not."""
        assert self.store is not None and isinstance(tx, Tx)
        try:
            founders = self.genesis.members_json() if self.applier.tip.height == 0 else ()
            self.ledger.check_signer(self.store, tx, founders)
        except Rejection as rej:
            raise MempoolError("signer-not-allowed", rej.message, 403) from None

    def _admit(self, tx: Tx, *, gossip: bool = True) -> None:
        """Into the mempool and the replica's queue (once); ``MempoolError`` if refused."""
        if not self.mempool.add(tx, self.clock(), gossip=gossip):
            return  # already here
        if gossip:
            self._gossip_queued.set()
        self.rules.remember_verified(tx)
        if self.driver is not None:
            self.driver.submit_request(tx.wire)

    async def _on_gossiped_txs(self, peer: bytes, wires: list[bytes]) -> None:
        if self.driver is None:
            return  # restoring a snapshot: no state to check them against yet
        fresh: list[Tx] = []
        not_allowed = 0
        for wire in wires:
            known = self.rules.cache.get(wire)  # a copy we decoded before: no work
            if known is not None and known[0].hash in self.mempool:
                continue
            try:
                tx = decode_tx(wire, chain_id=self.chain_id, max_bytes=self._max_tx)
                if tx.hash in self.mempool:
                    continue
                self.ledger.check_tx(tx)
            except (TxError, Rejection) as exc:
                self.transport.penalise(peer, f"gossiped an invalid transaction: {exc}")
                continue
            try:  # before its signature: a state lookup costs less than Ed25519
                self._check_signer(tx)
            except MempoolError:
                not_allowed += 1
                continue
            fresh.append(tx)
        if not_allowed:
            # one point a frame, however many: a peer a block ahead of us may rightly
            # pass on the first transactions of a key we have not seen enrolled yet
            self.transport.penalise(
                peer, f"gossiped {not_allowed} transactions of signers not allowed here", 1
            )
        if not fresh:
            return
        # one frame's signatures in one verify thread (workers=1: verify_batch must not
        # wait for chunks of the pool it runs in), not on the event loop
        items = [tx.verify_item() for tx in fresh]
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(self._verify_exec, partial(verify_batch, items, workers=1))
        for tx, good in zip(fresh, ok, strict=True):
            if not good:
                self.transport.penalise(peer, "gossiped a badly signed transaction")
                continue
            with contextlib.suppress(MempoolError):  # full, replay: dropping gossip is fine
                # validators are a full mesh and the origin sends to each of them:
                # passing a validator's gossip on would only triple the traffic;
                # what a non-validator peer sends is passed on
                self._admit(tx, gossip=peer not in self.epochs.schedule.latest.validators)

    async def _gossip_loop(self) -> None:
        """Once something is queued, wait ``GOSSIP_INTERVAL_S`` to gather a batch, send it."""
        while True:
            await self._gossip_queued.wait()
            await asyncio.sleep(GOSSIP_INTERVAL_S)
            self._gossip_queued.clear()
            for frame in gossip_frames(
                [tx.wire for tx in self.mempool.take_gossip()], self.transport.max_frame_bytes
            ):
                self.transport.broadcast(frame)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            self.transport.broadcast(self._status_frame())
            self.sync.tick(self.clock())
            self._attest_epochs()
            self.snapshot_service.tick(self.clock())

    # ------------------------------------------------------------ queries (NodeFacade)
    # the JSON bodies are node/api/views.py's; these hand them the parts they read
    def info(self) -> dict[str, Any]:
        return views.info(self.genesis, self.applier.tip.height)

    def tx_status(self, tx_hash: str) -> dict[str, Any]:
        return views.tx_status(self._chain(), self.mempool, tx_hash)

    def block_json(self, height: int | None) -> dict[str, Any] | None:
        return views.block_json(self._chain(), self.applier.tip.height, height)

    def proof_json(self, tx_hash: str) -> dict[str, Any] | None:
        return views.proof_json(
            self._chain(),
            tx_hash,
            genesis_root=genesis_root(self.genesis),
            checkpoint_interval=self.genesis.epoch_rule().checkpoint_interval,
        )

    def run_query(self, fn: QueryFn, path: Mapping[str, str], query: Mapping[str, str]) -> Any:
        return views.run_query(self._chain(), fn, path, query)

    def validator_set_json(self, height: int | None) -> dict[str, Any]:
        return views.validator_set(*views.epochs(self._chain(), self.genesis), height)

    def recent_blocks_json(self, limit: int) -> list[dict[str, Any]]:
        return views.recent_blocks(self._chain(), self.applier.tip.height, limit)

    def status(self) -> dict[str, Any]:
        epoch, role = views.epoch_role(*views.epochs(self._chain(), self.genesis), self.node_id)
        return views.status(
            node_id=self.node_id,
            name=self.cfg.node.name,
            chain_id=self.chain_id,
            tip=self.applier.tip,
            replica=self._replica(),
            validator_index=self._index(),
            validators=self.epochs.schedule.at(self.applier.tip.height + 1).n,
            peers=len(self.transport.connected()),
            sync=self.sync,
            mempool_size=len(self.mempool),
            epoch=epoch,
            role=role,
        ) | {
            "base_height": self._chain().base_height(),
            "state_sync": self.statesync.status() if self.statesync is not None else None,
        }

    def health(self) -> tuple[bool, list[str]]:
        reasons = health_reasons(
            failed=self.failed,
            validators=self.epochs.schedule.at(self.applier.tip.height + 1).n,
            peers=len(self.transport.connected()),
            syncing=self.sync.syncing,
            pending_txs=len(self.mempool),
            since_commit_ms=self.clock() - self.last_commit_ms,
            disk_free_bytes=shutil.disk_usage(self.cfg.data_dir).free,
            min_free_disk_mib=self.cfg.admin.health_min_free_disk_mib,
            storage=self.recovery.reason() if self.recovery is not None else None,
        )
        return not reasons, reasons

    def peers_json(self) -> list[dict[str, Any]]:
        return views.peers(self.genesis, self.transport.peers(), self.sync.peer_heights)

    def consensus_json(self) -> dict[str, Any]:
        replica = self._replica()
        if self.driver is None or replica is None:
            return views.consensus(None, None, {}, [])
        counts = self.metrics.consensus.summary()  # what /metrics exposes too
        return views.consensus(replica, replica.me, counts, self.driver.stats.divergence)

    def mempool_json(self) -> dict[str, Any]:
        return views.mempool(self.mempool, self.clock())

    def validators_json(self) -> list[dict[str, Any]]:
        records, tip_height = views.epochs(self._chain(), self.genesis)
        return views.validators(records, tip_height, set(self.transport.connected()), self.node_id)

    def metrics_text(self) -> bytes:
        self.metrics.refresh(self)
        return self.metrics.render()

    def _chain(self) -> ChainStore:
        assert self.store is not None, "the node is not started"
        return self.store

    @property
    def backup_dir(self) -> Path:
        """Where ``POST /admin/backup`` writes: ``<home>/backups``."""
        return self.cfg.home / "backups"

    async def backup_to(self, path: Path, *, include_node_key: bool = False) -> dict[str, Any]:
        """Write a backup of the database to ``path`` (node/ops/live_backup.py)."""
        from node.ops.live_backup import backup_running

        db = self._chain().database
        return await backup_running(
            db, self._db_exec, self.cfg, path, include_node_key=include_node_key
        )

    async def disconnect_peer(self, node_id: bytes) -> bool:
        """Close the link to ``node_id`` now (it is redialled as usual); False: no link."""
        return await self.transport.disconnect(node_id, "disconnected by the operator")
