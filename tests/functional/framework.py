"""Functional test framework: real ``hygeia`` node processes on loopback.

In the style of Bitcoin Core's ``test/functional``: a test builds a
``TestNetwork`` (``with TestNetwork(4) as net: ...``), which

* makes a testnet with ``node.setup.testnet.testnet_init`` in a fresh temporary
  directory, with a base port that cannot collide with a parallel run: ports
  come from 20000-31999 (below the kernel's ephemeral range), the slot is
  derived from ``PYTEST_XDIST_WORKER`` (one lane per worker), the process id
  and a per-process counter, and every port of the slot is checked free and
  then held (``PortBlock``) by this process until the end, so that no other
  run can take it while a node is down;
* runs every node as its own process, ``sys.executable -m node.cli start
  --home H``, stdout and stderr appended to ``<dir>/node<i>.log``. On Linux
  the process first asks for SIGKILL when the test process dies (a tiny
  ``-c`` prelude, then ``execv`` into exactly that command), so no node
  outlives a killed test run;
* waits for conditions with ``wait_until`` (a deadline, and a message naming
  what was awaited and the last state seen), never with a fixed sleep; every
  wait also fails fast, with the tail of its log, if a node that should be
  running has exited;
* at the end stops every node: on success with SIGTERM, checking each exits
  0 (so every test also checks clean shutdown) and that no node exited on its
  own, then deletes the directory; on failure it kills what is left, keeps the
  directory and prints where the logs are, with their last lines.

Node processes must be started from the thread that created the network (the
main thread): Linux delivers the parent-death signal when that *thread* ends.

The story tests, which drive a network only through the ``hygeia`` command as an
operator would, run it with ``hygeia testnet start`` instead: ``cli_testnet``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import nacl.signing

from node.api.remote import ClientError, request_json
from node.core.keys import load_key
from node.core.tx import Tx, build_tx
from node.setup import testnet
from node.setup.config import load_config

HOST = "127.0.0.1"
CHAIN_ID = "hygeia-functional"
TIMEOUT = 60.0
PORT_LOW = 20000
PORT_HIGH = 32000  # Linux hands out ephemeral ports from 32768 by default
LANES = 16  # xdist workers gwN use slots with slot % LANES == N % LANES
STOP_TIMEOUT = 20.0
LOG_TAIL_LINES = 25

_counter = itertools.count()

# Ask for SIGKILL when the parent (thread) dies, then become the node process.
_PRELUDE = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(70)  # the test process is already gone\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)


class FrameworkError(AssertionError):
    """A functional test failed: a wait timed out, a node died or misbehaved."""


# ------------------------------------------------------------------ waiting
def wait_until(
    what: str,
    probe: Callable[[], Any],
    done: Callable[[Any], bool] = bool,
    *,
    timeout: float = TIMEOUT,
    interval: float = 0.05,
    check: Callable[[], None] | None = None,
) -> Any:
    """Poll ``probe()`` until ``done(state)``; return that state.

    ``check`` runs before every probe (e.g. "every node is still running") and
    may raise. On timeout raise ``FrameworkError`` naming ``what`` and the
    last state observed.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        state = probe()
        if done(state):
            return state
        if time.monotonic() >= deadline:
            raise FrameworkError(
                f"timed out after {timeout:g}s waiting for {what}; last observed: {state!r}"
            )
        time.sleep(interval)


# ------------------------------------------------------------------ ports
def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


class PortBlock:
    """The ports of one testnet, held by this process until ``release()``.

    Each port is bound with a plain ``bind()`` (which fails if anything holds
    it: a listener, another reservation, a connection), then marked
    SO_REUSEADDR and kept bound, never listening: the node processes' own
    listeners (asyncio sets SO_REUSEADDR) can still bind and listen there, while
    no other test run can reserve or bind them and no outgoing connection gets
    one as its automatic port.
    """

    def __init__(self, base: int, ports: list[int], socks: list[socket.socket]) -> None:
        self.base = base
        self.ports = ports
        self._socks = socks

    @classmethod
    def reserve(cls, base: int, ports: list[int]) -> PortBlock | None:
        """The block, or None if any of its ports is taken."""
        socks: list[socket.socket] = []
        try:
            for port in ports:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((HOST, port))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        except OSError:
            for s in socks:
                s.close()
            return None
        return cls(base, ports, socks)

    def release(self) -> None:
        for s in self._socks:
            s.close()
        self._socks.clear()


def _worker_lane() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    digits = worker.removeprefix("gw")
    return int(digits) % LANES if digits.isdigit() else 0


