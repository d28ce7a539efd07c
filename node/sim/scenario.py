"""Simulation scenarios: the TOML schema of ``configs/scenarios/*.toml``, parsed and checked.

A scenario is plain data: cluster size, consensus knobs, network model,
workload, scheduled faults, Byzantine nodes and clock drift. Unknown keys and
inconsistent values are errors (``ScenarioError``) with the offending key in
the message. Probabilities are read as decimals and kept as integer parts per
million, so nothing downstream of the loader touches a float.
The schema is documented in ``docs/simulator.md``.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consensus.config import ConsensusConfig
from node.net.wire import CONSENSUS_FRAME_OVERHEAD

PPM = 1_000_000
LATENCY_KINDS = ("constant", "uniform", "normal")
BEHAVIOURS = (
    "equivocate",
    "silent",
    "vote_all",
    "bad_sig",
    "delay",
    "forge_view_change",
    "stale_view_change",
    "oversized",
    "forge_new_view",
    "bad_checkpoint",
    "flood_views",
    "status_lie",
)
# the daemon's p2p.max_frame_bytes default (node/net/transport.py DEFAULT_MAX_FRAME_BYTES)
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024
FAULT_KINDS = ("crash", "partition", "drop")
CRYPTO_KINDS = ("keyed-hash", "ed25519")


class ScenarioError(ValueError):
    """A scenario file that cannot be run as written."""


@dataclass(frozen=True)
class Latency:
    """One-way delay in integer ms: ``constant`` (a), ``uniform`` [a, b],
    ``normal`` mean a with standard deviation b (an integer Irwin-Hall sum)."""

    kind: str = "constant"
    a: int = 10
    b: int = 0

    def label(self) -> str:
        if self.kind == "constant":
            return f"{self.a}"
        if self.kind == "uniform":
            return f"{self.a}-{self.b}"
        return f"{self.a}~{self.b}"


@dataclass(frozen=True)
class LinkRule:
    """Overrides of the default link model for directed links ``src`` -> ``dst``."""

    src: tuple[int, ...]
    dst: tuple[int, ...]
    latency: Latency | None = None
    loss_ppm: int | None = None
    duplicate_ppm: int | None = None
    reorder_ppm: int | None = None


@dataclass(frozen=True)
class NetworkSpec:
    latency: Latency = Latency()
    loss_ppm: int = 0
    duplicate_ppm: int = 0
    reorder_ppm: int = 0
    reorder_ms: int = 50
    client_latency: Latency = Latency("constant", 1, 0)
    links: tuple[LinkRule, ...] = ()
    sync_retry_ms: int = 200
    sync_max_blocks: int = 64
    # frames above this are refused by the transport: the message is dropped
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    # the daemon's StatusFrame sync (node/net/sync.py): height announcements every
    # status_interval_ms; sync when a peer is more than sync_lag_threshold ahead,
    # or ahead while our height has not moved for sync_stall_ms
    status_sync: bool = False
    status_interval_ms: int = 1_000
    sync_lag_threshold: int = 8
    sync_stall_ms: int = 3_000


@dataclass(frozen=True)
class WorkloadSpec:
    mode: str = "open"  # "open": rate_tps; "closed": clients each with one tx in flight
    rate_tps: int = 100
    arrival: str = "fixed"  # "fixed" spacing or "uniform" in [0, 2 * mean]
    clients: int = 4
    think_ms: int = 0
    tx_size: int = 64
    start_ms: int = 0
    stop_ms: int = 0  # 0: until the run ends
    max_txs: int = 0  # 0: unlimited


@dataclass(frozen=True)
class Fault:
    kind: str  # "crash", "partition" or "drop"
    at_ms: int
    end_ms: int | None  # crash: restart time; partition, drop: heal time; None: forever
    node: int = -1  # crash only
    groups: tuple[tuple[int, ...], ...] = ()  # partition only
    # drop only: directed links src -> dst (empty: every node) and the message
    # names (node/sim/metrics.py) lost on them (empty: every message)
    src: tuple[int, ...] = ()
    dst: tuple[int, ...] = ()
    messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class ByzantineSpec:
    node: int
    behaviour: str
    delay_ms: int = 0
    count: int = 0  # flood_views: votes per flood (0: its default)


@dataclass(frozen=True)
class DriftSpec:
    node: int
    offset_ms: int = 0
    rate_ppm: int = 0


@dataclass(frozen=True)
class Scenario:
    name: str
    n: int
    duration_ms: int
    description: str = ""
    stop_at_height: int = 0  # 0: run until duration_ms
    liveness_bound_ms: int = 0  # 0: derived from the consensus timeouts (liveness_bound)
    crypto: str = "keyed-hash"
    wire: bool = False
    clock_epoch_ms: int = 1_700_000_000_000
    consensus: tuple[tuple[str, Any], ...] = ()
    network: NetworkSpec = NetworkSpec()
    workload: WorkloadSpec = WorkloadSpec()
    faults: tuple[Fault, ...] = ()
    byzantine: tuple[ByzantineSpec, ...] = ()
    drift: tuple[DriftSpec, ...] = field(default=())

    def consensus_config(self) -> ConsensusConfig:
        knobs = dict(self.consensus)
        chain_id = str(knobs.pop("chain_id", f"sim-{self.name}"))
        if "max_message_bytes" not in knobs:  # what the frame limit leaves, as the daemon sets it
            knobs["max_message_bytes"] = self.network.max_frame_bytes - CONSENSUS_FRAME_OVERHEAD
        try:
            return ConsensusConfig(chain_id=chain_id, n=self.n, **knobs)
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"scenario {self.name}: [consensus]: {exc}") from exc

    def byzantine_nodes(self) -> dict[int, ByzantineSpec]:
        return {b.node: b for b in self.byzantine}

    def liveness_bound(self) -> int:
        """``liveness_bound_ms``, or when 0 a few view-change timeouts plus a status
        round and two sync retries: time to elect a new primary and catch up."""
        if self.liveness_bound_ms:
            return self.liveness_bound_ms
        knobs = dict(self.consensus)
        base = ConsensusConfig(chain_id="x", n=1)
        vct = int(knobs.get("view_change_timeout_ms", base.view_change_timeout_ms))
        status = int(knobs.get("status_interval_ms", base.status_interval_ms))
        return 4 * vct + status + 2 * self.network.sync_retry_ms

    def last_fault_end(self) -> int:
        """Virtual time after which every temporary fault is over."""
        ends = [f.end_ms if f.end_ms is not None else f.at_ms for f in self.faults]
        return max(ends, default=0)

    def permanently_crashed(self) -> tuple[int, ...]:
        crashed = {f.node for f in self.faults if f.kind == "crash" and f.end_ms is None}
        return tuple(sorted(crashed))

    def faulty_after_heal(self) -> int:
        return len(set(self.byzantine_nodes()) | set(self.permanently_crashed()))

    def liveness_applicable(self, f: int) -> bool:
        """Liveness is owed only with at most f nodes faulty for good and no lasting partition."""
        lasting = any(x.kind != "crash" and x.end_ms is None for x in self.faults)
        return not lasting and self.faulty_after_heal() <= f

    def replace(self, **changes: Any) -> Scenario:
        new = dataclasses.replace(self, **changes)
        validate(new)
        return new


def load(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {p}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario {p} is not valid TOML: {exc}") from exc
    try:
        scenario = parse(data)
    except ScenarioError as exc:
        raise ScenarioError(f"{p}: {exc}") from exc
    return scenario


def parse(data: dict[str, Any]) -> Scenario:
    t = _Table(data, "")
    scenario = Scenario(
        name=t.text("name"),
        n=t.integer("n"),
        duration_ms=t.integer("duration_ms"),
        description=t.text("description", ""),
        stop_at_height=t.integer("stop_at_height", 0),
        liveness_bound_ms=t.integer("liveness_bound_ms", 0),
        crypto=t.text("crypto", "keyed-hash"),
        wire=t.flag("wire", False),
        clock_epoch_ms=t.integer("clock_epoch_ms", 1_700_000_000_000),
        consensus=tuple(sorted(t.table("consensus").raw().items())),
        network=_network(t.table("network")),
        workload=_workload(t.table("workload")),
        faults=tuple(_fault(x) for x in t.tables("faults")),
        byzantine=tuple(_byzantine(x) for x in t.tables("byzantine")),
        drift=tuple(_drift(x) for x in t.tables("drift")),
    )
    t.done()
    validate(scenario)
    return scenario


def droppable_messages() -> tuple[str, ...]:
    """Message names a ``drop`` fault may name: node/sim/metrics.py's, in its order
    (a drop that names none loses all of them, the modelled status frames too)."""
    from node.sim.metrics import MESSAGE_NAMES, STATUS_FRAME, SYNC_REQUEST, SYNC_RESPONSE

    return (*MESSAGE_NAMES.values(), SYNC_REQUEST, SYNC_RESPONSE, STATUS_FRAME)


def validate(s: Scenario) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ScenarioError(f"scenario {s.name}: {msg}")

    need(s.n >= 1, f"n must be >= 1, got {s.n}")
    need(s.duration_ms > 0, "duration_ms must be positive")
    need(s.stop_at_height >= 0, "stop_at_height must be >= 0")
    need(s.liveness_bound_ms >= 0, "liveness_bound_ms must be >= 0 (0: derived)")
    need(s.crypto in CRYPTO_KINDS, f"crypto must be one of {CRYPTO_KINDS}, got {s.crypto!r}")
    max_faulty = s.consensus_config().f
    nodes = range(s.n)
    for b in s.byzantine:
        need(b.node in nodes, f"byzantine node {b.node} outside 0..{s.n - 1}")
    need(len(s.byzantine_nodes()) == len(s.byzantine), "a node is listed twice in [[byzantine]]")
    for d in s.drift:
        need(d.node in nodes, f"drift node {d.node} outside 0..{s.n - 1}")
        need(d.rate_ppm > -PPM // 2, "drift rate_ppm must be > -500000")
    for f in s.faults:
        need(f.at_ms >= 0, "fault at_ms must be >= 0")
        need(f.end_ms is None or f.end_ms > f.at_ms, "a fault must end after it starts")
        if f.kind == "crash":
            need(f.node in nodes, f"crash node {f.node} outside 0..{s.n - 1}")
        for g in f.groups:
            for i in g:
                need(i in nodes, f"partition node {i} outside 0..{s.n - 1}")
        listed = [i for g in f.groups for i in g]
        need(len(listed) == len(set(listed)), "a node is in two partition groups")
        for i in f.src + f.dst:
            need(i in nodes, f"drop node {i} outside 0..{s.n - 1}")
        names = droppable_messages()
        for m in f.messages:
            need(m in names, f"drop message {m!r} is not one of {names}")
    for rule in s.network.links:
        for i in rule.src + rule.dst:
            need(i in nodes, f"link node {i} outside 0..{s.n - 1}")
    if s.faults and s.liveness_applicable(max_faulty):
        deadline = s.last_fault_end() + s.liveness_bound()
        need(
            s.duration_ms >= deadline,
            f"duration_ms {s.duration_ms} ends before the liveness deadline {deadline}",
        )
    w = s.workload
    need(w.mode in ("open", "closed"), f"workload mode must be open or closed, got {w.mode!r}")
    need(w.arrival in ("fixed", "uniform"), "workload arrival must be fixed or uniform")
    need(w.rate_tps > 0 and w.clients > 0, "workload rate_tps and clients must be positive")
    need(w.tx_size >= 16, "workload tx_size must be >= 16 bytes")
    net = s.network
    need(net.max_frame_bytes > 1024, "network max_frame_bytes must be > 1024")
    need(net.status_interval_ms > 0, "network status_interval_ms must be positive")
    need(net.sync_lag_threshold >= 0 and net.sync_stall_ms >= 0, "sync lag and stall must be >= 0")
    for b in s.byzantine:
        need(b.count >= 0, "byzantine count must be >= 0")


class _Table:
    """A TOML table read key by key; ``done`` rejects keys nobody asked for."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ScenarioError(f"[{where}] must be a table")
        self._data = dict(data)
        self._where = where

    def _key(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key

    def _get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        if key not in self._data:
            if default is _REQUIRED:
                raise ScenarioError(f"missing key {self._key(key)}")
            return default
        value = self._data.pop(key)
        if isinstance(value, bool) and kind is not bool:
            raise ScenarioError(f"{self._key(key)} must not be a boolean")
        if not isinstance(value, kind):
            raise ScenarioError(f"{self._key(key)} has the wrong type: {value!r}")
        return value

    def text(self, key: str, default: Any = None) -> str:
        return str(self._get(key, str, _REQUIRED if default is None else default))

    def integer(self, key: str, default: Any = None) -> int:
        return int(self._get(key, int, _REQUIRED if default is None else default))

    def opt_int(self, key: str) -> int | None:
        v = self._get(key, int, None)
        return None if v is None else int(v)

    def flag(self, key: str, default: bool) -> bool:
        return bool(self._get(key, bool, default))

    def ppm(self, key: str, default: int | None) -> int | None:
        v = self._get(key, (int, float), None)
        if v is None:
            return default
        return probability_ppm(v, self._key(key))

    def ints(self, key: str, default: Any = None) -> tuple[int, ...]:
        v = self._get(key, list, _REQUIRED if default is None else default)
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
            raise ScenarioError(f"{self._key(key)} must be a list of integers")
        return tuple(v)

    def latency(self, key: str) -> Latency | None:
        v = self._get(key, dict, None)
        return None if v is None else _latency(_Table(v, self._key(key)))

    def table(self, key: str) -> _Table:
        return _Table(self._get(key, dict, {}), self._key(key))

    def tables(self, key: str) -> list[_Table]:
        items = self._get(key, list, [])
        return [_Table(x, f"{self._key(key)}[{i}]") for i, x in enumerate(items)]

    def raw(self) -> dict[str, Any]:
        out, self._data = self._data, {}
        return out

    def done(self) -> None:
        if self._data:
            raise ScenarioError(f"unknown key {self._key(sorted(self._data)[0])}")


_REQUIRED = object()


def probability_ppm(value: float | int, where: str = "probability") -> int:
    if not 0 <= value <= 1:
        raise ScenarioError(f"{where} must be in [0, 1], got {value}")
    return round(value * PPM)


def _latency(t: _Table) -> Latency:
    kind = t.text("dist")
    if kind == "constant":
        lat = Latency(kind, t.integer("ms"), 0)
    elif kind == "uniform":
        lat = Latency(kind, t.integer("min_ms"), t.integer("max_ms"))
    elif kind == "normal":
        lat = Latency(kind, t.integer("mean_ms"), t.integer("jitter_ms"))
    else:
        raise ScenarioError(f"latency dist must be one of {LATENCY_KINDS}, got {kind!r}")
    t.done()
    check_latency(lat)
    return lat


def check_latency(lat: Latency) -> None:
    if lat.a < 0 or lat.b < 0 or (lat.kind == "uniform" and lat.b < lat.a):
        raise ScenarioError(f"bad latency {lat.kind} {lat.a} {lat.b}")


def parse_latency(text: str) -> Latency:
    """``"20"`` constant, ``"50-300"`` uniform, ``"100~20"`` normal (sweep parameters)."""
    try:
        if "-" in text:
            lo, hi = text.split("-", 1)
            lat = Latency("uniform", int(lo), int(hi))
        elif "~" in text:
            mean, jitter = text.split("~", 1)
            lat = Latency("normal", int(mean), int(jitter))
        else:
            lat = Latency("constant", int(text), 0)
    except ValueError as exc:
        raise ScenarioError(f"bad latency {text!r}: use 20, 50-300 or 100~20") from exc
    check_latency(lat)
    return lat


def _network(t: _Table) -> NetworkSpec:
    base = NetworkSpec()
    links = []
    for lt in t.tables("links"):
        links.append(
            LinkRule(
                src=lt.ints("from"),
                dst=lt.ints("to"),
                latency=lt.latency("latency"),
                loss_ppm=lt.ppm("loss", None),
                duplicate_ppm=lt.ppm("duplicate", None),
                reorder_ppm=lt.ppm("reorder", None),
            )
        )
        lt.done()
    spec = NetworkSpec(
        latency=t.latency("latency") or base.latency,
        loss_ppm=t.ppm("loss", 0) or 0,
        duplicate_ppm=t.ppm("duplicate", 0) or 0,
        reorder_ppm=t.ppm("reorder", 0) or 0,
        reorder_ms=t.integer("reorder_ms", base.reorder_ms),
        client_latency=t.latency("client_latency") or base.client_latency,
        links=tuple(links),
        sync_retry_ms=t.integer("sync_retry_ms", base.sync_retry_ms),
        sync_max_blocks=t.integer("sync_max_blocks", base.sync_max_blocks),
        max_frame_bytes=t.integer("max_frame_bytes", base.max_frame_bytes),
        status_sync=t.flag("status_sync", base.status_sync),
        status_interval_ms=t.integer("status_interval_ms", base.status_interval_ms),
        sync_lag_threshold=t.integer("sync_lag_threshold", base.sync_lag_threshold),
        sync_stall_ms=t.integer("sync_stall_ms", base.sync_stall_ms),
    )
    t.done()
    return spec


def _workload(t: _Table) -> WorkloadSpec:
    d = WorkloadSpec()
    spec = WorkloadSpec(
        mode=t.text("mode", d.mode),
        rate_tps=t.integer("rate_tps", d.rate_tps),
        arrival=t.text("arrival", d.arrival),
        clients=t.integer("clients", d.clients),
        think_ms=t.integer("think_ms", d.think_ms),
        tx_size=t.integer("tx_size", d.tx_size),
        start_ms=t.integer("start_ms", d.start_ms),
        stop_ms=t.integer("stop_ms", d.stop_ms),
        max_txs=t.integer("max_txs", d.max_txs),
    )
    t.done()
    return spec


def _fault(t: _Table) -> Fault:
    kind = t.text("kind")
    if kind == "crash":
        fault = Fault(kind, t.integer("at_ms"), t.opt_int("restart_ms"), node=t.integer("node"))
    elif kind == "partition":
        groups = t._get("groups", list, _REQUIRED)
        if not all(isinstance(g, list) and all(isinstance(i, int) for i in g) for g in groups):
            raise ScenarioError("partition groups must be a list of lists of node ids")
        fault = Fault(
            kind, t.integer("at_ms"), t.opt_int("heal_ms"), groups=tuple(tuple(g) for g in groups)
        )
    elif kind == "drop":
        names = t._get("messages", list, [])
        if not all(isinstance(m, str) for m in names):
            raise ScenarioError("drop messages must be a list of message names")
        fault = Fault(
            kind,
            t.integer("at_ms"),
            t.opt_int("heal_ms"),
            src=t.ints("from", []),
            dst=t.ints("to", []),
            messages=tuple(names),
        )
    else:
        raise ScenarioError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
    t.done()
    return fault


def _byzantine(t: _Table) -> ByzantineSpec:
    spec = ByzantineSpec(
        node=t.integer("node"),
        behaviour=t.text("behaviour"),
        delay_ms=t.integer("delay_ms", 0),
        count=t.integer("count", 0),
    )
    t.done()
    if spec.behaviour not in BEHAVIOURS:
        raise ScenarioError(f"byzantine behaviour must be one of {BEHAVIOURS}")
    if spec.behaviour == "delay" and spec.delay_ms <= 0:
        raise ScenarioError("byzantine behaviour delay needs delay_ms > 0")
    return spec


def _drift(t: _Table) -> DriftSpec:
    spec = DriftSpec(
        node=t.integer("node"),
        offset_ms=t.integer("offset_ms", 0),
        rate_ppm=t.integer("rate_ppm", 0),
    )
    t.done()
    return spec
