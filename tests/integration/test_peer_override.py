"""The contract the chaos proxies rely on: a ``p2p.peers`` entry replaces a validator's
genesis address.

``node/daemon.py`` adds the genesis validators to the transport, then the config
peers; ``Transport.add_peer`` of a known node id replaces the peer's
``dial_address``, and the dialer reads that address at every attempt
(``node/net/dialer.py``). So a node whose config lists validator j at another
address dials j only there: the functional framework's ``TestNetwork(proxied=True)``
puts every peer link behind a ``tests.chaos.proxy`` proxy this way.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from node.setup.config import load_config
from tests.chaos.proxy import LinkProxy
from tests.integration.cluster import HOST, Cluster, wait_until
from tests.support.ports import unused_port


def _set_peers(cluster: Cluster, i: int, peers: list[str]) -> None:
    home = cluster.homes[i]
    path = home.path / "config.toml"
    text = path.read_text(encoding="utf-8")
    assert text.count("# peers = []") == 1, path
    listed = ", ".join(f'"{p}"' for p in peers)
    path.write_text(text.replace("# peers = []", f"peers = [{listed}]"), encoding="utf-8")
    home.cfg = load_config(home.path, env={})


async def test_config_peer_replaces_the_genesis_address_of_a_validator(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(4)
    b = cluster.homes[1]
    # The proxy leads nowhere: node0's dials through it fail and are retried, and a
    # listener on node1's genesis address (node1 is down) sees any dial made there.
    async with LinkProxy((HOST, unused_port()), name="0to1") as proxy:
        _set_peers(cluster, 0, [f"{b.node_id.hex()}@{proxy.address}"])
        sentinel = socket.socket()
        sentinel.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sentinel.bind((HOST, b.p2p))
        sentinel.listen(8)
        sentinel.setblocking(False)
        try:
            await cluster.start(0)
            node0 = cluster.node(0)
            info = {p.node_id: p for p in node0.transport.peers()}
            assert info[b.node_id.hex()].dial_address == proxy.address
            other = cluster.homes[2]  # not overridden: still its genesis address
            assert info[other.node_id.hex()].dial_address == f"{HOST}:{other.p2p}"
            await wait_until(
                "node0 to dial node1 at the proxy twice",
                lambda: proxy.stats.accepted,
                lambda n: n >= 2,
            )
            try:
                conn, _ = sentinel.accept()
            except BlockingIOError:
                conn = None
            assert conn is None, "node0 dialled node1's genesis address"
        finally:
            sentinel.close()
        assert proxy.stats.connected == 0  # every attempt failed at the proxy