def reserve_base_port(validators: int) -> PortBlock:
    """Reserve a base port P whose testnet ports (``node.setup.testnet.node_ports``) are free.

    Slots of ``PORT_STRIDE * validators`` ports in ``PORT_LOW``..``PORT_HIGH``
    (kept below the kernel's ephemeral range when it allows); xdist worker gwN
    only uses slots in lane N % LANES, starting from a slot derived from the
    process id and a per-process counter.
    """
    stride = testnet.PORT_STRIDE * validators
    high = min(PORT_HIGH, _ephemeral_low())
    if high - PORT_LOW < LANES * stride:
        high = PORT_HIGH  # a low ephemeral range: overlap it, reservations still hold
    slots = (high - PORT_LOW) // stride
    lane_slots = list(range(_worker_lane(), slots, LANES))
    start = (os.getpid() * 7919 + next(_counter) * 104729) % len(lane_slots)
    for k in range(len(lane_slots)):
        base = PORT_LOW + lane_slots[(start + k) % len(lane_slots)] * stride
        ports = [p for i in range(validators) for p in testnet.node_ports(base, i)]
        block = PortBlock.reserve(base, ports)
        if block is not None:
            return block
    raise FrameworkError(f"no free block of {stride} ports in {PORT_LOW}..{high}")


# ------------------------------------------------------------------ HTTP
class NodeUnreachable(FrameworkError):
    """No HTTP answer from a node (it is down, or the connection broke)."""


class HttpClient:
    """JSON over HTTP/1.1 with one keep-alive connection per port (one thread only)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout
        self._conns: dict[int, http.client.HTTPConnection] = {}

    def request(
        self,
        port: int,
        method: str,
        path: str,
        body: bytes | None = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in (1, 2):  # a kept-alive connection the server closed: one fresh retry
            conn = self._conns.get(port)
            if conn is None:
                conn = self._conns[port] = http.client.HTTPConnection(
                    HOST, port, timeout=self._timeout
                )
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._conns.pop(port, None)
                if attempt == 2 or isinstance(exc, ConnectionRefusedError):
                    raise NodeUnreachable(f"{method} :{port}{path}: {exc!r}") from None
                continue
            ctype = resp.getheader("Content-Type", "")
            return resp.status, json.loads(raw) if "json" in ctype else raw.decode()
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


# ------------------------------------------------------------------ config
def configure_home(home: Path, settings: Mapping[str, str]) -> None:
    """Set keys of ``home/config.toml``, e.g. ``{"admin.enable_mutations": "true"}``.

    Values are TOML literals (``'"127.0.0.1:9"'`` for a string). In the key's
    ``[section]`` its line, set or commented out (``# key = default``, as every
    generated config.toml has), is replaced; the result must load.
    """
    path = home / "config.toml"
    lines = path.read_text(encoding="utf-8").splitlines()
    for dotted, value in settings.items():
        section, _, key = dotted.partition(".")
        current, done = "", False
        for n, line in enumerate(lines):
            text = line.strip()
            if text.startswith("[") and text.endswith("]"):
                current = text[1:-1].strip()
            elif current == section and text.lstrip("# ").split("=")[0].strip() == key:
                lines[n] = f"{key} = {value}"
                done = True
                break
        if not done:
            raise FrameworkError(f"{path}: no line for [{section}] {key} to set")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    load_config(home, env={})  # a bad value fails here, not in the node


# ------------------------------------------------------------------ nodes
@dataclass
class NodeProcess:
    """One node of the network: its home, ports, log and (while running) process."""

    index: int
    name: str
    home: Path
    p2p: int
    api: int
    admin: int
    token_file: Path
    log_path: Path
    member_key: nacl.signing.SigningKey
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)

    @property
    def token(self) -> str:
        return self.token_file.read_text(encoding="utf-8").strip()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log yet)"
        return "\n".join(text.splitlines()[-lines:])

    def log_contains(self, text: str) -> bool:
        """Whether any run of this node logged ``text``."""
        try:
            return text in self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return False

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log records of every run of this node (other lines skipped)."""
        out = []
        with contextlib.suppress(FileNotFoundError):
            for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        out.append(json.loads(line))
        return out


