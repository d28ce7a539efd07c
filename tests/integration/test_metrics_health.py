"""``GET /metrics`` and ``GET /health`` of real nodes (the in-process cluster of test_node.py).

Four validators commit transactions; each node's ``/metrics`` is scraped over
HTTP with its admin token and parsed with prometheus_client's own parser, and
the values are checked against what happened (heights, transactions, blocks,
commit latencies, links, consensus traffic by type, database size). ``/health``
is checked healthy there, and 503 with its reasons on a node left alone and on
a node whose disk threshold is above the free space. The consensus driver's
observer hooks are checked with a scripted replica.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from consensus.actions import Action, Broadcast, Evidence, Rejected, Send, ViewChanged
from consensus.messages import Commit, Prepare
from node.engine.driver import ConsensusDriver, DriverHooks
from node.ops.metrics import NodeMetrics
from tests.integration.cluster import Cluster, Home, assert_alive, get_json, wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def scrape(session: aiohttp.ClientSession, home: Home) -> Samples:
    headers = {"Authorization": f"Bearer {home.token}"}
    async with session.get(f"{home.admin_url}/metrics", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "text/plain", resp.content_type
        return parse(await resp.text())


def by_type(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["type"]: v for (n, labels), v in samples.items() if n == name}


async def test_metrics_of_four_nodes_after_commits(
    make_cluster: Callable[..., Cluster],
    http: aiohttp.ClientSession,
) -> None:
    c = make_cluster(4)
    await c.start(0, 1, 2, 3)
    await c.wait_connected(range(4))
    hashes = []
    for i in range(4):
        for _ in range(5):
            tx = c.anchor_tx(member=i)
            assert await c.node(i).submit_tx(tx.wire) == tx.hash
            hashes.append(tx.hash)
    await c.wait_committed(hashes, range(4))
    height = await c.wait_same_height(range(4))
    for i in range(4):
        # peers report their heights every second: wait until node i has heard them
        m = await wait_until(
            f"node{i}'s /metrics without sync lag",
            functools.partial(scrape, http, c.homes[i]),
            lambda s: s[("hygeia_sync_lag_blocks", ())] == 0,
        )
        where = f"node{i}"
        assert m[("hygeia_height", ())] >= height > 0, where
        assert m[("hygeia_txs_committed_total", ())] >= len(hashes), where
        assert m[("hygeia_blocks_committed_total", ())] >= height, where
        assert m[("hygeia_block_commit_latency_seconds_count", ())] > 0, where
        assert m[("hygeia_block_commit_latency_seconds_sum", ())] > 0, where
        assert m[("hygeia_peers_connected", ())] == 3, where
        assert m[("hygeia_mempool_size", ())] == 0, where
        assert m[("hygeia_database_bytes", ())] > 0, where
        received = by_type(m, "hygeia_consensus_messages_in_total")
        sent = by_type(m, "hygeia_consensus_messages_out_total")
        assert received.get("Prepare", 0) > 0 and received.get("Commit", 0) > 0, received
        assert sent.get("Commit", 0) > 0, sent
        # the primary proposes (PrePrepare) and the backups prepare: one or the other
        assert sent.get("Prepare", 0) > 0 or sent.get("PrePrepare", 0) > 0, sent
        rejected = {n for n, _ in m if n.startswith("hygeia_ledger_rejections")}
        assert rejected <= {"hygeia_ledger_rejections_total", "hygeia_ledger_rejections_created"}
        status, body = await get_json(http, f"{c.homes[i].admin_url}/health", c.homes[i].token)
        assert (status, body) == (200, {"ok": True, "reasons": []}), where
    totals = [await scrape(http, c.homes[i]) for i in range(4)]
    proposals = sum(
        by_type(t, "hygeia_consensus_messages_out_total").get("PrePrepare", 0) for t in totals
    )
    prepares = sum(
        by_type(t, "hygeia_consensus_messages_out_total").get("Prepare", 0) for t in totals
    )
    assert proposals > 0 and prepares > 0, (proposals, prepares)
    assert_alive(c)


async def test_health_503_alone_and_on_a_low_disk(
    make_cluster: Callable[..., Cluster],
    http: aiohttp.ClientSession,
) -> None:
    c = make_cluster(4)
    home = c.homes[0]
    await c.start(0)  # its three peers never start
    status, body = await get_json(http, f"{home.admin_url}/health", home.token)
    assert status == 503 and body["ok"] is False, body
    assert "no peers" in body["reasons"], body
    assert not any(r.startswith("disk low") for r in body["reasons"]), body
    await c.stop(0)

    # more free space required than any disk has: the node says so
    admin = dataclasses.replace(home.cfg.admin, health_min_free_disk_mib=1 << 40)
    home.cfg = dataclasses.replace(home.cfg, admin=admin)
    await c.start(0)
    status, body = await get_json(http, f"{home.admin_url}/health", home.token)
    assert status == 503, body
    disk = [r for r in body["reasons"] if r.startswith("disk low: ")]
    assert len(disk) == 1 and disk[0].endswith(" MiB free"), body


class ScriptedReplica:
    """Returns a fixed action list from ``start``."""

    me = 0
    view = 0

    def __init__(self, actions: list[Action]) -> None:
        self._actions = actions

    def start(self, now: int) -> list[Action]:
        return self._actions


async def test_driver_tells_the_metrics_of_sends_refusals_view_changes_and_evidence() -> None:
    prepare = Prepare(view=0, height=1, digest=bytes(32), sender=0)
    conflicting = Prepare(view=0, height=1, digest=b"\1" * 32, sender=2)
    actions: list[Action] = [
        Broadcast(prepare),
        Send(1, Commit(view=0, height=1, digest=bytes(32), sender=0)),
        Send(0, Commit(view=0, height=1, digest=bytes(32), sender=0)),  # to itself: not sent
        Rejected(3, "bad-new-view: certificate does not verify"),
        Rejected(-1, "request-too-large"),
        ViewChanged(1, "progress timeout"),
        ViewChanged(1, "new view"),
        Evidence(2, cast(Any, prepare), cast(Any, conflicting)),
    ]
    metrics = NodeMetrics()
    sent: list[bytes] = []

    def send(peer: bytes, _frame: bytes) -> bool:
        sent.append(peer)
        return True

    hooks = DriverHooks(
        send=send,
        on_block=lambda _block, _outcome: None,
        on_need_sync=lambda _target, _hints: None,
        observer=metrics,
    )
    ids = [bytes([i]) * 32 for i in range(4)]
    with ThreadPoolExecutor(1) as executor:
        driver = ConsensusDriver(
            cast(Any, ScriptedReplica(actions)),
            cast(Any, SimpleNamespace()),
            cast(Any, SimpleNamespace()),
            ids,
            hooks,
            executor,
        )
        await driver.start()
        await driver.stop()
    assert sent == [ids[1], ids[2], ids[3], ids[1]]
    got = parse(metrics.render().decode())
    assert by_type(got, "hygeia_consensus_messages_out_total") == {"Prepare": 3, "Commit": 1}
    reasons = {
        dict(labels)["reason"]: v
        for (n, labels), v in got.items()
        if n == "hygeia_consensus_messages_rejected_total"
    }
    assert reasons == {"bad-new-view": 1, "request-too-large": 1}
    assert got[("hygeia_view_changes_total", (("cause", "progress timeout"),))] == 1
    assert got[("hygeia_view_changes_total", (("cause", "new view"),))] == 1
    evidence = ("hygeia_equivocation_evidence_total", (("type", "Prepare"), ("validator", "2")))
    assert got[evidence] == 1
    # /consensus reads the very same counts (ConsensusCounts), with the refusals' detail
    summary = metrics.consensus.summary()
    assert summary["view_changes"] == 2 and summary["evidence"] == 1, summary
    assert summary["last_view_change"] == {"view": 1, "cause": "new view"}, summary
    assert summary["messages_out"] == {"Prepare": 3, "Commit": 1}, summary
    assert summary["rejected"] == {
        "bad-new-view: certificate does not verify": 1,
        "request-too-large": 1,
    }, summary


def consensus_counts_of(samples: Samples) -> dict[str, Any]:
    """The counts ``/consensus`` shows, as a ``/metrics`` scrape has them (refusals by
    code: the metric's label drops the detail after ':')."""

    def family(name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {labels: v for (n, labels), v in samples.items() if n == name}

    return {
        "messages_in": by_type(samples, "hygeia_consensus_messages_in_total"),
        "messages_out": by_type(samples, "hygeia_consensus_messages_out_total"),
        "rejected": {
            dict(labels)["reason"]: v
            for labels, v in family("hygeia_consensus_messages_rejected_total").items()
        },
        "view_changes": sum(family("hygeia_view_changes_total").values()),
        "evidence": sum(family("hygeia_equivocation_evidence_total").values()),
    }


def by_code(rejected: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for reason, n in rejected.items():
        code = reason.partition(":")[0].strip()
        out[code] = out.get(code, 0) + n
    return out


# the counts of /consensus (the rest of it is the replica's round)
COUNT_KEYS = ("messages_in", "messages_out", "rejected", "view_changes", "evidence")


async def consensus_and_metrics(
    session: aiohttp.ClientSession, home: Home
) -> tuple[dict[str, Any], Samples, dict[str, Any]]:
    """``/consensus``, ``/metrics``, ``/consensus`` again: counters only grow, so when
    both ``/consensus`` answers show the same counts the scrape saw those very counts."""
    url = f"{home.admin_url}/consensus"
    before = (await get_json(session, url, home.token))[1]
    samples = await scrape(session, home)
    after = (await get_json(session, url, home.token))[1]
    return before, samples, after


def unmoved(read: tuple[dict[str, Any], Samples, dict[str, Any]]) -> bool:
    return all(read[0][k] == read[2][k] for k in COUNT_KEYS)


async def test_consensus_and_metrics_report_the_same_numbers(
    make_cluster: Callable[..., Cluster],
    http: aiohttp.ClientSession,
) -> None:
    """``/consensus`` and ``/metrics`` read one record of the consensus events: with
    the primary of view 0 never started, the other three change view and commit a
    transaction, and on each of them every count ``/consensus`` shows (messages in
    and out by type, refusals, view changes, evidence) is what ``/metrics`` says."""
    c = make_cluster(4, consensus={"view_change_timeout_ms": 500, "request_timeout_ms": 1000})
    group = (1, 2, 3)
    await c.start(*group)
    await c.wait_connected(group)
    tx = c.anchor_tx(member=1)
    assert await c.node(1).submit_tx(tx.wire) == tx.hash
    await c.wait_committed([tx.hash], group)
    for i in group:
        shown, samples, _ = await wait_until(
            f"node{i}: no consensus event during a scrape",
            functools.partial(consensus_and_metrics, http, c.homes[i]),
            unmoved,
        )
        counts = {k: shown[k] for k in COUNT_KEYS}
        counts["rejected"] = by_code(shown["rejected"])
        assert counts == consensus_counts_of(samples), f"node{i}"
        assert shown["view_changes"] >= 1 and shown["view"] >= 1, shown
        assert shown["messages_in"] and shown["messages_out"], shown
        causes = [dict(k)["cause"] for n, k in samples if n == "hygeia_view_changes_total"]
        assert shown["last_view_change"]["cause"] in causes, shown
    assert_alive(c)
