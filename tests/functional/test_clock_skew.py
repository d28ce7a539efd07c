"""Functional: validators whose wall clocks are wrong by minutes (libfaketime).

A hospital's node may run on a host whose clock NTP has not corrected. Block
timestamps come from the proposer's wall clock, so a skewed proposer must not
stop the network: the cluster may change view past it, but every transaction
is committed on every node, the skewed node included, and all nodes keep one
chain. Each case starts the view-0 primary (node 0) with its wall clock moved
(``TestNetwork(clock_offsets=...)``), and a second node the other way.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from tests.functional.framework import TestNetwork


@pytest.mark.parametrize(
    ("primary", "other"),
    [("+600", "-90"), ("-600", "+90")],
    ids=["primary-ahead", "primary-behind"],
)
def test_skewed_clocks_still_commit_everything_on_one_chain(primary: str, other: str) -> None:
    """Ten minutes of skew on the primary and ninety seconds the other way on node 2:
    40 transactions submitted to every node are committed on all four, which end at
    one height with the same block hashes."""
    net = TestNetwork(4, name="skew", clock_offsets={0: primary, 2: other})
    with net:
        first = net.sign_anchors(20)
        net.submit([0, 1, 2, 3], first)
        net.wait_committed([tx.hash for tx in first])
        second = net.sign_anchors(20)
        net.submit([0, 1, 2, 3], second)
        net.wait_committed([tx.hash for tx in second])
        height = net.wait_same_height()
        assert net.assert_same_chain() == height
        for i, offset in ((0, primary), (2, other)):
            skew = _logged_skew_s(net, i)
            assert abs(skew - int(offset)) < 30, f"node{i} logs {skew:.0f}s off, not {offset}"
        views = {i: net.status(i)["view"] for i in range(4)}
        net.log(f"skew {primary} on node0, {other} on node2: height {height}, views {views}")


def _logged_skew_s(net: TestNetwork, i: int) -> float:
    """How far node ``i``'s wall clock is from ours, read off its latest JSON log line
    (so the test knows the skew really reached the process)."""
    now = time.time()
    for line in reversed(net.nodes[i].log_path.read_text(encoding="utf-8").splitlines()):
        if line.startswith("{") and '"timestamp"' in line:
            stamp = json.loads(line)["timestamp"]
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() - now
    raise AssertionError(f"node{i} wrote no JSON log line with a timestamp")
