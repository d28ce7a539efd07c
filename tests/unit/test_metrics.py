"""The node's Prometheus metrics (``node.ops.metrics``) and their reference, docs/metrics.md.

The reference is generated from the metrics' own definitions; these tests keep
the file equal to it and check both ways against what the registry exposes:
every metric family is in the table, and every ``hygeia_`` name the file uses
(table, queries, alerts) is something a scrape can return.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from prometheus_client.parser import text_string_to_metric_families

from node.api import views
from node.core.block import Block
from node.core.state_root import BlockDigests
from node.ledger.executor import BlockOutcome
from node.ledger.result import TxResult
from node.ops.consensus_counts import MAX_REJECTION_KEYS, ConsensusCounts
from node.ops.metrics import NodeMetrics, render_reference

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "metrics.md"
# the samples prometheus_client exposes for a family of each type
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def exposed_name(name: str, kind: str) -> str:
    """What the table names: a counter family ``x`` is exposed as ``x_total``."""
    return f"{name}_total" if kind == "counter" else name


def known_names(metrics: NodeMetrics) -> set[str]:
    """Every sample name a scrape can return, and the histograms' family names."""
    names = set()
    for family in metrics.registry.collect():
        names.add(exposed_name(family.name, family.type))
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def table_rows(text: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.match(r"\| `(hygeia_\w+)` \| (\w+) \| (.*?) \|", line)
        if m:
            rows[m.group(1)] = [m.group(2), m.group(3)]
    return rows


def samples(metrics: NodeMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# ------------------------------------------------------------------ the reference
def test_docs_metrics_md_is_generated_from_the_code() -> None:
    assert DOC.read_text(encoding="utf-8") == render_reference(), (
        "docs/metrics.md is stale: regenerate it with "
        "`.venv/bin/python -m node.ops.metrics > docs/metrics.md`"
    )


def test_every_registered_metric_is_in_the_table_with_its_type_and_labels() -> None:
    metrics = NodeMetrics()
    rows = table_rows(DOC.read_text(encoding="utf-8"))
    families = list(metrics.registry.collect())
    assert families, "the registry exposes nothing"
    documented = {d.name: d for d in metrics.documented}
    for family in families:
        name = exposed_name(family.name, family.type)
        assert name in rows, f"{name} ({family.type}) is not in docs/metrics.md"
        assert rows[name][0] == family.type, f"{name}: documented as {rows[name][0]}"
        labels = ", ".join(f"`{label}`" for label in documented[name].labels) or "—"
        assert rows[name][1] == labels, f"{name}: documented labels {rows[name][1]}"
    assert len(rows) == len(families), sorted(
        set(rows) - {exposed_name(f.name, f.type) for f in families}
    )


def test_every_hygeia_name_in_the_doc_is_exposed() -> None:
    exposed = known_names(NodeMetrics())
    used = set(re.findall(r"\bhygeia_[a-z_]+", DOC.read_text(encoding="utf-8")))
    used.discard("hygeia_token")  # the token file of the scrape example
    unknown = sorted(used - exposed)
    assert not unknown, f"docs/metrics.md names metrics the node does not expose: {unknown}"


def test_naming_conventions() -> None:
    for doc in NodeMetrics().documented:
        assert doc.name.startswith("hygeia_"), doc.name
        assert re.fullmatch(r"[a-z_]+", doc.name), doc.name
        assert doc.name.endswith("_total") == (doc.kind == "counter"), doc.name
        assert doc.meaning and doc.moves, doc.name
    names = [d.name for d in NodeMetrics().documented]
    assert len(names) == len(set(names))


def test_issue_metrics_exist_with_their_types_and_labels() -> None:
    """The list of the issue: each metric, its type and its labels."""
    want = {
        "hygeia_height": ("gauge", ()),
        "hygeia_view": ("gauge", ()),
        "hygeia_view_changes_total": ("counter", ("cause",)),
        "hygeia_txs_committed_total": ("counter", ()),
        "hygeia_blocks_committed_total": ("counter", ()),
        "hygeia_block_commit_latency_seconds": ("histogram", ()),
        "hygeia_mempool_size": ("gauge", ()),
        "hygeia_mempool_bytes": ("gauge", ()),
        "hygeia_peers_connected": ("gauge", ()),
        "hygeia_sync_lag_blocks": ("gauge", ()),
        "hygeia_consensus_messages_in_total": ("counter", ("type",)),
        "hygeia_consensus_messages_out_total": ("counter", ("type",)),
        "hygeia_consensus_messages_rejected_total": ("counter", ("reason",)),
        "hygeia_consensus_messages_dropped_total": ("counter", ("type", "reason")),
        "hygeia_rejected_frames_total": ("counter", ("reason",)),
        "hygeia_equivocation_evidence_total": ("counter", ("validator", "type")),
        "hygeia_ledger_rejections_total": ("counter", ("type", "code")),
        "hygeia_documents_total": ("counter", ("operation", "result")),
        "hygeia_database_bytes": ("gauge", ()),
    }
    have = {d.name: (d.kind, d.labels) for d in NodeMetrics().documented}
    assert have == want


# ------------------------------------------------------------------ events
def test_counters_move_on_events() -> None:
    m = NodeMetrics()
    m.message_in("Prepare")
    m.message_in("Prepare")
    m.message_out("Commit", 3)
    m.message_out("Commit", 3)
    m.rejected("bad-signature")
    m.rejected("bad-view-change: certificate of height 7 does not verify")
    m.rejected("bad-view-change: another detail")
    m.view_changed(1, "progress timeout")
    m.view_changed(1, "new view")
    m.equivocation(2, "Prepare")
    got = samples(m)
    assert got[("hygeia_consensus_messages_in_total", (("type", "Prepare"),))] == 2
    assert got[("hygeia_consensus_messages_out_total", (("type", "Commit"),))] == 6
    rejected = {
        labels: v
        for (n, labels), v in got.items()
        if n == "hygeia_consensus_messages_rejected_total"
    }
    # the detail after ':' is dropped: label values stay a small fixed set
    assert rejected == {(("reason", "bad-signature"),): 1, (("reason", "bad-view-change"),): 2}
    assert got[("hygeia_view_changes_total", (("cause", "progress timeout"),))] == 1
    assert got[("hygeia_view_changes_total", (("cause", "new view"),))] == 1
    evidence = ("hygeia_equivocation_evidence_total", (("type", "Prepare"), ("validator", "2")))
    assert got[evidence] == 1


def test_consensus_view_and_metrics_read_one_record() -> None:
    """The observer's events land in ``ConsensusCounts`` once; ``GET /consensus``
    (``node.api.views.consensus``) and the scrape both read it, so they agree,
    and the scrape has each counter's ``_created`` as a ``Counter`` would."""
    m = NodeMetrics()
    m.message_in("Prepare")
    m.message_in("Commit")
    m.message_in("Prepare")
    m.message_out("Commit", 3)
    m.dropped("PrePrepare", "too_large", 3)
    m.rejected("bad-view-change: one detail")
    m.rejected("bad-view-change: another")
    m.view_changed(4, "progress timeout")
    m.equivocation(1, "Commit")
    replica: Any = SimpleNamespace(
        view=4,
        primary=0,
        in_view_change=True,
        height=9,
        low_watermark=0,
        high_watermark=40,
        pending_count=0,
        in_flight=lambda: [],
    )
    body = views.consensus(replica, 2, m.consensus.summary(), [])
    assert list(body)[-7:] == [
        "view_changes",
        "last_view_change",
        "messages_in",
        "messages_out",
        "rejected",
        "evidence",
        "divergence",
    ]
    assert body["messages_in"] == {"Prepare": 2, "Commit": 1}
    assert body["messages_out"] == {"Commit": 3}
    assert body["rejected"] == {"bad-view-change: one detail": 1, "bad-view-change: another": 1}
    assert (body["view_changes"], body["evidence"]) == (1, 1)
    assert body["last_view_change"] == {"view": 4, "cause": "progress timeout"}
    got = samples(m)
    assert got[("hygeia_consensus_messages_in_total", (("type", "Prepare"),))] == 2
    assert got[("hygeia_consensus_messages_in_total", (("type", "Commit"),))] == 1
    assert got[("hygeia_consensus_messages_out_total", (("type", "Commit"),))] == 3
    dropped = (("reason", "too_large"), ("type", "PrePrepare"))
    assert got[("hygeia_consensus_messages_dropped_total", dropped)] == 3
    rejected = (("reason", "bad-view-change"),)
    assert got[("hygeia_consensus_messages_rejected_total", rejected)] == 2
    assert got[("hygeia_view_changes_total", (("cause", "progress timeout"),))] == 1
    assert got[("hygeia_consensus_messages_rejected_created", rejected)] > 0
    assert views.consensus(None, None, {}, []) == {"validator": False}


def _block(height: int, txs: list[bytes]) -> Block:
    return cast(Block, SimpleNamespace(height=height, txs=txs))


NO_DIGESTS = BlockDigests(bytes(32), bytes(32), bytes(32))


def test_on_block_counts_blocks_txs_latency_and_ledger_rejections() -> None:
    m = NodeMetrics()
    txs = [
        b'{"body":{},"chain_id":"c","nonce":1,"signer":"aa","type":"data.anchor"}',
        b'{"body":{},"chain_id":"c","nonce":2,"signer":"aa","type":"claims.submit"}',
        b'{"body":{},"chain_id":"c","nonce":3,"signer":"aa","type":"claims.submit"}',
    ]
    results = [TxResult.ok(), TxResult("rejected", "duplicate_claim"), TxResult.ok()]
    outcome = BlockOutcome(results, [], bytes(32), NO_DIGESTS)
    m.on_block(_block(5, txs), outcome, 40)
    m.on_block(
        _block(6, []), BlockOutcome([], [], bytes(32), NO_DIGESTS), 9_000_000, observe_latency=False
    )
    got = samples(m)
    assert got[("hygeia_height", ())] == 6
    assert got[("hygeia_blocks_committed_total", ())] == 2
    assert got[("hygeia_txs_committed_total", ())] == 3
    assert got[("hygeia_block_commit_latency_seconds_count", ())] == 1  # the synced one is not
    assert got[("hygeia_block_commit_latency_seconds_sum", ())] == 0.04
    assert got[("hygeia_block_commit_latency_seconds_bucket", (("le", "0.05"),))] == 1
    key = (("code", "duplicate_claim"), ("type", "claims.submit"))
    assert got[("hygeia_ledger_rejections_total", key)] == 1


def test_refresh_reads_gauges_from_the_node() -> None:
    m = NodeMetrics()

    class Mempool:
        total_bytes = 1234

        def __len__(self) -> int:
            return 7

    node: Any = SimpleNamespace(
        mempool=Mempool(),
        transport=SimpleNamespace(connected=lambda: [b"a", b"b", b"c"]),
        sync=SimpleNamespace(progress=lambda: {"best_peer_height": 50, "local_height": 42}),
        applier=SimpleNamespace(tip=SimpleNamespace(height=42)),
        driver=SimpleNamespace(replica=SimpleNamespace(view=3)),
        store=SimpleNamespace(approximate_size=lambda: 4096),
    )
    m.refresh(node)
    got = samples(m)
    assert got[("hygeia_mempool_size", ())] == 7
    assert got[("hygeia_mempool_bytes", ())] == 1234
    assert got[("hygeia_peers_connected", ())] == 3
    assert got[("hygeia_sync_lag_blocks", ())] == 8
    assert got[("hygeia_height", ())] == 42
    assert got[("hygeia_view", ())] == 3
    assert got[("hygeia_database_bytes", ())] == 4096
    node.sync = SimpleNamespace(progress=lambda: {"best_peer_height": 10, "local_height": 42})
    m.refresh(node)
    assert samples(m)[("hygeia_sync_lag_blocks", ())] == 0  # ahead of every peer: no lag


def test_two_nodes_in_one_process_do_not_share_counters() -> None:
    a, b = NodeMetrics(), NodeMetrics()
    a.message_in("Commit")
    assert ("hygeia_consensus_messages_in_total", (("type", "Commit"),)) not in samples(b)


def test_refusal_texts_chosen_by_peers_do_not_grow_the_counts() -> None:
    """A thousand distinct refusal details (a peer picks the numbers) keep at most
    MAX_REJECTION_KEYS texts plus their codes; no refusal goes uncounted."""
    counts = ConsensusCounts()
    for h in range(1000):
        counts.rejected(f"stale-vote: height {h}")
    counts.rejected("stale-vote: height 3")  # a known text is still counted as itself
    tally = counts.messages_rejected
    assert len(tally.counts) == MAX_REJECTION_KEYS + 1
    assert tally.total() == 1001 and tally.counts[("stale-vote",)] == 1000 - MAX_REJECTION_KEYS
    assert tally.counts[("stale-vote: height 3",)] == 2
