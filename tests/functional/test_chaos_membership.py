"""Functional (fault suite, docs/faults.md): kill -9 and partitions aimed at the two
moments a changing consortium is most exposed, with the history checker.

Clients of ``tests.chaos.workload`` submit and read transactions throughout and
record a history; the nemesis (``Nemesis.inject``, ``Nemesis.holding``) plays each
fault at an event, not at a scheduled time; the checker (``tests.chaos.checker``
and ``check_accepted_kept``) then judges the history and the final chains:

* **across an epoch switch**: a fifth validator is voted in; some heights before
  the boundary a validator is killed with SIGKILL and another is cut off from
  every peer, so epoch 0 stands without a quorum short of its end; after 3 s the
  cut-off node comes back, and the set changes while the killed one is still
  dead; it is started again only past the boundary and must catch up across it.
  Every node must end in epoch 1 on one chain, and the checker (certificates
  judged by each height's own set) must find nothing.
* **during a state sync**: a joining node's links are slowed so that its fetch
  takes seconds; it is killed with SIGKILL mid-fetch (it must discard the
  unverified half on restart) and one of its sources is cut off mid-fetch the
  second time; it must still restore a verified snapshot and follow the chain,
  while the validators' history stays clean.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.chaos.checker import ChainBlock, check_all
from tests.chaos.clock import ClockControl
from tests.chaos.history import HistoryWriter, read_history
from tests.chaos.nemesis import Nemesis
from tests.chaos.runner import check_accepted_kept
from tests.chaos.schedule import Fault
from tests.chaos.workload import Workload
from tests.functional.framework import TestNetwork, run_hygeia, wait_until
from tests.functional.framework.httpclient import NodeUnreachable
from tests.functional.framework.node import configure_home

OUT = Path(__file__).resolve().parents[2] / "out" / "chaos"
VALIDATORS = 4
FAULT_MARGIN = 400  # heights before the epoch boundary at which the faults start
ISOLATION_S = 3.0
# a snapshot every 64 heights, the last 12 kept: a source still holds the snapshot a
# slowed fetch started on when it ends, at the workload's block rate
SNAPSHOTS = {
    "sync.snapshot_interval": "4",
    "sync.snapshot_keep": "12",
    "sync.snapshot_chunk_bytes": "16384",
}


def _cli_json(*args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(run_hygeia(*args).stdout)
    return out


def _member_key(net: TestNetwork, i: int) -> str:
    homes = json.loads((net.dir / "testnet" / "testnet.json").read_text())["nodes"]
    return str(Path(homes[i]["home"]) / "member_key.json")


def _register(net: TestNetwork, i: int) -> str:
    node_id = str(net.status(i)["node_id"])
    api0 = f"http://127.0.0.1:{net.nodes[0].api}"
    _cli_json(
        "client", "node", "register", "--node-key", node_id,
        "--p2p", f"127.0.0.1:{net.nodes[i].p2p}", "--api", api0,
        "--key", _member_key(net, i), "--wait",
    )  # fmt: skip
    return node_id


def _workload(net: TestNetwork, history: HistoryWriter, *, seed: int) -> Workload:
    """Four clients submitting to and reading from the genesis validators, 4 tx/s each."""
    return Workload(
        history,
        [net.nodes[i].api for i in range(VALIDATORS)],
        net.chain_id,
        [net.nodes[i].member_key for i in range(VALIDATORS)],
        clients=4,
        rate=4.0,
        seed=seed,
    )


def _chain(net: TestNetwork, i: int, start: int = 1) -> list[ChainBlock]:
    return [ChainBlock.from_api(net.block(i, h)) for h in range(start, net.height(i) + 1)]


def _status(net: TestNetwork, i: int) -> dict[str, Any]:
    try:
        return net.status(i)
    except NodeUnreachable:  # restarting
        return {}


def _judge(
    history: Path, chains: dict[int, list[ChainBlock]], honest: Sequence[int], n: Any
) -> dict[str, int]:
    ops = read_history(history)
    violations = check_all(ops, chains, n=n, honest=honest, recovery_bound_s=60.0)
    kept, counts = check_accepted_kept(ops, chains, honest, max(honest) + 1)
    violations += kept
    assert violations == [], "\n".join(str(v) for v in violations[:20])
    assert counts["accepted_lost_otherwise"] == 0 and counts["accepted_in_chain"] > 20, counts
    return counts


def _wide_window(net: TestNetwork) -> None:
    """A watermark window of 1,024 heights: the boundary comes ~1,100 heights after the
    vote. Once the end is known the primary fills the way with empty blocks (about 100
    a second here), so the boundary is some seconds away, and the faults are set
    ``FAULT_MARGIN`` heights before it."""
    text = (net.nodes[0].home / "genesis.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    doc["consensus"] |= {"checkpoint_interval": 128, "watermark_window": 1024}
    for node in net.nodes:
        (node.home / "genesis.json").write_text(json.dumps(doc, indent=2) + "\n", "utf-8")


def test_kill_and_partition_across_an_epoch_switch_lose_nothing() -> None:
    out = OUT / "membership-epoch-switch"
    out.mkdir(parents=True, exist_ok=True)
    net = TestNetwork(
        5, followers=1, name="chaos-epoch", proxied=True, proxy_seed=11, prepare=_wide_window
    )
    with net:
        api0 = f"http://127.0.0.1:{net.nodes[0].api}"
        members = json.loads((net.nodes[0].home / "genesis.json").read_text())["members"]
        history_path = out / "history.jsonl"
        history_path.unlink(missing_ok=True)
        with HistoryWriter(history_path) as history:
            workload = _workload(net, history, seed=11)
            nemesis = Nemesis(net, history, ClockControl(out / "clocks", 5))
            workload.start()
            try:
                node4 = _register(net, 4)
                proposal = _cli_json(
                    "client", "gov", "propose-add-validator", "--member", members[4]["id"],
                    "--name", "node4", "--node-key", node4,
                    "--p2p", f"127.0.0.1:{net.nodes[4].p2p}",
                    "--api", api0, "--key", _member_key(net, 0), "--wait",
                )  # fmt: skip
                for voter in (1, 2, 3):  # 4 of 5 members with the proposer
                    _cli_json(
                        "client", "gov", "vote", str(proposal["hash"]), "--approve",
                        "--api", api0, "--key", _member_key(net, voter), "--wait",
                    )  # fmt: skip
                pending = _cli_json("client", "validators", "--api", api0)["pending"]
                assert pending is not None, "the boundary passed before the faults were set"
                first = int(pending["from_height"])
                net.log(f"epoch 1 starts at height {first}")
                wait_until(
                    "the chain some heights short of the boundary",
                    lambda: net.height(0),
                    lambda h: h >= first - FAULT_MARGIN,
                    timeout=120,
                )
                with nemesis.holding(Fault.make("kill", nodes=(1,))):
                    # epoch 0 keeps 3 of its 4 validators: a kill alone may not stop it
                    assert net.height(0) < first, "the boundary passed before the faults"
                    with nemesis.holding(Fault.make("isolate", node=2)):
                        # 2 of 4 live: no quorum, the chain stands short of the boundary
                        stalled = net.height(0)
                        assert stalled < first, "the boundary passed before the faults"
                        time.sleep(ISOLATION_S)  # the fault's length, nothing waited on
                        assert net.height(0) < first, "epoch 0 committed without a quorum"
                    # node2 back: the set changes while node1 is still dead
                    wait_until(
                        "the boundary crossed with node1 dead",
                        lambda: net.height(0),
                        lambda h: h > first + 2,
                        timeout=120,
                    )
                wait_until(
                    "every node in epoch 1",
                    lambda: [_status(net, i).get("epoch") for i in range(5)],
                    lambda epochs: all(e == 1 for e in epochs),
                    timeout=120,
                )
                workload.drain(60.0)
            finally:
                workload.stop()
        height = net.wait_same_height(range(5), timeout=120)
        chains = {i: _chain(net, i) for i in range(5)}
        counts = _judge(history_path, chains, list(range(5)), lambda h: 4 if h < first else 5)
        net.log(f"checker: nothing lost, {counts}")
        assert net.assert_same_chain() == height
        assert nemesis.injected == {"kill": 1, "isolate": 1}


def test_kill_and_partition_during_a_state_sync_lose_nothing() -> None:
    out = OUT / "membership-state-sync"
    out.mkdir(parents=True, exist_ok=True)
    joiner = 4

    def through_proxies(net: TestNetwork) -> None:
        """The joiner reaches every validator through a proxy, so its fetch can be
        slowed and cut, and restores a snapshot on its first start; the validators
        do not list it, so it gets no link (and no snapshot) until it is registered."""
        assert net.proxies is not None
        meta = json.loads((net.dir / "testnet" / "testnet.json").read_text())
        ids = [n["node_id"] for n in meta["nodes"]]
        peers = ", ".join(f'"{ids[j]}@{net.proxies.address(joiner, j)}"' for j in range(VALIDATORS))
        configure_home(
            net.nodes[joiner].home, {"p2p.peers": f"[{peers}]", "sync.state_sync": "true"}
        )
        for i in range(VALIDATORS):  # no validator lists the joiner: it links once registered
            others = ", ".join(
                f'"{ids[j]}@{net.proxies.address(i, j)}"' for j in range(VALIDATORS) if j != i
            )
            configure_home(net.nodes[i].home, {"p2p.peers": f"[{others}]"})

    net = TestNetwork(
        5,
        followers=1,
        name="chaos-sync",
        proxied=True,
        proxy_seed=12,
        settings={i: SNAPSHOTS for i in range(VALIDATORS)},
        prepare=through_proxies,
    )
    with net:
        history_path = out / "history.jsonl"
        history_path.unlink(missing_ok=True)
        snapshots = net.nodes[0].home / "snapshots"
        with HistoryWriter(history_path) as history:
            workload = _workload(net, history, seed=12)
            nemesis = Nemesis(net, history, ClockControl(out / "clocks", 5))
            workload.start()
            try:
                wait_until(
                    "node0 to hold a complete snapshot of a few hundred transactions",
                    lambda: sorted(p.parent.name for p in snapshots.glob("*/manifest.bin")),
                    lambda names: bool(names) and int(names[-1]) >= 64,
                    timeout=180,
                )
                slow = [(j, joiner) for j in range(VALIDATORS)]
                net.faults(lambda p: p.bandwidth(8_000, pairs=slow))
                _register(net, joiner)

                def fetching() -> dict[str, Any]:
                    return _status(net, joiner).get("state_sync") or {}

                wait_until(
                    "the joiner fetching chunks",
                    fetching,
                    lambda st: st.get("phase") == "fetching" and st["chunks_done"] >= 1,
                    timeout=60,
                )
                nemesis.inject(Fault.make("kill", nodes=(joiner,)), 2.0)
                net.faults(lambda p: p.bandwidth(8_000, pairs=slow))
                wait_until(
                    "the joiner fetching again after its restart",
                    fetching,
                    lambda st: st.get("phase") == "fetching" and st["chunks_done"] >= 1,
                    timeout=60,
                )
                nemesis.inject(Fault.make("isolate", node=0), 3.0)  # the heal lifts the cap
                wait_until(
                    "the joiner to restore the snapshot",
                    fetching,
                    lambda st: st.get("phase") == "restored",
                    timeout=120,
                )
                workload.drain(60.0)
            finally:
                workload.stop()
        log = net.nodes[joiner].log_path.read_text(encoding="utf-8", errors="replace")
        assert "unfinished state sync discarded" in log  # the half from before the kill
        validators = list(range(VALIDATORS))
        height = net.wait_same_height(range(5), timeout=120)
        chains = {i: _chain(net, i) for i in validators}
        counts = _judge(history_path, chains, validators, VALIDATORS)
        net.log(f"checker: nothing lost, {counts}")
        assert net.assert_same_chain() == height  # the joiner from its base height
        assert int(net.status(joiner)["base_height"]) > 0
