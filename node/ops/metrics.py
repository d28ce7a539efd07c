"""Prometheus metrics of one node (``GET /metrics`` on the admin listener).

One ``CollectorRegistry`` per node, so several nodes in one process (tests)
never share counters. Counters move on events: a committed block, a consensus
message received or sent, an input the replica refused, a view change,
equivocation evidence, a refused peer frame. Gauges (height, mempool, peers,
sync lag, database size) are refreshed when scraped (``refresh``). Every name
starts with ``hygeia_``; counters end in ``_total`` and units are in the names.

The consensus counters are not counted here: ``NodeMetrics`` is the driver's
observer and hands each consensus event to its ``ConsensusCounts``
(node/ops/consensus_counts.py), the one record the admin ``/consensus`` reads
too; a collector exposes those counts at scrape (``_CountsCollector``).

Every metric is created through ``NodeMetrics._counter``/``_gauge``/
``_histogram``, which also record a ``MetricDoc`` (exposed name, type, labels,
meaning, when it moves). ``render_reference`` turns those into
``docs/metrics.md`` (``python -m node.ops.metrics > docs/metrics.md``), and
tests/unit/test_metrics.py keeps the file equal to it and checks it against
``registry.collect()``, so the reference cannot drift from what is exposed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.core import CounterMetricFamily, Metric

from node.core.block import Block
from node.ledger.executor import BlockOutcome
from node.ops.consensus_counts import ConsensusCounts, Sample, reason_code
from node.setup.refdoc import generated_header, table_cell

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class MetricDoc:
    """The reference entry of one metric."""

    name: str  # as exposed: counters end in _total, histograms add _bucket/_sum/_count
    kind: str  # counter, gauge or histogram
    labels: tuple[str, ...]
    meaning: str  # also the metric's HELP text
    moves: str


# the children of one counter family
Samples = Callable[[], Iterable[Sample]]


class _CountsCollector:
    """Counters whose values live elsewhere (``ConsensusCounts``), read at scrape and
    exposed exactly as a ``prometheus_client.Counter`` of the same name would be."""

    def __init__(self) -> None:
        self.families: list[tuple[MetricDoc, Samples]] = []

    def _family(self, doc: MetricDoc) -> CounterMetricFamily:
        return CounterMetricFamily(doc.name, doc.meaning, labels=doc.labels)

    def describe(self) -> Iterator[Metric]:
        for doc, _ in self.families:
            yield self._family(doc)

    def collect(self) -> Iterator[Metric]:
        # a Counter's _created samples follow prometheus_client's switch for them
        created_on = getattr(prometheus_metrics, "_use_created", True)
        for doc, samples in self.families:
            family = self._family(doc)
            for labels, value, created in samples():
                family.add_metric(labels, value, created=created if created_on else None)
            yield family


class NodeMetrics:
    """The metrics of one node; also the consensus driver's ``DriverObserver``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.documented: list[MetricDoc] = []
        # ---- chain
        self.height = self._gauge(
            "hygeia_height",
            "Height of the last committed block",
            "On every committed block, and at scrape.",
        )
        self.view = self._gauge(
            "hygeia_view",
            "Current consensus view of this validator (0 on a non-validator)",
            "At scrape.",
        )
        self.blocks = self._counter(
            "hygeia_blocks_committed_total",
            "Blocks committed (written to this node's database)",
            "+1 per block written, whether agreed here or fetched by block sync.",
        )
        self.txs = self._counter(
            "hygeia_txs_committed_total",
            "Transactions in committed blocks, including those the ledger rejected",
            "+ the block's transaction count, per block written.",
        )
        self.ledger_rejections = self._counter(
            "hygeia_ledger_rejections_total",
            "Committed transactions the ledger rejected, by transaction type and rejection code",
            "+1 per transaction of a written block whose result is `rejected`.",
            ("type", "code"),
        )
        self.commit_latency = self._histogram(
            "hygeia_block_commit_latency_seconds",
            "From the block's proposal timestamp to the block being durably written here",
            "One observation per block written while not catching up by block sync "
            "(a synced block's age is not a commit latency).",
            LATENCY_BUCKETS,
        )
        self.documents = self._counter(
            "hygeia_documents_total",
            "Document exchange requests (docs/document-exchange.md) by operation "
            "(`publish`, `fetch` on the requester's node, `serve` on the custodian's) and "
            "result (`ok` or the refusal code)",
            "+1 per publish or fetch answered by this node's client API, and per relayed "
            "request this node answered as custodian.",
            ("operation", "result"),
        )
        # ---- mempool, network, storage
        self.mempool_size = self._gauge(
            "hygeia_mempool_size",
            "Transactions admitted and not yet committed",
            "At scrape.",
        )
        self.mempool_bytes = self._gauge(
            "hygeia_mempool_bytes",
            "Wire bytes of the transactions in the mempool",
            "At scrape.",
        )
        self.peers = self._gauge(
            "hygeia_peers_connected",
            "Peers with an authenticated link (validators and configured peers)",
            "At scrape.",
        )
        self.sync_lag = self._gauge(
            "hygeia_sync_lag_blocks",
            "Highest height a peer reports minus ours (0 when caught up)",
            "At scrape; peers report their height every second.",
        )
        self.db_size = self._gauge(
            "hygeia_database_bytes",
            "Bytes of the node's LevelDB directory on disk",
            "At scrape.",
        )
        self.rejected_frames = self._counter(
            "hygeia_rejected_frames_total",
            "Peer frames refused before reaching consensus, by reason",
            "+1 per refused frame: `malformed` (undecodable), `consensus-sender` (a "
            "consensus message whose sender is not the sending peer's validator index), "
            "`over-budget` (a consensus message beyond the peer's per-second budget, dropped "
            "before its signature is checked), `bad-signature` (a consensus message whose "
            "signature does not verify, checked in the verify pool).",
            ("reason",),
        )
        # ---- consensus: counted in ConsensusCounts, exposed by one collector
        self.consensus = ConsensusCounts()
        counts = self.consensus
        self._tallied = _CountsCollector()
        self._tallied_counter(
            counts.messages_in.samples,
            "hygeia_consensus_messages_in_total",
            "Consensus messages received from validators and passed to the replica, by type",
            "+1 per message received, within its peer's budget and with a good signature "
            "(types: `PrePrepare`, `Prepare`, `Commit`, `Checkpoint`, `ViewChange`, "
            "`NewView`, `NewViewRequest`, `Status`, `PayloadRequest`, `PayloadReply`).",
            ("type",),
        )
        self._tallied_counter(
            counts.messages_out.samples,
            "hygeia_consensus_messages_out_total",
            "Consensus messages sent to other validators, by type (one per recipient)",
            "+ the number of recipients, per message the replica sends or broadcasts.",
            ("type",),
        )
        self._tallied_counter(
            counts.messages_dropped.samples,
            "hygeia_consensus_messages_dropped_total",
            "Consensus messages this node did not send, by type and reason (one per recipient)",
            "+ the number of recipients, per message not handed to the transport: "
            "`too_large` (its frame is over `p2p.max_frame_bytes`), `send_error` (encoding "
            "or queueing it failed). Type `Relay` is relayed client requests.",
            ("type", "reason"),
        )
        self._tallied_counter(
            lambda: counts.messages_rejected.samples(lambda key: (reason_code(key[0]),)),
            "hygeia_consensus_messages_rejected_total",
            "Inputs the consensus replica refused, by reason code",
            "+1 per refusal (`bad-signature`, `unknown-sender`, `prepare-from-primary`, "
            "`pre-prepare-not-from-primary`, `view-change-too-far`, ...); the detail after "
            "a `:` is dropped from the label (it is in the debug log and `/consensus`).",
            ("reason",),
        )
        self._tallied_counter(
            counts.view_changes.samples,
            "hygeia_view_changes_total",
            "View-change events of this replica, by cause",
            "+1 when the replica starts a view change (cause `progress timeout`, "
            "`request timeout`, `new-view timeout`, `joined f+1 view changes`) and when "
            "it enters the new view (cause `new view`).",
            ("cause",),
        )
        self._tallied_counter(
            counts.equivocations.samples,
            "hygeia_equivocation_evidence_total",
            "Equivocation evidence: two conflicting signed messages from one validator, "
            "by its index and the message type",
            "+1 per pair of conflicting messages detected (also logged as a warning).",
            ("validator", "type"),
        )
        self.registry.register(self._tallied)

    # ------------------------------------------------------------ creation
    def _document(
        self, name: str, kind: str, meaning: str, moves: str, labels: tuple[str, ...] = ()
    ) -> MetricDoc:
        assert name.endswith("_total") == (kind == "counter"), f"{name}: _total is for counters"
        doc = MetricDoc(name, kind, labels, meaning, moves)
        self.documented.append(doc)
        return doc

    def _counter(
        self, name: str, meaning: str, moves: str, labels: tuple[str, ...] = ()
    ) -> Counter:
        self._document(name, "counter", meaning, moves, labels)
        return Counter(name, meaning, labels, registry=self.registry)

    def _tallied_counter(
        self, samples: Samples, name: str, meaning: str, moves: str, labels: tuple[str, ...]
    ) -> None:
        """A counter read from ``samples`` at scrape (the consensus counts)."""
        doc = self._document(name, "counter", meaning, moves, labels)
        self._tallied.families.append((doc, samples))

    def _gauge(self, name: str, meaning: str, moves: str) -> Gauge:
        self._document(name, "gauge", meaning, moves)
        return Gauge(name, meaning, registry=self.registry)

    def _histogram(
        self, name: str, meaning: str, moves: str, buckets: tuple[float, ...]
    ) -> Histogram:
        self._document(name, "histogram", meaning, moves)
        return Histogram(name, meaning, buckets=buckets, registry=self.registry)

    # ------------------------------------------------------------ events
    def on_block(
        self, block: Block, outcome: BlockOutcome, latency_ms: int, *, observe_latency: bool = True
    ) -> None:
        self.blocks.inc()
        self.txs.inc(len(block.txs))
        self.height.set(block.height)
        if observe_latency:
            self.commit_latency.observe(max(latency_ms, 0) / 1000)
        for tx_wire, result in zip(block.txs, outcome.results, strict=False):
            if result.status == "rejected":
                self.ledger_rejections.labels(_tx_type(tx_wire), result.code).inc()

    # the DriverObserver protocol (node/engine/driver.py): counted once, in ConsensusCounts
    def message_in(self, kind: str) -> None:
        self.consensus.message_in(kind)

    def message_out(self, kind: str, copies: int) -> None:
        self.consensus.message_out(kind, copies)

    def dropped(self, kind: str, reason: str, copies: int) -> None:
        self.consensus.dropped(kind, reason, copies)

    def rejected(self, reason: str) -> None:
        self.consensus.rejected(reason)

    def view_changed(self, view: int, cause: str) -> None:
        self.consensus.view_changed(view, cause)

    def equivocation(self, validator: int, kind: str) -> None:
        self.consensus.equivocation(validator, kind)

    # ------------------------------------------------------------ scrape
    def refresh(self, node: Any) -> None:
        self.mempool_size.set(len(node.mempool))
        self.mempool_bytes.set(node.mempool.total_bytes)
        self.peers.set(len(node.transport.connected()))
        progress = node.sync.progress()
        self.sync_lag.set(max(0, progress["best_peer_height"] - progress["local_height"]))
        self.height.set(node.applier.tip.height)
        if node.driver is not None:
            self.view.set(node.driver.replica.view)
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


