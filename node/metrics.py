"""Prometheus metrics of one node (``GET /metrics`` on the admin listener).

One ``CollectorRegistry`` per node, so several nodes in one process (tests)
never share counters. Counters move on events (a committed block, a frame);
gauges are refreshed when scraped. Every name starts with ``hygeia_``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from node.block import Block
from node.ledger.executor import BlockOutcome


class NodeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.height = Gauge("hygeia_height", "Height of the last committed block", registry=r)
        self.view = Gauge("hygeia_view", "Current consensus view", registry=r)
        self.blocks = Counter("hygeia_blocks_committed", "Blocks committed", registry=r)
        self.txs = Counter("hygeia_txs_committed", "Transactions committed", registry=r)
        self.ledger_rejections = Counter(
            "hygeia_ledger_rejections",
            "Committed transactions the ledger rejected",
            ["type", "code"],
            registry=r,
        )
        self.commit_latency = Histogram(
            "hygeia_block_commit_latency_seconds",
            "From the proposal's timestamp to the block being durably written here",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.mempool_size = Gauge("hygeia_mempool_size", "Transactions in the mempool", registry=r)
        self.mempool_bytes = Gauge("hygeia_mempool_bytes", "Bytes in the mempool", registry=r)
        self.peers = Gauge("hygeia_peers_connected", "Connected peers", registry=r)
        self.sync_lag = Gauge(
            "hygeia_sync_lag", "Best peer height minus ours (0 when caught up)", registry=r
        )
        self.view_changes = Gauge(
            "hygeia_view_changes", "View changes seen since start", registry=r
        )
        self.evidence = Gauge(
            "hygeia_equivocation_evidence", "Equivocation evidence since start", registry=r
        )
        self.consensus_in = Counter(
            "hygeia_consensus_messages_in", "Consensus messages received", ["type"], registry=r
        )
        self.consensus_out = Gauge(
            "hygeia_consensus_messages_out", "Consensus messages sent", ["type"], registry=r
        )
        self.rejected_frames = Counter(
            "hygeia_rejected_frames", "Peer frames refused, by reason", ["reason"], registry=r
        )
        self.db_size = Gauge("hygeia_database_bytes", "On-disk size of LevelDB", registry=r)

    def on_block(self, block: Block, outcome: BlockOutcome, latency_ms: int) -> None:
        self.blocks.inc()
        self.txs.inc(len(block.txs))
        self.height.set(block.height)
        self.commit_latency.observe(max(latency_ms, 0) / 1000)
        for tx_wire, result in zip(block.txs, outcome.results, strict=False):
            if result.status == "rejected":
                self.ledger_rejections.labels(_tx_type(tx_wire), result.code).inc()

    def refresh(self, node: Any) -> None:
        self.mempool_size.set(len(node.mempool))
        self.mempool_bytes.set(node.mempool.total_bytes)
        self.peers.set(len(node.transport.connected()))
        progress = node.sync.progress()
        self.sync_lag.set(max(0, progress["best_peer_height"] - progress["local_height"]))
        self.height.set(node.applier.tip.height)
        if node.driver is not None:
            self.view.set(node.driver.replica.view)
            stats = node.driver.stats
            self.view_changes.set(stats.view_changes)
            self.evidence.set(stats.evidence)
            for name, count in sorted(stats.messages_out.items()):
                self.consensus_out.labels(name).set(count)
        self.db_size.set(node.store.approximate_size())

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _tx_type(wire: bytes) -> str:
    # the wire form is canonical JSON: "type" comes after "signer"; cheap to find
    start = wire.find(b'"type":"')
    if start < 0:
        return "unknown"
    end = wire.find(b'"', start + 8)
    return wire[start + 8 : end].decode("ascii", "replace")
