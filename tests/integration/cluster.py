"""An n-validator testnet run as ``Node`` objects in one event loop, for integration tests.

``Cluster`` builds a testnet with ``node.setup.testnet.testnet_init`` (real node
homes, real LevelDB; the module is imported as ``testnet`` because pytest would
collect a bare ``testnet_init``), then moves every listener to a port the kernel
handed out and keeps it held while the cluster lives (``tests.support.ports``),
so that neither a parallel run nor an outgoing connection can take it. The three
``listen`` lines of each ``config.toml`` and the validators' ``p2p`` addresses
in ``genesis.json`` are rewritten. Nodes talk over real loopback sockets and
serve real HTTP. Conditions are awaited with ``wait_until`` and a deadline,
never with a fixed sleep; a timeout names what was awaited and the last state
seen. The fixtures ``make_cluster`` and ``http`` live in ``conftest.py``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nacl.signing

from node.core.keys import load_key
from node.core.tx import Tx, build_tx
from node.daemon import Node
from node.setup import testnet
from node.setup.config import NodeConfig, load_config
from node.setup.genesis import Genesis, Validator, load_genesis, parse_genesis, write_genesis
from node.setup.home import read_admin_token
from tests.support.ports import HOST, HeldPorts
from tests.support.waiting import wait_until_async

__all__ = [
    "CHAIN",
    "HOST",
    "TIMEOUT",
    "Cluster",
    "Home",
    "assert_alive",
    "get_json",
    "post_tx",
    "wait_until",
]


async def wait_until(
    what: str,
    probe: Callable[[], Any],
    done: Callable[[Any], bool] = bool,
    *,
    timeout: float | None = None,
    interval: float = 0.02,
) -> Any:
    """``tests.support.waiting.wait_until_async`` with this layer's default deadline."""
    return await wait_until_async(
        what, probe, done, timeout=TIMEOUT if timeout is None else timeout, interval=interval
    )


CHAIN = "hygeia-itest"
TIMEOUT = 30.0
# testnet_init's own ports are never bound: every one is rewritten (see Cluster)
PLACEHOLDER_BASE_PORT = 1000


@dataclass
class Home:
    """One node home of a cluster and what tests need to reach it."""

    index: int
    path: Path
    cfg: NodeConfig
    p2p: int
    api: int
    admin: int
    node_key: nacl.signing.SigningKey
    member_key: nacl.signing.SigningKey
    token: str

    @property
    def node_id(self) -> bytes:
        return bytes(self.node_key.verify_key)

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api}"

    @property
    def admin_url(self) -> str:
        return f"http://{HOST}:{self.admin}"


def _retarget_config(home: Path, old: tuple[int, int, int], new: tuple[int, int, int]) -> None:
    path = home / "config.toml"
    text = path.read_text(encoding="utf-8")
    for before, after in zip(old, new, strict=True):
        needle = f'"{HOST}:{before}"'
        assert text.count(needle) == 1, f"{path}: expected one {needle}"
        text = text.replace(needle, f'"{HOST}:{after}"')
    path.write_text(text, encoding="utf-8")