# ------------------------------------------------------------------ the reference
_QUERIES: Final = """\
## Example queries

```promql
# blocks and transactions committed per second (5-minute average)
rate(hygeia_blocks_committed_total[5m])
rate(hygeia_txs_committed_total[5m])

# p99 block-commit latency over 5 minutes
histogram_quantile(0.99, sum by (le) (rate(hygeia_block_commit_latency_seconds_bucket[5m])))

# mean commit latency
rate(hygeia_block_commit_latency_seconds_sum[5m])
  / rate(hygeia_block_commit_latency_seconds_count[5m])

# consensus traffic by message type, and what the replica refuses
sum by (type) (rate(hygeia_consensus_messages_out_total[5m]))
sum by (reason) (rate(hygeia_consensus_messages_rejected_total[5m]))

# ledger rejections by type and code over the last hour
sum by (type, code) (increase(hygeia_ledger_rejections_total[1h]))
```

## Example alerts

```yaml
groups:
  - name: hygeia
    rules:
      - alert: HygeiaHeightStalled  # transactions wait but no block for 2 minutes
        expr: changes(hygeia_height[2m]) == 0 and hygeia_mempool_size > 0
        for: 1m
      - alert: HygeiaSyncLag  # more than 10 blocks behind the best peer for 5 minutes
        expr: hygeia_sync_lag_blocks > 10
        for: 5m
      - alert: HygeiaPeersMissing  # 3: the other validators of a 4-validator consortium
        expr: hygeia_peers_connected < 3
        for: 5m
      - alert: HygeiaSlowCommits  # p99 commit latency above 2 s
        expr: >
          histogram_quantile(0.99,
            sum by (instance, le) (rate(hygeia_block_commit_latency_seconds_bucket[10m]))) > 2
        for: 10m
      - alert: HygeiaViewChanges  # the primary keeps being replaced
        expr: increase(hygeia_view_changes_total{cause="new view"}[15m]) > 3
      - alert: HygeiaEquivocation  # a validator signed two conflicting messages
        expr: increase(hygeia_equivocation_evidence_total[1h]) > 0
      - alert: HygeiaDown
        expr: up{job="hygeia"} == 0
        for: 2m
```

`GET /health` answers 503 with its reasons (`no peers`, `syncing`, `height
stalled for S s`, `disk low: M MiB free`, `storage write failed (disk full) ...`,
`consensus stopped: ...`); alert on it too (for example with the Prometheus
blackbox exporter), for the disk.
"""


