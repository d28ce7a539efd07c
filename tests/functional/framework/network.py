"""``TestNetwork``: a testnet of real node processes, the lifecycle of a functional test.

``with TestNetwork(4) as net: ...`` makes a testnet with
``node.setup.testnet.testnet_init`` in a fresh temporary directory on a
reserved base port (ports.py), runs every node as its own process (node.py),
stdout and stderr appended to ``<dir>/node<i>.log``, and waits until all are
linked. Every wait (waiting.py) also fails fast, with the tail of its log, if
a node that should be running has exited. At the end it stops every node: on
success with SIGTERM, checking each exits 0 (so every test also checks clean
shutdown) and that no node exited on its own, then deletes the directory; on
failure it kills what is left, keeps the directory and prints where the logs
are, with their last lines.

With ``proxied=True`` every peer link goes through a fault-injecting proxy
(``tests.chaos.proxy``): after ``testnet_init`` and before the first start, a
``ProxyThread`` gets one proxy per ordered pair (i, j), and node i's
``p2p.peers`` lists each other validator at ``proxy.address(i, j)``. The daemon
adds config peers after the genesis validators, and a second ``add_peer`` of
the same node id replaces the address its dialer uses (``node/daemon.py``,
``node/net/transport.py``), so node i dials j only through the proxy; set-up
checks that on every link (``assert_links_proxied``). Faults are applied with
``net.faults(lambda p: p.isolate(0))`` and removed with ``net.faults(lambda p:
p.heal())``.

``env`` adds variables to a node's environment at every start (the chaos
runner's per-node libfaketime clock files), and ``prepare(net)`` runs once the
homes exist, before the first start (the chaos runner moves data directories
onto small tmpfs disks there). ``pause``/``resume`` send SIGSTOP/SIGCONT.

Node processes must be started from the thread that created the network (the
main thread): Linux delivers the parent-death signal when that *thread* ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from node.core.keys import load_key
from node.core.tx import Tx, build_tx
from node.setup import testnet
from node.setup.config import load_config
from tests.chaos.proxy import ProxyNet, ProxyThread
from tests.functional.framework.cli import run_hygeia
from tests.functional.framework.httpclient import HttpClient, NodeUnreachable
from tests.functional.framework.load import Loader
from tests.functional.framework.node import (
    LOG_TAIL_LINES,
    STOP_TIMEOUT,
    NodeProcess,
    child_env,
    configure_home,
    node_argv,
    skewed_clock_env,
)
from tests.functional.framework.ports import PortBlock, reserve_base_port
from tests.functional.framework.waiting import TIMEOUT, FrameworkError, WaitTimeout, wait_until
from tests.support.ports import HOST

CHAIN_ID = "hygeia-functional"
REPO_ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")


class TestNetwork:
    """A testnet of real node processes; use as a context manager (see the module docstring)."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        validators: int = 4,
        *,
        name: str = "net",
        settings: Mapping[int, Mapping[str, str]] | None = None,
        proxied: bool = False,
        proxy_seed: int = 0,
        clock_offsets: Mapping[int, str] | None = None,
        env: Mapping[int, Mapping[str, str]] | None = None,
        prepare: Callable[[TestNetwork], None] | None = None,
        followers: int = 0,
    ) -> None:
        self.n = validators
        # the last ``followers`` nodes are not in genesis's validator set: each knows
        # node0 only (p2p.peers; proxied: every node through its proxy), and setup
        # waits for the validators' links alone
        self.followers = followers
        # node index -> variables added to its environment at every start
        self.env = {i: dict(e) for i, e in (env or {}).items()}
        # called once the homes exist (and the proxies, if any), before the first start
        self.prepare = prepare
        self.paused: set[int] = set()  # nodes stopped with SIGSTOP (pause) and not resumed
        # node index -> libfaketime offset of its wall clock, e.g. "+600" (docs: faketime(1))
        self.clock_offsets = dict(clock_offsets or {})
        self.proxied = proxied
        self.proxy_seed = proxy_seed
        self.proxies: ProxyThread | None = None  # with proxied=True, from setup() on
        self._peer_settings: dict[int, dict[str, str]] = {}  # node -> its p2p.peers line
        self.settings = dict(settings or {})  # node index -> configure_home settings
        self.dir = Path(tempfile.mkdtemp(prefix=f"hygeia-func-{name}-"))
        self.nodes: list[NodeProcess] = []
        self.chain_id = CHAIN_ID
        self.http = HttpClient()
        self.ports: PortBlock | None = None
        self._owner = threading.get_ident()
        self._nonce = itertools.count(secrets.randbits(40))

    # ------------------------------------------------------------- lifecycle
    def __enter__(self) -> TestNetwork:
        try:
            self.setup()
        except BaseException:
            self.teardown(failed=True)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.teardown(failed=exc_type is not None)

    def setup(self) -> None:
        """Create the testnet, start every node, wait until all are linked to each other."""
        self.ports = reserve_base_port(self.n)
        base = self.ports.base
        meta = testnet.testnet_init(
            self.dir / "testnet", validators=self.n, base_port=base, chain_id=CHAIN_ID
        )
        for i, entry in enumerate(meta["nodes"]):
            home = Path(entry["home"])
            p2p, api, admin = testnet.node_ports(base, i)
            self.nodes.append(
                NodeProcess(
                    index=i,
                    name=entry["name"],
                    home=home,
                    p2p=p2p,
                    api=api,
                    admin=admin,
                    token_file=Path(entry["admin_token_file"]),
                    log_path=self.dir / f"{entry['name']}.log",
                    member_key=load_key(home / testnet.MEMBER_KEY_FILE),
                )
            )
        if self.proxied:
            self._start_proxies([str(entry["node_id"]) for entry in meta["nodes"]])
        if self.followers:
            self._make_followers([str(entry["node_id"]) for entry in meta["nodes"]])
        for i, settings in self.settings.items():
            configure_home(self.nodes[i].home, settings)
        if self.prepare is not None:
            self.prepare(self)
        self.log(f"testnet of {self.n} validators in {self.dir}, base port {base}")
        for i in range(self.n):
            self.start(i)
        for i in range(self.n):
            self.wait_ready(i)
        self.wait_connected(range(self.n - self.followers))
        if self.proxied:  # a follower may not be linked yet (it waits to be registered)
            self.assert_links_proxied(range(self.n - self.followers))

    def _make_followers(self, node_ids: Sequence[str]) -> None:
        """Genesis keeps the first n - followers validators (every home gets the same
        file); each follower lists node0 as its one peer (in a proxied network: every
        node, through the proxies, so that every link can be cut)."""
        validators = self.n - self.followers
        path = self.nodes[0].home / "genesis.json"
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc["validators"] = doc["validators"][:validators]
        text = json.dumps(doc, indent=2) + "\n"
        for node in self.nodes:
            (node.home / "genesis.json").write_text(text, encoding="utf-8")
        if self.proxied:  # its peers are every node, each through its proxy
            return
        first = f'["{node_ids[0]}@127.0.0.1:{self.nodes[0].p2p}"]'
        for node in self.nodes[validators:]:
            configure_home(node.home, {"p2p.peers": first})

    def _start_proxies(self, node_ids: Sequence[str]) -> None:
        """One proxy per ordered pair; node i's config lists each peer j at proxy (i, j)."""
        self.proxies = ProxyThread([(HOST, n.p2p) for n in self.nodes], seed=self.proxy_seed)
        self.proxies.start()
        for i in range(self.n):
            peers = ", ".join(
                f'"{node_ids[j]}@{self.proxies.address(i, j)}"' for j in range(self.n) if j != i
            )
            self._peer_settings[i] = {"p2p.peers": f"[{peers}]"}
            configure_home(self.nodes[i].home, self._peer_settings[i])
        self.log(f"peer links through {self.n * (self.n - 1)} proxies (seed {self.proxy_seed})")

    def teardown(self, *, failed: bool) -> None:
        """Stop every node; on success check each exited 0 and remove the directory."""
        self.http.close()
        for i in sorted(self.paused):  # a stopped process would not see SIGTERM
            if self.nodes[i].running:
                self.resume(i)
        problems: list[str] = []
        if not failed:
            crashed = [
                f"{n.name} exited on its own with status {n.proc.returncode}"
                for n in self.nodes
                if n.proc is not None and n.proc.poll() is not None
            ]
            problems.extend(crashed)
            running = [n.index for n in self.nodes if n.running]
            try:
                self.stop(*running)
            except FrameworkError as exc:
                problems.append(str(exc))
        for node in self.nodes:  # whatever is left (a failed test, a stop that hung)
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()
        if self.proxies is not None:
            try:
                self.proxies.close()
            except RuntimeError as exc:
                problems.append(f"proxies: {exc}")
        if self.ports is not None:
            self.ports.release()
        if failed or problems:
            self.print_logs()
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            raise FrameworkError("; ".join(problems))

    def print_logs(self) -> None:
        print(f"\n=== functional test failed: directory kept: {self.dir}")
        for node in self.nodes:
            print(f"--- {node.name}: log {node.log_path} (last {LOG_TAIL_LINES} lines)")
            print(node.log_tail())

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    # ------------------------------------------------------------- processes
    def start(
        self, i: int, *, module: str = "node.cli", env: Mapping[str, str] | None = None
    ) -> None:
        """Start node ``i``'s process (not waiting for it: see ``wait_ready``).

        ``module`` runs another program with the node's command line (``node_argv``),
        e.g. the test-only ``tests.chaos.byzantine_node``; ``env`` adds variables to
        its environment. A module under ``tests`` gets the repository on its
        ``PYTHONPATH`` (the nodes run in the network's directory)."""
        if threading.get_ident() != self._owner:
            raise FrameworkError("start nodes from the thread that made the network")
        node = self.nodes[i]
        if node.running:
            raise FrameworkError(f"{node.name} is already running")
        node.starts += 1
        with node.log_path.open("ab") as log:
            log.write(f"=== framework: start #{node.starts} of {node.name}\n".encode())
            log.flush()
            extra = {
                **skewed_clock_env(self.clock_offsets.get(i)),
                **self.env.get(i, {}),
                **(env or {}),
            }
            if module.startswith("tests."):
                extra["PYTHONPATH"] = str(REPO_ROOT)
            node.proc = subprocess.Popen(
                node_argv(node.home, module),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env(**extra),
                cwd=self.dir,
            )

    def wait_ready(self, i: int, timeout: float = TIMEOUT) -> None:
        """Until node ``i`` answers ``/status`` on its admin API."""

        def probe() -> str:
            try:
                return str(self.status(i)["node_id"])
            except NodeUnreachable as exc:
                return f"unreachable ({exc})"

        wait_until(
            f"{self.nodes[i].name} to answer /status",
            probe,
            lambda s: not s.startswith("unreachable"),
            timeout=timeout,
            check=lambda: self.assert_running([i]),
        )

    def restart(self, i: int) -> None:
        """Start node ``i`` again (after ``kill`` or ``stop``); wait until it answers and
        is linked to every other running node.

        Waiting for the links matters: a node gossips each transaction it admits
        once, to the peers linked at that moment, so a tx submitted to a node that
        has no links yet never reaches the others (see
        ``tests/integration/test_node.py::test_tx_admitted_before_links_reaches_peers``).
        """
        self.start(i)
        self.wait_ready(i)
        self.wait_connected()

    def move_home(self, i: int, home: Path) -> None:
        """From now on run node ``i`` (stopped) from ``home`` (e.g. a restored backup):
        its config.toml gets node ``i``'s listen ports; its admin token is used."""
        node = self.nodes[i]
        if node.running:
            raise FrameworkError(f"{node.name} is running; stop it before moving its home")
        configure_home(
            home,
            {
                "p2p.listen": f'"{HOST}:{node.p2p}"',
                "api.listen": f'"{HOST}:{node.api}"',
                "admin.listen": f'"{HOST}:{node.admin}"',
                **self._peer_settings.get(i, {}),
            },
        )
        node.home = home
        node.token_file = load_config(home, env={}).admin_token_path
        self.log(f"{node.name} now runs from {home}")

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (``kill -9``) and reap it."""
        node = self.nodes[i]
        assert node.proc is not None and node.running, f"{node.name} is not running"
        node.proc.kill()
        node.proc.wait()
        node.proc = None
        self.log(f"killed {node.name} (SIGKILL)")

    def pause(self, i: int) -> None:
        """SIGSTOP node ``i``: it keeps its sockets and state and does nothing (a VM pause,
        a long GC) until ``resume``."""
        node = self.nodes[i]
        assert node.proc is not None and node.running, f"{node.name} is not running"
        node.proc.send_signal(signal.SIGSTOP)
        self.paused.add(i)
        self.log(f"paused {node.name} (SIGSTOP)")

    def resume(self, i: int) -> None:
        """SIGCONT node ``i`` after ``pause``."""
        node = self.nodes[i]
        assert node.proc is not None, f"{node.name} is not running"
        node.proc.send_signal(signal.SIGCONT)
        self.paused.discard(i)
        self.log(f"resumed {node.name} (SIGCONT)")

    def stop(self, *indices: int, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the nodes (all at once), wait for them, check each exited 0."""
        for i in indices:
            node = self.nodes[i]
            assert node.proc is not None and node.running, f"{node.name} is not running"
            node.proc.send_signal(signal.SIGTERM)
        failures = []
        for i in indices:
            node = self.nodes[i]
            assert node.proc is not None
            try:
                code = node.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                code = node.proc.wait()
                failures.append(f"{node.name} did not exit within {timeout:g}s of SIGTERM")
            node.proc = None
            if code != 0 and not failures:
                failures.append(f"{node.name} exited with status {code} after SIGTERM")
        if failures:
            raise FrameworkError("; ".join(failures))
        if indices:
            self.log(f"stopped {', '.join(self.nodes[i].name for i in indices)} (SIGTERM, exit 0)")

    def running(self) -> list[int]:
        return [n.index for n in self.nodes if n.running]

    def assert_running(self, indices: Iterable[int]) -> None:
        """Fail with the log tail of any of these nodes that is not running."""
        for i in indices:
            node = self.nodes[i]
            if node.proc is None:
                raise FrameworkError(f"{node.name} was stopped or killed by the test")
            code = node.proc.poll()
            if code is not None:
                raise FrameworkError(
                    f"{node.name} exited with status {code}; last log lines:\n{node.log_tail()}"
                )

    # ------------------------------------------------------------------ proxies
    def faults(self, fn: Callable[[ProxyNet], T]) -> T:
        """Run ``fn`` on the proxies (``proxied=True``), e.g. ``lambda p: p.isolate(0)``."""
        if self.proxies is None:
            raise FrameworkError("faults need a network made with proxied=True")
        return self.proxies.call(fn)

    def assert_links_proxied(
        self, nodes: Iterable[int] | None = None, timeout: float = 15.0
    ) -> None:
        """Every node dials each peer at its proxy, and every link between two of ``nodes``
        was dialled by one side at that side's proxy (so no link bypasses the proxies).
        Waits (``timeout``) for links that are down or being replaced."""
        group = self._which(nodes)
        wait_until(
            f"every link between nodes {group} to go through a proxy (problems)",
            lambda: self._link_problems(group),
            lambda problems: not problems,
            timeout=timeout,
            check=lambda: self.assert_running(group),
        )

    def _link_problems(self, group: list[int]) -> list[str]:
        if self.proxies is None:
            raise FrameworkError("no proxies: the network was made without proxied=True")
        ids = {str(self.status(i)["node_id"]): i for i in group}
        problems: list[str] = []
        dialled: set[tuple[int, int]] = set()
        for i in group:
            for peer in self.admin_get(i, "/peers")["peers"]:
                j = ids.get(str(peer["node_id"]))
                if j is None:
                    continue
                proxy = self.proxies.address(i, j)
                if peer["dial_address"] != proxy:
                    problems.append(f"node{i} dials node{j} at {peer['dial_address']}, not {proxy}")
                if peer["connected"] and peer["direction"] == "outbound":
                    if peer["address"] != proxy:
                        problems.append(f"node{i}'s link to node{j} is to {peer['address']}")
                    dialled.add((min(i, j), max(i, j)))
        pairs = {(i, j) for i in group for j in group if i < j}
        problems.extend(
            f"no link node{i}-node{j} dialled at a proxy" for i, j in sorted(pairs - dialled)
        )
        return problems

    # ------------------------------------------------------------------ HTTP
    def _get(self, port: int, path: str, token: str | None = None) -> Any:
        status, body = self.http.request(port, "GET", path, token=token)
        if status != 200:
            raise FrameworkError(f"GET :{port}{path} answered {status}: {body}")
        return body

    def status(self, i: int) -> dict[str, Any]:
        """``GET /status`` of node ``i``'s admin API (bearer token from its token file)."""
        node = self.nodes[i]
        st: dict[str, Any] = self._get(node.admin, "/status", node.token)
        return st

    def admin_get(self, i: int, path: str) -> Any:
        node = self.nodes[i]
        return self._get(node.admin, path, node.token)

    def height(self, i: int) -> int:
        return int(self.status(i)["height"])

    def heights(self, nodes: Iterable[int] | None = None) -> dict[int, int]:
        return {i: self.height(i) for i in self._which(nodes)}

    def block(self, i: int, height: int) -> dict[str, Any]:
        block: dict[str, Any] = self._get(self.nodes[i].api, f"/v1/blocks/{height}")
        return block

    def block_hashes(self, i: int, upto: int) -> list[str]:
        """Hashes of node ``i``'s blocks at heights 1..upto."""
        return [str(self.block(i, h)["hash"]) for h in range(1, upto + 1)]

    def chain_tx_hashes(self, i: int, upto: int) -> list[str]:
        """Hashes of the transactions in node ``i``'s blocks 1..upto, in chain order."""
        out: list[str] = []
        for h in range(1, upto + 1):
            out.extend(self.block(i, h)["tx_hashes"])
        return out

    def tx_status(self, i: int, tx_hash: str) -> dict[str, Any]:
        """``GET /v1/txs/{hash}`` on node ``i``."""
        st: dict[str, Any] = self._get(self.nodes[i].api, f"/v1/txs/{tx_hash}")
        return st

    def fetch_proof(self, i: int, tx_hash: str, out: Path, timeout: float = 60.0) -> None:
        """``hygeia client proof`` of ``tx_hash`` from node ``i`` into ``out``, asked again
        while it fails: a proof after a validator change answers 503 ``not-attested``
        until a quorum of the old set has signed the new one on chain."""
        api = f"http://{HOST}:{self.nodes[i].api}"
        wait_until(
            f"the proof of {tx_hash[:12]} from node{i} (503 not-attested until a quorum)",
            lambda: run_hygeia("client", "proof", tx_hash, "--api", api, "--out", out, ok=False),
            lambda done: done.returncode == 0,
            timeout=timeout,
            interval=0.5,
        )

    # ---------------------------------------------------------- transactions
    def sign_anchors(self, count: int, member: int | None = None) -> list[Tx]:
        """``count`` data.anchor txs of fresh random digests, pre-signed.

        Signed by member ``member``'s key, or by the members in turn when None.
        """
        txs = []
        for k in range(count):
            key = self.nodes[k % self.n if member is None else member].member_key
            body = {"digest": secrets.token_hex(32), "kind": "functional"}
            txs.append(build_tx(self.chain_id, "data.anchor", body, key, next(self._nonce)))
        return txs

    def submit(
        self,
        node_index: int | Sequence[int],
        txs: int | Sequence[Tx],
        *,
        concurrency: int = 16,
    ) -> list[str]:
        """Submit txs (or ``count`` fresh pre-signed anchors) to a node, or to several
        nodes round-robin (tx k to ``node_index[k % len]``), ``concurrency`` requests
        at a time; every one must be accepted (202). Returns their hashes in order."""
        batch = self.sign_anchors(txs) if isinstance(txs, int) else list(txs)
        targets = [node_index] if isinstance(node_index, int) else list(node_index)
        plan = [(targets[k % len(targets)], tx) for k, tx in enumerate(batch)]
        refused = asyncio.run(self._post_all(plan, concurrency))
        if refused:
            raise FrameworkError(f"{len(refused)} txs refused, e.g. {refused[:3]}")
        return [tx.hash for tx in batch]

    async def _post_all(self, plan: list[tuple[int, Tx]], concurrency: int) -> list[str]:
        refused: list[str] = []
        gate = asyncio.Semaphore(concurrency)
        headers = {"Content-Type": "application/json"}
        timeout = aiohttp.ClientTimeout(total=30)

        async def post(session: aiohttp.ClientSession, i: int, tx: Tx) -> None:
            url = f"http://{HOST}:{self.nodes[i].api}/v1/txs"
            async with gate:
                try:
                    async with session.post(url, data=tx.wire, headers=headers) as resp:
                        body = await resp.json(content_type=None)
                        if resp.status != 202 or body != {"hash": tx.hash}:
                            refused.append(f"node{i} tx {tx.hash[:16]}: {resp.status} {body}")
                except aiohttp.ClientError as exc:
                    refused.append(f"node{i} tx {tx.hash[:16]}: {exc!r}")

        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(post(session, i, tx) for i, tx in plan))
        return refused

    # --------------------------------------------------------------- waiting
    def _which(self, nodes: Iterable[int] | None) -> list[int]:
        return sorted(self.running() if nodes is None else nodes)

    def wait_connected(self, nodes: Iterable[int] | None = None, timeout: float = TIMEOUT) -> None:
        """Until each of these nodes has links to all the others of them (``status.peers``)."""
        group = self._which(nodes)
        wait_until(
            f"nodes {group} to be linked to each other",
            lambda: {i: self.status(i)["peers"] for i in group},
            lambda peers: all(p >= len(group) - 1 for p in peers.values()),
            timeout=timeout,
            check=lambda: self.assert_running(group),
        )

    def wait_for_height(
        self, height: int, nodes: Iterable[int] | None = None, timeout: float = TIMEOUT
    ) -> dict[int, int]:
        """Until every one of ``nodes`` (default: the running ones) is at ``height`` or above."""
        group = self._which(nodes)
        state: dict[int, int] = wait_until(
            f"height >= {height} on nodes {group}",
            lambda: self.heights(group),
            lambda hs: min(hs.values()) >= height,
            timeout=timeout,
            check=lambda: self.assert_running(group),
        )
        return state

    def wait_same_height(
        self, nodes: Iterable[int] | None = None, at_least: int = 0, timeout: float = TIMEOUT
    ) -> int:
        """Until these nodes report one height (>= ``at_least``) and none is syncing."""
        group = self._which(nodes)
        state = wait_until(
            f"nodes {group} at one height >= {at_least}, not syncing",
            lambda: {i: (st["height"], st["syncing"]) for i in group for st in [self.status(i)]},
            lambda s: (
                len({h for h, _ in s.values()}) == 1
                and min(h for h, _ in s.values()) >= at_least
                and not any(syncing for _, syncing in s.values())
            ),
            timeout=timeout,
            check=lambda: self.assert_running(group),
        )
        return int(next(iter(state.values()))[0])

    def wait_committed(
        self, hashes: Sequence[str], nodes: Iterable[int] | None = None, timeout: float = TIMEOUT
    ) -> None:
        """Until every tx of ``hashes`` is in the chain of each of ``nodes``."""
        group = self._which(nodes)
        want = set(hashes)
        seen: dict[int, set[str]] = {i: set() for i in group}
        scanned: dict[int, int] = dict.fromkeys(group, 0)

        def missing() -> dict[int, int]:
            for i in group:  # read only the blocks not scanned yet
                top = self.height(i)
                for h in range(scanned[i] + 1, top + 1):
                    seen[i].update(self.block(i, h)["tx_hashes"])
                scanned[i] = top
            return {i: len(want - seen[i]) for i in group if want - seen[i]}

        try:
            wait_until(
                f"{len(want)} txs committed on nodes {group} (missing per node)",
                missing,
                lambda m: not m,
                timeout=timeout,
                interval=0.1,
                check=lambda: self.assert_running(group),
            )
        except WaitTimeout as exc:
            lost = sorted(set().union(*(want - seen[i] for i in group)))
            where = {
                h[:16]: {i: self.tx_status(i, h)["status"] for i in self.running()}
                for h in lost[:3]
            }
            raise FrameworkError(f"{exc}; e.g. status by node: {where}") from None

    def assert_same_chain(self, nodes: Iterable[int] | None = None) -> int:
        """The nodes' block hashes are equal up to their common height (from the highest
        base height among them: a state-synced node has no blocks below its own);
        returns that height."""
        group = self._which(nodes)
        common = min(self.heights(group).values())
        start = max(int(self.status(i).get("base_height") or 0) for i in group) or 1
        chains = {
            i: [str(self.block(i, h)["hash"]) for h in range(start, common + 1)] for i in group
        }
        first = chains[group[0]]
        for i, chain in chains.items():
            if chain != first:
                k = next(k for k, (a, b) in enumerate(zip(first, chain, strict=True)) if a != b)
                raise FrameworkError(
                    f"node{group[0]} and node{i} differ at height {start + k}: "
                    f"{first[k]} != {chain[k]}"
                )
        return common

    # ---------------------------------------------------------------- load
    @contextlib.contextmanager
    def load(self, txs: Sequence[Tx], targets: Iterable[int], rate: float) -> Iterator[Loader]:
        """Submit ``txs`` from a background thread at about ``rate`` per second,
        round-robin over ``loader.targets`` (change it while running)."""
        loader = Loader([n.api for n in self.nodes], txs, targets, rate)
        loader.start()
        try:
            yield loader
        finally:
            loader.finish()