def _child_env() -> dict[str, str]:
    # HYGEIA_* variables of the calling shell would override the nodes' config files
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYGEIA_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class TestNetwork:
    """A testnet of real node processes; use as a context manager (see the module docstring)."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        validators: int = 4,
        *,
        name: str = "net",
        settings: Mapping[int, Mapping[str, str]] | None = None,
    ) -> None:
        self.n = validators
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
        for i, settings in self.settings.items():
            configure_home(self.nodes[i].home, settings)
        self.log(f"testnet of {self.n} validators in {self.dir}, base port {base}")
        for i in range(self.n):
            self.start(i)
        for i in range(self.n):
            self.wait_ready(i)
        self.wait_connected(range(self.n))

    def teardown(self, *, failed: bool) -> None:
        """Stop every node; on success check each exited 0 and remove the directory."""
        self.http.close()
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
    def start(self, i: int) -> None:
        """Start node ``i``'s process (not waiting for it: see ``wait_ready``)."""
        if threading.get_ident() != self._owner:
            raise FrameworkError("start nodes from the thread that made the network")
        node = self.nodes[i]
        if node.running:
            raise FrameworkError(f"{node.name} is already running")
        node.starts += 1
        command = ["-m", "node.cli", "start", "--home", str(node.home)]
        if sys.platform == "linux":
            argv = [sys.executable, "-c", _PRELUDE, str(os.getpid()), *command]
        else:
            argv = [sys.executable, *command]
        with node.log_path.open("ab") as log:
            log.write(f"=== framework: start #{node.starts} of {node.name}\n".encode())
            log.flush()
            node.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_child_env(),
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
        node.exits.append(node.proc.wait())
        node.proc = None
        self.log(f"killed {node.name} (SIGKILL)")

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
            node.exits.append(code)
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

    def post_tx(self, i: int, tx: Tx) -> tuple[int, Any]:
        return self.http.request(self.nodes[i].api, "POST", "/v1/txs", tx.wire)

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
        except FrameworkError as exc:
            lost = sorted(set().union(*(want - seen[i] for i in group)))
            where = {
                h[:16]: {i: self.tx_status(i, h)["status"] for i in self.running()}
                for h in lost[:3]
            }
            raise FrameworkError(f"{exc}; e.g. status by node: {where}") from None

    def assert_same_chain(self, nodes: Iterable[int] | None = None) -> int:
        """The nodes' block hashes are equal up to their common height; returns it."""
        group = self._which(nodes)
        common = min(self.heights(group).values())
        chains = {i: self.block_hashes(i, common) for i in group}
        first = chains[group[0]]
        for i, chain in chains.items():
            if chain != first:
                fork = next(
                    h for h, (a, b) in enumerate(zip(first, chain, strict=True), 1) if a != b
                )
                raise FrameworkError(
                    f"node{group[0]} and node{i} differ at height {fork}: "
                    f"{first[fork - 1]} != {chain[fork - 1]}"
                )
        return common

    # ---------------------------------------------------------------- load
    @contextlib.contextmanager
    def load(self, txs: Sequence[Tx], targets: Iterable[int], rate: float) -> Iterator[Loader]:
        """Submit ``txs`` from a background thread at about ``rate`` per second,
        round-robin over ``loader.targets`` (change it while running)."""
        loader = Loader(self, txs, targets, rate)
        loader.start()
        try:
            yield loader
        finally:
            loader.finish()


# ------------------------------------------------------------------ CLI-run testnet
def hygeia_args(*args: str) -> list[str]:
    """The argv of ``hygeia ARGS`` (``python -m node.cli``)."""
    return [sys.executable, "-m", "node.cli", *args]