def render_reference() -> str:
    """``docs/metrics.md``: every metric of ``NodeMetrics``, then example queries."""
    out = [
        *generated_header(
            "Metrics reference",
            "node/ops/metrics.py",
            "node.ops.metrics",
            "docs/metrics.md",
            "tests/unit/test_metrics.py",
        ),
        "`GET /metrics` on the admin listener (default `127.0.0.1:26658`, bearer token",
        "of `<home>/admin_token`) serves the node's metrics in the Prometheus text",
        "format. Every name starts with `hygeia_`; counters end in `_total` and count",
        "since the node started (they restart at 0 with the process: use `rate()` and",
        "`increase()`); gauges are read when scraped. Scrape it with the token:",
        "",
        "```yaml",
        "- job_name: hygeia",
        "  authorization: {type: Bearer, credentials_file: /etc/prometheus/hygeia_token}",
        '  static_configs: [{targets: ["127.0.0.1:26658"]}]',
        "```",
        "",
        "## Metrics",
        "",
        "A histogram `NAME` is exposed as `NAME_bucket{le=...}`, `NAME_sum` and",
        "`NAME_count`; each counter also has a `NAME_created` sample (start time).",
        "",
        "| name | type | labels | meaning | moves |",
        "|---|---|---|---|---|",
    ]
    for doc in NodeMetrics().documented:
        labels = ", ".join(f"`{label}`" for label in doc.labels) or "—"
        out.append(
            f"| `{doc.name}` | {doc.kind} | {labels} "
            f"| {table_cell(doc.meaning)} | {table_cell(doc.moves)} |"
        )
    buckets = ", ".join(f"{b:g}" for b in LATENCY_BUCKETS)
    out += [
        "",
        f"Latency buckets (seconds): {buckets}.",
        "",
        _QUERIES.rstrip(),
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(render_reference(), end="")
