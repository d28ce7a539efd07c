"""Simulation scenarios: the TOML schema of ``configs/scenarios/*.toml``, parsed and checked.

A scenario is plain data: cluster size, consensus knobs, network model,
workload, scheduled faults, Byzantine nodes and clock drift. Unknown keys and
inconsistent values are errors (``ScenarioError``) with the offending key in
the message. Probabilities are read as decimals and kept as integer parts per
million, so nothing downstream of the loader touches a float.
The schema is documented in ``docs/simulator.md``.

The file's shape is the ``_...Doc`` Structs below (latencies and faults are
tagged unions on ``dist`` and ``kind``), checked through ``node.core.strict``;
a key the file leaves out takes the default of the scenario's own dataclasses,
and ``validate`` checks what spans keys.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeAlias, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from consensus.config import ConsensusConfig
from node.core import strict
from node.core.strict import Problem, StrictError, dotted, given, one_of, suggest, text
from node.net.wire import CONSENSUS_FRAME_OVERHEAD

PPM = 1_000_000
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
class ValidatorChange:
    """At ``at_ms`` the scenario submits a governance change to every node: the
    validator set becomes ``validators`` (node ids, in index order). It takes
    effect at the epoch boundary after the block that holds it
    (consensus/epochs.py); refused (ignored) while another change is in flight."""

    at_ms: int
    validators: tuple[int, ...]


@dataclass(frozen=True)
class Scenario:
    name: str
    n: int  # nodes; the first ``validators`` of them (all, when 0) are genesis's set
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
    validators: int = 0
    validator_changes: tuple[ValidatorChange, ...] = ()

    @property
    def genesis_validators(self) -> int:
        return self.validators or self.n

    def consensus_config(self) -> ConsensusConfig:
        knobs = dict(self.consensus)
        chain_id = str(knobs.pop("chain_id", f"sim-{self.name}"))
        if "max_message_bytes" not in knobs:  # what the frame limit leaves, as the daemon sets it
            knobs["max_message_bytes"] = self.network.max_frame_bytes - CONSENSUS_FRAME_OVERHEAD
        try:
            return ConsensusConfig(chain_id=chain_id, n=self.genesis_validators, **knobs)
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
    try:
        doc = strict.convert(data, _ScenarioDoc)
    except StrictError as exc:
        raise ScenarioError(_message(exc.problem)) from None
    scenario = Scenario(
        **{
            **given(doc),
            "consensus": tuple(sorted(doc.consensus.items())),
            "network": _network(doc.network),
            "workload": WorkloadSpec(**given(doc.workload)),
            "faults": tuple(_fault(f) for f in doc.faults),
            "byzantine": tuple(_byzantine(b) for b in doc.byzantine),
            "drift": tuple(DriftSpec(**given(d)) for d in doc.drift),
            "validator_changes": tuple(
                ValidatorChange(c.at_ms, tuple(c.validators)) for c in doc.validator_changes
            ),
        }
    )
    validate(scenario)
    return scenario


def _message(p: Problem) -> str:
    key = dotted(p.path)
    if p.what == "unknown":
        hint = suggest(str(p.path[-1]), p.fields)
        return f"unknown key {key}" + (f" (did you mean {hint}?)" if hint else "")
    if p.what == "missing":
        return f"missing key {key}"
    if p.what == "type" and isinstance(p.value, bool):
        return f"{key} must not be a boolean"
    if p.what == "type" and p.expected == "an object":
        return f"[{key}] must be a table"
    if p.what == "type":
        return f"{key} must be {p.expected}, got {p.value!r}"
    if p.what == "tag":  # e.g. "network.latency dist must be one of constant, ..."
        return f"{dotted(p.path[:-1])} {p.path[-1]} {p.why(repr)}"
    return f"{key} {p.why(repr)}"


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
    need(0 <= s.validators <= s.n, f"validators must be in 0..{s.n} (0: every node)")
    for c in s.validator_changes:
        need(c.at_ms >= 0, "validator change at_ms must be >= 0")
        need(bool(c.validators), "a validator change needs at least one validator")
        need(len(set(c.validators)) == len(c.validators), "a validator change names a node twice")
        for i in c.validators:
            need(i in nodes, f"validator change node {i} outside 0..{s.n - 1}")
    if s.validator_changes or s.validators:
        need(net.status_sync, "validator changes need network.status_sync (followers sync by it)")


def probability_ppm(value: float | int, where: str = "probability") -> int:
    if not 0 <= value <= 1:
        raise ScenarioError(f"{where} must be in [0, 1], got {value}")
    return round(value * PPM)


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


# ------------------------------------------------------------------ the file
T = TypeVar("T")
Maybe: TypeAlias = T | UnsetType  # a key the file may leave out: the dataclass default applies
NodeIds = Annotated[tuple[int, ...], Meta(extra={"expected": "a list of integers"})]
Probability = Annotated[int | float, Meta(extra={"expected": "a number in [0, 1]"})]


class _Doc(msgspec.Struct, forbid_unknown_fields=True):
    """A table of a scenario file: unknown keys are errors."""


class _Constant(_Doc, tag_field="dist", tag="constant"):
    ms: int


class _Uniform(_Doc, tag_field="dist", tag="uniform"):
    min_ms: int
    max_ms: int


class _Normal(_Doc, tag_field="dist", tag="normal"):
    mean_ms: int
    jitter_ms: int


_LatencyDoc = _Constant | _Uniform | _Normal


class _LinkDoc(_Doc, rename={"src": "from", "dst": "to"}):
    src: NodeIds
    dst: NodeIds
    latency: _LatencyDoc | None = None
    loss: Probability | None = None
    duplicate: Probability | None = None
    reorder: Probability | None = None


class _NetworkDoc(_Doc):
    latency: Maybe[_LatencyDoc] = UNSET
    loss: Maybe[Probability] = UNSET
    duplicate: Maybe[Probability] = UNSET
    reorder: Maybe[Probability] = UNSET
    reorder_ms: Maybe[int] = UNSET
    client_latency: Maybe[_LatencyDoc] = UNSET
    links: tuple[_LinkDoc, ...] = ()
    sync_retry_ms: Maybe[int] = UNSET
    sync_max_blocks: Maybe[int] = UNSET
    max_frame_bytes: Maybe[int] = UNSET
    status_sync: Maybe[bool] = UNSET
    status_interval_ms: Maybe[int] = UNSET
    sync_lag_threshold: Maybe[int] = UNSET
    sync_stall_ms: Maybe[int] = UNSET


class _WorkloadDoc(_Doc):
    mode: Maybe[str] = UNSET
    rate_tps: Maybe[int] = UNSET
    arrival: Maybe[str] = UNSET
    clients: Maybe[int] = UNSET
    think_ms: Maybe[int] = UNSET
    tx_size: Maybe[int] = UNSET
    start_ms: Maybe[int] = UNSET
    stop_ms: Maybe[int] = UNSET
    max_txs: Maybe[int] = UNSET


class _Crash(_Doc, tag_field="kind", tag="crash"):
    node: int
    at_ms: int
    restart_ms: int | None = None


class _Partition(_Doc, tag_field="kind", tag="partition"):
    at_ms: int
    groups: Annotated[
        tuple[tuple[int, ...], ...], Meta(extra={"expected": "a list of lists of node ids"})
    ]
    heal_ms: int | None = None


class _Drop(_Doc, tag_field="kind", tag="drop", rename={"src": "from", "dst": "to"}):
    at_ms: int
    heal_ms: int | None = None
    src: NodeIds = ()
    dst: NodeIds = ()
    messages: Annotated[tuple[str, ...], Meta(extra={"expected": "a list of message names"})] = ()


class _ByzantineDoc(_Doc):
    node: int
    behaviour: Annotated[str, text(one_of(BEHAVIOURS))]
    delay_ms: Maybe[int] = UNSET
    count: Maybe[int] = UNSET


class _DriftDoc(_Doc):
    node: int
    offset_ms: Maybe[int] = UNSET
    rate_ppm: Maybe[int] = UNSET


class _ValidatorChangeDoc(_Doc):
    at_ms: int
    validators: tuple[int, ...]


class _ScenarioDoc(_Doc):
    name: str
    n: int
    duration_ms: int
    validators: Maybe[int] = UNSET
    validator_changes: tuple[_ValidatorChangeDoc, ...] = ()
    description: Maybe[str] = UNSET
    stop_at_height: Maybe[int] = UNSET
    liveness_bound_ms: Maybe[int] = UNSET
    crypto: Maybe[str] = UNSET
    wire: Maybe[bool] = UNSET
    clock_epoch_ms: Maybe[int] = UNSET
    consensus: dict[str, Any] = {}
    network: _NetworkDoc = msgspec.field(default_factory=_NetworkDoc)
    workload: _WorkloadDoc = msgspec.field(default_factory=_WorkloadDoc)
    faults: tuple[_Crash | _Partition | _Drop, ...] = ()
    byzantine: tuple[_ByzantineDoc, ...] = ()
    drift: tuple[_DriftDoc, ...] = ()


def _latency(doc: _LatencyDoc) -> Latency:
    if isinstance(doc, _Constant):
        lat = Latency("constant", doc.ms, 0)
    elif isinstance(doc, _Uniform):
        lat = Latency("uniform", doc.min_ms, doc.max_ms)
    else:
        lat = Latency("normal", doc.mean_ms, doc.jitter_ms)
    check_latency(lat)
    return lat


def _ppm(value: int | float | None, where: str) -> int | None:
    return None if value is None else probability_ppm(value, where)


def _network(doc: _NetworkDoc) -> NetworkSpec:
    fields = given(doc)
    for name in ("latency", "client_latency"):
        if name in fields:
            fields[name] = _latency(fields[name])
    for name in ("loss", "duplicate", "reorder"):
        if name in fields:
            fields[f"{name}_ppm"] = _ppm(fields.pop(name), f"network.{name}")
    links = []
    for i, rule in enumerate(doc.links):
        where = f"network.links[{i}]"
        links.append(
            LinkRule(
                src=rule.src,
                dst=rule.dst,
                latency=None if rule.latency is None else _latency(rule.latency),
                loss_ppm=_ppm(rule.loss, f"{where}.loss"),
                duplicate_ppm=_ppm(rule.duplicate, f"{where}.duplicate"),
                reorder_ppm=_ppm(rule.reorder, f"{where}.reorder"),
            )
        )
    return NetworkSpec(**{**fields, "links": tuple(links)})


def _fault(doc: _Crash | _Partition | _Drop) -> Fault:
    if isinstance(doc, _Crash):
        return Fault("crash", doc.at_ms, doc.restart_ms, node=doc.node)
    if isinstance(doc, _Partition):
        return Fault("partition", doc.at_ms, doc.heal_ms, groups=doc.groups)
    return Fault("drop", doc.at_ms, doc.heal_ms, src=doc.src, dst=doc.dst, messages=doc.messages)


def _byzantine(doc: _ByzantineDoc) -> ByzantineSpec:
    spec = ByzantineSpec(**given(doc))
    if spec.behaviour == "delay" and spec.delay_ms <= 0:
        raise ScenarioError("byzantine behaviour delay needs delay_ms > 0")
    return spec