@contextlib.contextmanager
def cli_testnet(
    tmp: Path,
    validators: int = 4,
    *,
    edit_genesis: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """A testnet run as an operator runs one, for the story tests: ``hygeia testnet
    init`` in ``tmp/net`` on a reserved base port (``reserve_base_port``), then
    ``hygeia testnet start`` (one process, a child per node, log in
    ``tmp/testnet.log``) until every node's client API answers ``/v1/info``; at the
    end SIGINT (what Ctrl-C sends), SIGKILL of its session if it hangs.

    ``edit_genesis`` changes the genesis before the first start, written the same to
    every home (the genesis must be the same everywhere). Yields the content of
    ``testnet.json`` plus ``dir``, the testnet directory. On failure prints the tail
    of the log.
    """
    out = tmp / "net"
    log_path = tmp / "testnet.log"
    ports = reserve_base_port(validators)
    try:
        init = subprocess.run(
            hygeia_args("testnet", "init", "--validators", str(validators), "--out", str(out),
                        "--base-port", str(ports.base)),
            capture_output=True, text=True, env=_child_env(), timeout=TIMEOUT, check=False,
        )  # fmt: skip
        if init.returncode != 0:
            raise FrameworkError(f"hygeia testnet init exited {init.returncode}: {init.stderr}")
        meta: dict[str, Any] = json.loads((out / testnet.TESTNET_FILE).read_text("utf-8"))
        if edit_genesis is not None:
            homes = [Path(n["home"]) for n in meta["nodes"]]
            genesis = json.loads((homes[0] / "genesis.json").read_text("utf-8"))
            edit_genesis(genesis)
            text = json.dumps(genesis, indent=2, sort_keys=True) + "\n"
            for home in homes:
                (home / "genesis.json").write_text(text, encoding="utf-8")
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                hygeia_args("testnet", "start", "--dir", str(out)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_child_env(),
                start_new_session=True,
            )

        def tail() -> str:
            lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            return "\n".join(lines[-LOG_TAIL_LINES:])

        def alive() -> None:
            if proc.poll() is not None:
                raise FrameworkError(f"testnet start exited {proc.returncode}:\n{tail()}")

        try:
            for node in meta["nodes"]:
                wait_until(
                    f"{node['name']}'s client API to answer /v1/info",
                    functools.partial(_answers, f"{node['api']}/v1/info"),
                    lambda answer: answer == "ok",
                    check=alive,
                )
            meta["dir"] = out
            yield meta
        except BaseException:
            print(f"\n=== story test failed: testnet in {out}, last lines of {log_path}:\n{tail()}")
            raise
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    finally:
        ports.release()


def _answers(url: str) -> str:
    """``ok`` if ``GET url`` answers, else why not."""
    try:
        request_json("GET", url, timeout=2)
    except ClientError as exc:
        return str(exc)
    return "ok"


@dataclass
class Accepted:
    tx_hash: str
    node: int
    at: float  # time.monotonic() of the 202


class Loader(threading.Thread):
    """Background submitter of pre-signed txs (see ``TestNetwork.load``)."""

    def __init__(
        self, net: TestNetwork, txs: Sequence[Tx], targets: Iterable[int], rate: float
    ) -> None:
        super().__init__(name="functional-loader", daemon=True)
        self._net = net
        self._txs = list(txs)
        self._lock = threading.Lock()
        self._targets = sorted(targets)
        self._interval = 1.0 / rate
        self._halt = threading.Event()
        self.accepted: list[Accepted] = []
        self.errors: list[str] = []
        self.done = threading.Event()

    @property
    def targets(self) -> list[int]:
        with self._lock:
            return list(self._targets)

    def set_targets(self, targets: Iterable[int]) -> None:
        """From now on submit only to these nodes (the request in hand finishes first);
        none: pause."""
        with self._lock:
            self._targets = sorted(targets)

    @property
    def submitted(self) -> int:
        with self._lock:
            return len(self.accepted)

    def accepted_by(self, node: int) -> list[str]:
        with self._lock:
            return [a.tx_hash for a in self.accepted if a.node == node]

    def _try(self, http: HttpClient, tx: Tx, rr: int) -> str:
        """One attempt: ``accepted``, ``final`` (refused for good), ``retry`` or ``paused``."""
        with self._lock:  # held across the request: set_targets waits for it
            if not self._targets:
                return "paused"
            i = self._targets[rr % len(self._targets)]
            try:
                status, body = http.request(self._net.nodes[i].api, "POST", "/v1/txs", tx.wire)
            except NodeUnreachable as exc:
                status, body = 0, str(exc)
            if status == 202:
                self.accepted.append(Accepted(tx.hash, i, time.monotonic()))
                return "accepted"
            self.errors.append(f"node{i}: {status} {body}")
            # unreachable (0) or mempool full (503): try again; anything else is final
            return "retry" if status in (0, 503) else "final"

    def run(self) -> None:
        http = HttpClient()
        rr = 0
        next_at = time.monotonic()
        try:
            for tx in self._txs:
                while not self._halt.is_set():
                    outcome = self._try(http, tx, rr)
                    rr += 1
                    if outcome in ("accepted", "final"):
                        break
                    self._halt.wait(0.05)
                if self._halt.is_set():
                    return
                now = time.monotonic()
                next_at = max(next_at + self._interval, now - 1.0)  # no burst after a pause
                if next_at > now:
                    self._halt.wait(next_at - now)
        finally:
            http.close()
            self.done.set()

    def finish(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def wait_done(self, timeout: float = TIMEOUT) -> None:
        wait_until(
            "the loader to submit every tx",
            lambda: self.submitted,
            lambda _n: self.done.is_set(),
            timeout=timeout,
        )
