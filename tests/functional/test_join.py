"""Functional: a consortium of four grows to seven by state sync and governance, loses
two validators, shrinks, and its proofs still verify with genesis.json alone.

Seven real node processes. Genesis names four validators (nodes 0-3), which take
a snapshot at every checkpoint. The three other institutions make their homes
with ``hygeia init --join NODE0@HOST:PORT --genesis genesis.json`` alone. With
transactions flowing, it checks that:

- an unregistered joiner gets no link and waits in discovery; once its member
  registers its node key on chain (``hygeia client node register``) it restores
  a verified snapshot (its base height is the snapshot's, not 0) and follows the
  tip as an observer, with no validator config edit or restart;
- the members vote the three in, one change at a time: every running node
  switches epochs at each boundary, up to n = 7 (f = 2);
- after kill -9 of two of the original four, the network keeps committing;
- the members remove one of the dead validators (n = 6) and rotate another's node
  key (its node restarts with the new key file and votes again); the chain goes on;
- every transaction a running node accepted commits, the running nodes hold one
  chain (from the highest base height), and a proof of a transaction of the last
  epoch verifies offline with the genesis file alone (``hygeia proof verify``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from node.setup import testnet
from tests.functional.framework import TestNetwork, run_hygeia, wait_until

JOINERS = (4, 5, 6)
SNAPSHOTS = {"sync.snapshot_interval": "1", "sync.snapshot_keep": "2"}
TXS = 6000  # more than the loader submits (40 tx/s) before the story is through


def _joiner_homes(net: TestNetwork) -> None:
    """Each joiner gets a fresh home made by ``hygeia init --join`` (a new node key, the
    join peer, state sync on) in place of the one the testnet made."""
    first = net.nodes[0]
    genesis = first.home / "genesis.json"
    node0 = json.loads((net.dir / "testnet" / "testnet.json").read_text())["nodes"][0]
    for i in JOINERS:
        home = net.dir / f"joiner{i}"
        out = run_hygeia(
            "init", "--home", home, "--name", f"joiner{i}",
            "--join", f"{node0['node_id']}@127.0.0.1:{first.p2p}", "--genesis", genesis,
        )  # fmt: skip
        assert "state_sync" in out.stdout or "state sync" in out.stdout, out.stdout
        old = net.nodes[i].home
        net.move_home(i, home)
        shutil.rmtree(old / "data", ignore_errors=True)


def _cli_json(*args: str | Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(run_hygeia(*args).stdout)
    return out


def test_joiners_state_sync_become_validators_and_the_network_survives_two_kills() -> None:
    net = TestNetwork(
        7,
        followers=len(JOINERS),
        name="join",
        settings={i: SNAPSHOTS for i in range(4)},
        prepare=_joiner_homes,
    )
    with net:
        genesis = net.nodes[0].home / "genesis.json"
        members = json.loads(genesis.read_text())["members"]
        api0 = f"http://127.0.0.1:{net.nodes[0].api}"

        homes = json.loads((net.dir / "testnet" / "testnet.json").read_text())["nodes"]

        def key_of(i: int) -> str:  # the member keys stay in the testnet's homes
            return str(Path(homes[i]["home"]) / testnet.MEMBER_KEY_FILE)

        def run_gov(proposer: int, *args: str) -> None:
            proposal = _cli_json(
                "client", "gov", *args, "--api", api0, "--key", key_of(proposer), "--wait"
            )
            for voter in (1, 2, 3, 4):  # 5 of 7 members with the proposer
                if voter != proposer:
                    _cli_json(
                        "client", "gov", "vote", str(proposal["hash"]), "--approve",
                        "--api", api0, "--key", key_of(voter), "--wait",
                    )  # fmt: skip

        def wait_epoch(epoch: int, nodes: list[int]) -> None:
            wait_until(
                f"nodes {nodes} in epoch {epoch}",
                lambda: [net.status(i)["epoch"] for i in nodes],
                lambda epochs: all(e == epoch for e in epochs),
                timeout=120,
            )

        ids = {i: str(net.status(i)["node_id"]) for i in range(7)}
        txs = net.sign_anchors(TXS, member=1)
        with net.load(txs, [0, 1, 2, 3], rate=40) as loader:
            for i in JOINERS:  # no link for an unregistered key: still discovering
                assert net.status(i)["state_sync"]["phase"] == "discovering"
                _cli_json(
                    "client", "node", "register", "--node-key", ids[i],
                    "--p2p", f"127.0.0.1:{net.nodes[i].p2p}",
                    "--api", api0, "--key", key_of(i), "--wait",
                )  # fmt: skip
            # the operator's view: `hygeia status --wait-synced` waits through the state
            # sync and the block sync after it, and exits 0 once caught up
            waited = run_hygeia(
                "status", "--home", str(net.nodes[4].home), "--wait-synced", "--timeout", "120",
                timeout=150,
            )  # fmt: skip
            assert waited.returncode == 0
            for i in JOINERS:

                def restored(i: int = i) -> tuple[dict[str, Any], int]:
                    return net.status(i), net.height(0)

                wait_until(
                    f"node{i} to restore a snapshot and follow the tip",
                    restored,
                    lambda st: (
                        st[0]["state_sync"]["phase"] == "restored" and st[0]["height"] >= st[1] - 16
                    ),
                    timeout=120,
                )
                status = net.status(i)
                assert status["base_height"] > 0 and status["role"] == "observer", status
                net.log(f"node{i} restored the snapshot of height {status['base_height']}")

            for epoch, i in enumerate(JOINERS, start=1):
                run_gov(
                    0, "propose-add-validator", "--member", members[i]["id"],
                    "--name", f"node{i}", "--node-key", ids[i],
                    "--p2p", f"127.0.0.1:{net.nodes[i].p2p}",
                )  # fmt: skip
                wait_epoch(epoch, list(range(7)))
                net.log(f"epoch {epoch}: node{i} is a validator")
            assert all(net.status(i)["role"] == "validator" for i in range(7))
            assert net.status(0)["validators"] == 7

            loader.set_targets([0, 1, 4, 5, 6])
            before = net.height(0)
            net.kill(2)
            net.kill(3)
            net.log("node2 and node3 killed: n = 7, f = 2")
            wait_until(
                "the network to commit on without them",
                lambda: net.height(0),
                lambda h: h >= before + 10,
                timeout=60,
            )
            run_gov(0, "propose-remove-validator", "--node-key", ids[3])
            alive = [0, 1, 4, 5, 6]
            wait_epoch(4, alive)
            assert net.status(0)["validators"] == 6
            net.log("epoch 4: node3 removed")

            # node1's operator rotates its node key: voted in, then the node restarts
            # with the new key file (it follows, not votes, between the two)
            new_key = net.dir / "node1-new-key.json"
            new_id = run_hygeia("keys", "new", "--out", str(new_key)).stdout.strip()
            run_gov(
                0, "propose-replace-validator-key", "--node-key", ids[1],
                "--new-node-key", new_id, "--p2p", f"127.0.0.1:{net.nodes[1].p2p}",
            )  # fmt: skip
            wait_epoch(5, alive)
            assert net.status(1)["role"] == "observer"  # its old key left the set
            loader.set_targets([0, 4, 5, 6])
            net.stop(1)
            shutil.copyfile(new_key, net.nodes[1].home / "node_key.json")
            net.start(1)
            net.wait_ready(1)
            wait_until(
                "node1 back as a validator with its new key",
                lambda: net.status(1),
                lambda st: st["node_id"] == new_id and st["role"] == "validator",
                timeout=60,
            )
            net.log("epoch 5: node1 votes with its new key")
            loader.set_targets(alive)
            at_epoch_5 = net.height(0)
            wait_until(
                "blocks of epoch 5",
                lambda: net.height(0),
                lambda h: h >= at_epoch_5 + 5,
                timeout=60,
            )

        # a 202 is not durable: what only a node that went down admitted is submitted again
        by_hash = {tx.hash: tx for tx in txs}
        again = [
            by_hash[h]
            for k in (1, 2, 3)  # killed, or stopped to change its key
            for h in loader.accepted_by(k)
            if net.tx_status(0, h)["status"] == "unknown"
        ]
        net.submit(0, again)
        hashes = [a.tx_hash for a in loader.accepted]
        assert len(hashes) > 200 and not loader.errors, loader.errors[:3]
        net.wait_committed(hashes, [0, 1], timeout=180)
        for i in JOINERS:  # below its base a joiner has the results, not the blocks
            sample = hashes[:: max(1, len(hashes) // 50)]
            statuses = {net.tx_status(i, h)["status"] for h in sample}
            assert statuses == {"committed"}, (i, statuses)
        height = net.wait_same_height(alive)
        assert net.assert_same_chain(alive) == height

        last = hashes[-1]
        proof = net.dir / "last-proof.json"
        net.fetch_proof(4, last, proof)
        out = run_hygeia("proof", "verify", str(proof), "--genesis", str(genesis))
        assert out.stdout.startswith("VALID"), out.stdout
        assert json.loads(proof.read_text())["epochs"][-1]["epoch"] == 5