class Cluster:
    """An n-validator testnet whose nodes run as ``Node`` objects in this event loop."""

    def __init__(self, root: Path, n: int, consensus: dict[str, int] | None = None) -> None:
        testnet.testnet_init(root, validators=n, base_port=PLACEHOLDER_BASE_PORT, chain_id=CHAIN)
        self.reservation = HeldPorts.any(3 * n)
        ports = self.reservation.ports
        triples = [(ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]) for i in range(n)]
        homes = [root / f"node{i}" for i in range(n)]
        for i, home in enumerate(homes):
            _retarget_config(home, testnet.node_ports(PLACEHOLDER_BASE_PORT, i), triples[i])
        old = load_genesis(homes[0] / "genesis.json")
        validators = tuple(
            Validator(v.name, v.member, v.node_key, f"{HOST}:{triples[i][0]}")
            for i, v in enumerate(old.validators)
        )
        params = {**old.consensus, **(consensus or {})}
        draft = Genesis(old.chain_id, old.genesis_time, params, validators, old.members)
        genesis = parse_genesis(draft.to_json())
        self.homes: list[Home] = []
        for i, home in enumerate(homes):
            write_genesis(home / "genesis.json", genesis)
            cfg = load_config(home, env={})
            assert cfg.p2p.listen == f"{HOST}:{triples[i][0]}"
            self.homes.append(
                Home(
                    index=i,
                    path=home,
                    cfg=cfg,
                    p2p=triples[i][0],
                    api=triples[i][1],
                    admin=triples[i][2],
                    node_key=load_key(cfg.node_key_path),
                    member_key=load_key(home / testnet.MEMBER_KEY_FILE),
                    token=read_admin_token(cfg.admin_token_path),
                )
            )
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.nodes: dict[int, Node] = {}

    # -------------------------------------------------------------- lifecycle
    async def start(self, *indices: int) -> None:
        for i in indices:
            assert i not in self.nodes, f"node{i} is already running"
            node = Node(self.homes[i].cfg)
            self.nodes[i] = node
            await node.start()

    async def stop(self, *indices: int) -> None:
        for i in indices:
            await self.nodes.pop(i).stop()

    async def close(self) -> None:
        try:
            await self.stop(*sorted(self.nodes))
        finally:
            self.reservation.release()

    def node(self, i: int) -> Node:
        return self.nodes[i]

    # ------------------------------------------------------------ observation
    async def wait_connected(self, indices: Iterable[int]) -> None:
        """Every node of ``indices`` has a link to every other one of them."""
        group = sorted(indices)
        ids = {i: self.homes[i].node_id for i in group}

        def missing() -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for i in group:
                linked = set(self.nodes[i].transport.connected())
                lacks = [f"node{j}" for j in group if j != i and ids[j] not in linked]
                if lacks:
                    out[f"node{i}"] = lacks
            return out

        await wait_until(f"links between nodes {group}", missing, lambda m: not m)

    def statuses(self, hashes: Iterable[str], i: int) -> dict[str, str]:
        return {h[:12]: self.nodes[i].tx_status(h)["status"] for h in hashes}

    async def wait_committed(self, hashes: list[str], indices: Iterable[int]) -> None:
        """Every transaction of ``hashes`` is committed (ledger result ok) on every node."""
        for i in sorted(indices):

            def not_committed(i: int = i) -> dict[str, str]:
                return {h: s for h, s in self.statuses(hashes, i).items() if s != "committed"}

            await wait_until(
                f"{len(hashes)} txs committed on node{i}", not_committed, lambda m: not m
            )

    def heights(self, indices: Iterable[int]) -> dict[int, int]:
        return {i: self.nodes[i].applier.tip.height for i in sorted(indices)}

    async def wait_same_height(self, indices: Iterable[int], at_least: int = 1) -> int:
        group = sorted(indices)
        state = await wait_until(
            f"nodes {group} at one height >= {at_least}",
            lambda: self.heights(group),
            lambda hs: len(set(hs.values())) == 1 and min(hs.values()) >= at_least,
        )
        return int(next(iter(state.values())))

    def block(self, i: int, height: int) -> dict[str, Any]:
        block = self.nodes[i].block_json(height)
        assert block is not None, f"node{i} has no block at height {height}"
        return block

    def header(self, i: int, height: int) -> dict[str, Any]:
        header: dict[str, Any] = self.block(i, height)["header"]
        return header

    def block_hashes(self, i: int, upto: int) -> list[str]:
        return [str(self.block(i, h)["hash"]) for h in range(1, upto + 1)]

    # ----------------------------------------------------------- transactions
    def anchor_tx(self, member: int, chain_id: str | None = None) -> Tx:
        """A signed data.anchor of a fresh random digest by member ``member``."""
        body = {"digest": secrets.token_hex(32), "kind": "itest"}
        key = self.homes[member].member_key
        return build_tx(chain_id or self.chain_id, "data.anchor", body, key, secrets.randbits(62))


async def get_json(
    http: aiohttp.ClientSession, url: str, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with http.get(url, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def post_tx(http: aiohttp.ClientSession, api_url: str, data: bytes) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{api_url}/v1/txs", data=data, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


def assert_alive(cluster: Cluster) -> None:
    for i, node in cluster.nodes.items():
        assert node.failed is None, f"node{i}: consensus stopped: {node.failed!r}"
