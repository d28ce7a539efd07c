"""Functional: ``hygeia status`` against a real 4-node network, run as a subprocess.

``--testnet DIR`` shows every node's row at the height reached and exits 0; a node
stopped and left behind, then started again, is followed by ``--wait-synced`` until it
has caught up (exit 0); a SIGKILLed node's row says ``down`` and the exit status is 1.
"""

from __future__ import annotations

import subprocess

from tests.functional.framework import TestNetwork, run_hygeia, wait_until


def hygeia(*args: str) -> subprocess.CompletedProcess[str]:
    """``hygeia ARGS``, any exit status (not a terminal: plain tables, progress lines)."""
    return run_hygeia(*args, ok=False)


def rows(stdout: str) -> dict[str, list[str]]:
    """The plain testnet table: node name -> [height, epoch, role, view, primary, peers,
    syncing..., health...] (syncing and health may hold spaces: compare the first
    columns only)."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["name", "height", "epoch", "role", "view", "primary", "peers",
                                "syncing", "mempool", "health"], stdout  # fmt: skip
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


def advance(net: TestNetwork, nodes: list[int], blocks: int) -> int:
    """Commit transactions in small rounds until ``nodes`` are ``blocks`` heights further."""
    start = max(net.heights(nodes).values())

    def commit_a_round() -> dict[int, int]:
        net.wait_committed(net.submit(nodes, 3), nodes=nodes)
        return net.heights(nodes)

    wait_until(
        f"nodes {nodes} {blocks} heights past {start}",
        commit_a_round,
        lambda heights: min(heights.values()) >= start + blocks,
        interval=0,
    )
    return net.wait_same_height(nodes, at_least=start + blocks)


def test_status_testnet_wait_synced_and_a_down_node() -> None:
    with TestNetwork(4, name="status-cli") as net:
        testnet_dir = str(net.dir / "testnet")
        height = advance(net, [0, 1, 2, 3], 3)

        # every node answers, healthy, at the height reached
        result = wait_until(
            "hygeia status --testnet to exit 0",
            lambda: hygeia("status", "--testnet", testnet_dir),
            lambda r: r.returncode == 0,
            timeout=30,
        )
        table = rows(result.stdout)
        assert sorted(table) == ["node0", "node1", "node2", "node3"], result.stdout
        for name, row in table.items():
            assert int(row[0]) >= height, (name, result.stdout)
            assert row[1:3] == ["0", "validator"], (name, result.stdout)
            assert row[5] == "3/3" and row[6] == "no" and row[-1] == "ok", (name, result.stdout)

        # node3 is left behind, started again, and watched until it has caught up
        net.stop(3)
        behind = advance(net, [0, 1, 2], 12)  # more than block sync's lag threshold
        net.log(f"node3 stopped at {height}, the others at {behind}")
        net.start(3)
        waited = hygeia(
            "status", "--home", str(net.nodes[3].home), "--wait-synced", "--timeout", "60"
        )
        net.log(f"wait-synced said: {waited.stderr}{waited.stdout}".strip())
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert waited.stdout.startswith("node3 caught up: height "), waited.stdout
        caught = int(waited.stdout.split("height ", 1)[1].split()[0])
        assert caught >= behind - 2, waited.stdout  # SYNC_SLACK
        assert net.height(3) >= behind - 2
        assert "node3: " in waited.stderr  # progress lines off a terminal
        net.wait_connected()

        # a node killed with SIGKILL is a "down" row, the others still answer: exit 1
        net.kill(2)
        down = hygeia("status", "--testnet", testnet_dir)
        assert down.returncode == 1, down.stdout + down.stderr
        table = rows(down.stdout)
        assert table["node2"][0] == "down", down.stdout
        assert "cannot reach the node" in " ".join(table["node2"]), down.stdout
        for name in ("node0", "node1", "node3"):
            assert int(table[name][0]) >= behind - 2, (name, down.stdout)

        # one node by its home: the key/value table
        one = hygeia("status", "--home", str(net.nodes[0].home))
        assert one.returncode == 0, one.stdout + one.stderr
        fields = {
            k.strip(): v.strip() for k, _, v in (x.partition("  ") for x in one.stdout.splitlines())
        }
        assert fields["name"] == "node0" and fields["health"] == "ok", one.stdout
        assert int(fields["height"]) >= behind and fields["peers"] == "2/3", one.stdout
