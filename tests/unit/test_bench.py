"""The pure pieces of ``hygeia bench``: statistics, report shape, pre-signing, /proc parsing;
and tiny runs of the in-process benches (state sync, ledger apply per type).

No figure is checked and nothing talks to a network.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import nacl.signing
import pytest

from node.bench import procs, run_all, workload
from node.bench.progress import PlainProgress, Snapshot, make_progress
from node.bench.stats import (
    NodeSample,
    RunStats,
    build_report,
    latency_summary,
    per_second,
    percentile,
    sliding_min_rate,
)
from node.bench.workload import LoadConfig, presign
from node.core.tx import decode_tx
from node.setup import testnet

CHAIN = "bench-chain"


# ------------------------------------------------------------------ statistics
def test_percentile_interpolates_between_closest_ranks() -> None:
    vals = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(vals, 0) == 1.0
    assert percentile(vals, 50) == 3.0
    assert percentile(vals, 100) == 5.0
    assert percentile(vals, 25) == 2.0
    assert percentile([10.0, 20.0], 50) == 15.0
    assert percentile([10.0, 20.0], 95) == pytest.approx(19.5)


def test_percentile_of_one_hundred_values_matches_numpy_linear() -> None:
    vals = [float(i) for i in range(1, 101)]  # 1..100
    assert percentile(vals, 99) == pytest.approx(99.01)
    assert percentile(vals, 95) == pytest.approx(95.05)
    assert percentile(vals, 50) == pytest.approx(50.5)


def test_percentile_edge_cases() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        percentile([1.0], -1)


def test_latency_summary_sorts_and_rounds() -> None:
    s = latency_summary([30.0, 10.0, 20.04])
    assert s == {
        "count": 3,
        "min": 10.0,
        "mean": 20.0,
        "p50": 20.0,
        "p95": 29.0,
        "p99": 29.8,
        "max": 30.0,
    }
    empty = latency_summary([])
    assert empty["count"] == 0
    assert all(empty[k] is None for k in ("min", "mean", "p50", "p95", "p99", "max"))


def test_per_second_buckets_only_the_window() -> None:
    times = [0.5, 2.0, 2.1, 2.99, 3.0, 4.5, 5.0, 9.0]
    assert per_second(times, 2.0, 3.0) == [3, 1, 1]
    assert per_second([], 0.0, 2.5) == [0, 0, 0]


def test_sliding_min_rate() -> None:
    assert sliding_min_rate([5, 1, 5, 5], 2) == 3.0
    assert sliding_min_rate([4, 4], 1) == 4.0
    assert sliding_min_rate([1, 2], 3) is None


# ------------------------------------------------------------------ configuration
def test_load_config_validates_and_plans_the_pre_signed_pool() -> None:
    open_cfg = LoadConfig(mode="open", rate=100.0, duration_s=10.0, warmup_s=2.0)
    assert open_cfg.planned_txs() == 1200 + 16
    closed = LoadConfig(mode="closed", concurrency=50, duration_s=4.0, warmup_s=0.0)
    assert closed.planned_txs() == workload.CLOSED_CEILING_TPS * 4 + 50
    assert LoadConfig(mode="closed", txs=7).planned_txs() == 7
    with pytest.raises(ValueError):
        LoadConfig(mode="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LoadConfig(mode="open", rate=0.0)
    with pytest.raises(ValueError):
        LoadConfig(mode="closed", duration_s=0.0)
    with pytest.raises(ValueError):
        LoadConfig(mode="closed", concurrency=0)


def test_load_testnet_reads_targets_keys_and_tokens(tmp_path: Path) -> None:
    doc = testnet.testnet_init(tmp_path / "tn", validators=2, base_port=45000, genesis_time=1)
    chain_id, targets, keys = workload.load_testnet(tmp_path / "tn")
    assert chain_id == doc["chain_id"]
    assert [t.name for t in targets] == ["node0", "node1"]
    assert targets[1].api == "http://127.0.0.1:45011"
    assert targets[0].admin == "http://127.0.0.1:45002"
    assert targets[0].admin_token
    assert targets[0].home == str(tmp_path / "tn" / "node0")
    assert keys == [tmp_path / "tn" / f"node{i}" / "member_key.json" for i in range(2)]


# ------------------------------------------------------------------ pre-signing
def _seeds(n: int) -> list[bytes]:
    return [bytes([i + 1]) * 32 for i in range(n)]


def test_presign_builds_distinct_valid_anchors_round_robin_over_keys() -> None:
    seeds = _seeds(3)
    txs = presign(seeds, CHAIN, 10, salt=b"s", workers=1)
    assert len(txs) == 10
    assert len({t.hash for t in txs}) == 10
    pubs = [bytes(nacl.signing.SigningKey(s).verify_key).hex() for s in seeds]
    digests = set()
    for i, signed in enumerate(txs):
        tx = decode_tx(signed.wire, chain_id=CHAIN)
        assert tx.wire == signed.wire  # already canonical: the node does not re-encode
        assert tx.hash == signed.hash
        assert tx.verify_signature()
        assert tx.type == "data.anchor"
        assert tx.signer == pubs[i % 3]
        assert tx.nonce == i
        assert tx.body == {"digest": workload.anchor_digest(b"s", i)}
        digests.add(tx.body["digest"])
    assert len(digests) == 10


def test_presign_is_deterministic_for_a_salt_and_fresh_without_one() -> None:
    a = presign(_seeds(1), CHAIN, 3, salt=b"x", workers=1)
    b = presign(_seeds(1), CHAIN, 3, salt=b"x", workers=1)
    c = presign(_seeds(1), CHAIN, 3, workers=1)
    assert a == b
    assert {t.hash for t in a}.isdisjoint(t.hash for t in c)


def test_presign_in_worker_processes_matches_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workload, "_PRESIGN_CHUNK", 4)
    parallel = presign(_seeds(2), CHAIN, 9, salt=b"p", workers=2)
    serial = presign(_seeds(2), CHAIN, 9, salt=b"p", workers=1)
    assert parallel == serial


def test_presign_needs_a_key() -> None:
    with pytest.raises(ValueError):
        presign([], CHAIN, 1)
    assert presign(_seeds(1), CHAIN, 0, workers=1) == []


# ------------------------------------------------------------------ report
def _stats() -> RunStats:
    nodes = [
        NodeSample("node0", "http://a", pid=1, peak_rss_mb=80.5, cpu_percent=40.0),
        NodeSample("node1", "http://b", pid=None),
    ]
    nodes[0].blocks_followed = 4
    nodes[0].block_fetch_s = 0.02
    return RunStats(
        submitted=5,
        accepted=4,
        latencies_ms=[100.0, 200.0, 300.0],
        commit_times=[0.5, 1.2, 1.7, 2.5, 3.9],
        errors={"503 mempool-full": 1},
        presigned=20,
        exhausted=False,
        client_cpu_percent=10.0,
        host_busy_percent=100.0,
        nodes=nodes,
    )


REPORT_KEYS = {
    "benchmark",
    "mode",
    "started_at",
    "offered_tps",
    "concurrency",
    "duration_s",
    "warmup_s",
    "drain_s",
    "nodes_count",
    "signers",
    "presigned",
    "presign_s",
    "presign_exhausted",
    "submitted",
    "submitted_tps",
    "accepted",
    "committed",
    "not_committed",
    "committed_tps",
    "committed_tps_min_10s",
    "node_cpu_ms_per_tx",
    "committed_per_s",
    "latency_ms",
    "errors",
    "errors_outside_window",
    "max_send_lag_ms",
    "peak_rss_mb",
    "nodes",
    "client",
    "host",
    "machine",
}


def test_report_shape_and_window_arithmetic() -> None:
    cfg = LoadConfig(mode="open", rate=2.0, duration_s=2.0, warmup_s=1.0)
    report = build_report(cfg, _stats(), signers=4, machine={"cpu_count": 2})
    assert set(report) == REPORT_KEYS
    assert report["offered_tps"] == 2.0
    assert report["concurrency"] is None
    assert report["committed_per_s"] == [2, 1]  # commits at 1.2, 1.7 | 2.5 (window [1, 3))
    assert report["committed_tps"] == 1.5
    assert report["committed"] == 3
    assert report["not_committed"] == 1
    assert report["submitted_tps"] == 2.5
    assert report["latency_ms"]["p50"] == 200.0
    assert report["errors"] == {"503 mempool-full": 1}
    assert report["peak_rss_mb"] == {"node0": 80.5, "node1": None}
    assert report["nodes"][0]["block_fetch_ms_mean"] == 5.0
    assert report["nodes"][1]["block_fetch_ms_mean"] is None
    assert report["host"]["other_processes_cpu_percent"] is None  # node1's CPU is unknown
    assert report["node_cpu_ms_per_tx"] is None
    json.dumps(report)  # serialisable as is


def test_report_closed_loop_and_other_processes() -> None:
    stats = _stats()
    stats.nodes = stats.nodes[:1]
    cfg = LoadConfig(mode="closed", concurrency=8, duration_s=2.0, warmup_s=1.0)
    report = build_report(cfg, stats, signers=1, machine={})
    assert report["offered_tps"] is None
    assert report["concurrency"] == 8
    assert report["host"]["other_processes_cpu_percent"] == 50.0  # 100 - 40 - 10
    # 40 % of a core for 2 s = 800 ms of CPU for the 3 commits of the window
    assert report["node_cpu_ms_per_tx"] == pytest.approx(266.667)


def test_summary_takes_medians_and_checks_goals() -> None:
    def fake(tps: float, p99: float, rss: float) -> dict[str, object]:
        return {
            "committed_tps": tps,
            "committed_tps_min_10s": tps,
            "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": p99},
            "peak_rss_mb": {"node0": rss, "node1": None},
            "nodes": [{"cpu_percent": 50.0, "view_start": 0, "view_end": 1}],
            "client": {"cpu_percent": 10.0},
            "host": {"other_processes_cpu_percent": 0.0},
            "errors": {"503 mempool-full": 2},
            "not_committed": 0,
        }

    out = run_all.summarize(
        {
            "closed": [fake(900.0, 2000.0, 100.0), fake(1100.0, 1.0, 120.0), fake(1000.0, 1.0, 1)],
            "open": [fake(500.0, 800.0, 310.0)],
        }
    )
    assert out["closed"]["committed_tps"] == 1000.0
    assert out["closed"]["committed_tps_runs"] == [900.0, 1100.0, 1000.0]
    assert out["closed"]["peak_rss_mb_max"] == 100.0
    assert out["closed"]["errors"] == {"503 mempool-full": 6}
    assert out["closed"]["view_changes"] == 3
    goals = out["goals"]
    assert goals["closed_committed_tps>=1000"] == {"value": 1000.0, "target": 1000.0, "met": True}
    assert goals["open_p99_ms<=1000"]["met"] is True
    assert goals["peak_rss_mb<=300"] == {"value": 310.0, "target": 300.0, "met": False}


# ------------------------------------------------------------------ /proc
def test_parse_status_and_stat() -> None:
    status = "Name:\tpython3\nVmPeak:\t  500 kB\nVmHWM:\t  204800 kB\nVmRSS:\t 1024 kB\n"
    assert procs.parse_status_kb(status, "VmHWM") == 204800
    assert procs.parse_status_kb(status, "VmRSS") == 1024
    assert procs.parse_status_kb(status, "VmSwap") is None
    # the command name may hold spaces and parentheses; utime/stime are fields 14 and 15
    fields = ["S"] + ["0"] * 10 + ["250", "150"] + ["0"] * 30
    stat = "4242 (python (x) y) " + " ".join(fields)
    assert procs.parse_stat_cpu(stat, 100) == 4.0
    assert procs.parse_stat_cpu("garbage", 100) is None
    assert procs.parse_proc_stat("cpu  10 0 10 70 10 0 0 0 0 0\ncpu0 1 2 3 4\n") == (20, 100)
    assert procs.parse_proc_stat("intr 1 2\n") is None


def test_busy_percent_scales_to_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("node.bench.procs.os.cpu_count", lambda: 2)
    assert procs.busy_percent((0, 0), (50, 100)) == 100.0
    assert procs.busy_percent(None, (1, 2)) is None
    assert procs.busy_percent((5, 10), (5, 10)) is None


def test_find_node_pid_by_home_argument(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    home = tmp_path / "tn" / "node1"
    home.mkdir(parents=True)

    def fake(pid: int, *args: str) -> None:
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in args) + b"\0")

    fake(10, "python3", "-m", "node.cli", "start", "--home", str(tmp_path / "tn" / "node0"))
    fake(11, "python3", "-m", "node.cli", "start", "--home", str(home))
    fake(12, "vim", "--home", str(home))  # not a node start
    (proc / "self").mkdir()
    assert procs.find_node_pid(str(home), proc=proc) == 11
    assert procs.find_node_pid(str(tmp_path / "nowhere"), proc=proc) is None
    assert procs.find_node_pid(str(home), proc=tmp_path / "missing") is None
    assert procs.cmdline_has_home(["hygeia", "start", f"--home={home}"], str(home))


def test_machine_info_names_cores_and_python() -> None:
    info = procs.machine_info()
    assert info["cpu_count"] >= 1
    assert info["python"].count(".") == 2


# ------------------------------------------------------------------ progress
def test_plain_progress_prints_a_line_every_few_seconds() -> None:
    out = io.StringIO()
    p = PlainProgress(out, every_s=5.0)
    for t in (0.0, 0.5, 5.0, 6.0):
        p.update(Snapshot(t, 20.0, "measure", 10, 9, 8, 1, 123.0))
    p.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "committed 8" in lines[0] and "123 tx/s" in lines[0]


def test_make_progress_is_plain_off_a_terminal() -> None:
    assert isinstance(make_progress(True, io.StringIO()), PlainProgress)
    assert not isinstance(make_progress(False), PlainProgress)


def test_state_sync_bench_replays_and_restores_a_small_chain() -> None:
    """``python -m node.bench.state_sync`` on a small chain: every transaction replayed
    (certificates, signatures, execution, writes) and the tip's snapshot checked and
    restored (the bench raises if a chunk or the manifest does not verify)."""
    from node.bench import state_sync

    result = state_sync.run(600, 100, 4096)
    assert result["replay"]["txs"] == 600 and result["replay"]["blocks"] == 6
    restored = result["state_sync"]
    assert restored["height"] == 6 and restored["chunks"] > 1
    assert restored["state_entries"] > 2 * 600  # an anchor and a result per transaction


# ------------------------------------------------------------------ ledger apply benches
# every domain's bench times each transaction type of its domain (the EHR bench also
# times data.anchor); these were the last types added to them
NEWEST_TYPES = {"drug.undispense", "trial.approve", "claim.void", "access.review", "record.erase"}


def _domain_types(*names: str) -> set[str]:
    from node.ledger.domains import anchor, claims, ehr, supply, trials

    by_name = {d.DOMAIN.name: d.DOMAIN for d in (anchor, claims, ehr, supply, trials)}
    return {t.name for n in names for t in by_name[n].tx_types}


def test_apply_benches_time_every_type_of_their_domain_all_accepted() -> None:
    """A tiny run of each apply bench: every type of the domain timed, 20 transactions
    each, none rejected or refused, a rate reported (the claims bench raises on any
    rejection and reports ``count``)."""
    from node.bench import apply_claims, apply_ehr, apply_supply, apply_trials

    runs = {
        "ehr": (apply_ehr.run(20)["per_type"], _domain_types("ehr", "anchor")),
        "supply": (apply_supply.run(20, 1000)["per_type"], _domain_types("supply")),
        "trials": (apply_trials.run(20)["per_type"], _domain_types("trials")),
    }
    timed: set[str] = set()
    for domain, (per_type, types) in runs.items():
        assert set(per_type) == types, domain
        for name, v in per_type.items():
            assert (v["txs"], v["not_accepted"]) == (20, 0), name
            assert v["tx_per_s"] > 0, name
        timed |= set(per_type)
    claims = apply_claims.run(20, 10)["types"]
    assert set(claims) == _domain_types("claims")
    assert all(v["count"] == 20 and v["tx_per_s"] > 0 for v in claims.values())
    timed |= set(claims)
    assert timed >= NEWEST_TYPES


def test_apply_bench_stops_on_a_rejected_or_refused_transaction() -> None:
    """``require_accepted`` (and the untimed ``prepare``) raise when a transaction was
    rejected (an access.review of no break-glass access) or refused with an alert (an
    undispense of a never-commissioned pack); accepted ones pass."""
    from node.bench import apply_ehr, apply_supply
    from node.bench.apply_common import BenchChain, prepare, require_accepted

    ehr = BenchChain(apply_ehr.CHAIN, apply_ehr.MEMBERS)
    ehr.block([])
    good = ehr.sign(1, "data.anchor", apply_ehr.HOSP_A, lambda i: {"digest": "ab" * 32})
    require_accepted(ehr, "data.anchor", ehr.measure(good)["not_accepted"])
    review = {"emergency": "cd" * 32, "finding": "justified"}
    bad = ehr.sign(1, "access.review", apply_ehr.AUDITOR, lambda i: review)
    not_accepted = ehr.measure(bad)["not_accepted"]
    assert not_accepted == 1
    with pytest.raises(RuntimeError, match=r"1 access\.review .*unknown-emergency"):
        require_accepted(ehr, "access.review", not_accepted)

    supply = BenchChain(apply_supply.CHAIN, apply_supply.MEMBERS)
    supply.block([])
    pack = {"gtin": apply_supply.GTIN, "lot": "L1", "expiry": "301231", "serials": ["S1"]}
    prepare(
        supply, "commission", supply.sign(1, "drug.commission", apply_supply.MFR, lambda i: pack)
    )
    unknown = {"gtin": apply_supply.GTIN, "serials": ["NEVER1"]}
    undo = supply.sign(1, "drug.undispense", apply_supply.PHARMACY, lambda i: unknown)
    with pytest.raises(RuntimeError, match=r"undispense set-up.*refused so far: 1"):
        prepare(supply, "undispense set-up", undo)
    assert supply.rejected == 0 and supply.refused == 1
