"""Fault schedules for chaos runs: seeded random ones, and a fixed one for CI.

A schedule is a list of windows ``(start, end, fault)`` in seconds from the
start of a run. Windows do not overlap: a fault is applied at ``start`` and
healed at ``end``, then the cluster gets a quiet gap, so every violation can
be traced to one fault and the checker's recovery bound has a clear "last
heal". A run ends with ``tail_s`` quiet seconds (recovery is measured there).

Every schedule prints in a replayable text form (``Schedule.text()``), one
window a line, which ``parse_schedule`` reads back to an equal schedule; the
header names the seed, so ``generate(seed, ...)`` also repeats it::

    # hygeia chaos schedule seed=42 duration=60 nodes=4 kinds=isolate,kill,latency
      3.000   9.412 isolate node=2
     12.085  17.310 latency ms=200 jitter_ms=100

The fault kinds, their parameters and what the runner does for them (the
runner is the integration step; ``tests/chaos/README.md``):

==================  ================================  ===============================
kind                parameters                        at start / at end
==================  ================================  ===============================
partition           groups=0,2,3|1                    ``ProxyNet.partition`` / heal
isolate             node=2                            ``ProxyNet.isolate`` / heal
isolate-primary     (none)                            isolate the primary of the view
                                                      at that moment / heal
bridge              left=0,1 via=2 right=3            ``ProxyNet.bridge`` / heal
ring                reach=1                           ``ProxyNet.ring`` / heal
one-way             src=0 dst=1                       ``ProxyNet.one_way`` / heal
latency             ms=200 jitter_ms=100              every link / heal
bandwidth           bytes_per_s=50000                 every link / heal
drip                bytes=16 every_ms=20              every link / heal
reset               nodes=0,3 every_ms=1000           RST the nodes' links every
                                                      ``every_ms`` during the window
kill                nodes=1                           ``kill -9`` / start again
pause               nodes=1                           SIGSTOP / SIGCONT
restart-all         (none)                            ``kill -9`` every node / start all
clock-skew          nodes=1 offset_s=300              step the wall clock by the offset
                                                      (``tests/chaos/clock.py``) / step
                                                      it back (backwards, for > 0)
clock-drift         nodes=1 percent=20                the clock gains ``percent`` of the
                                                      time in the window / steps back
disk-full           node=2                            fill the node's small tmpfs /
                                                      free it
byzantine           node=3 behaviour=equivocate       restart as a Byzantine process
                                                      (``tests.chaos.byzantine_node``,
                                                      ``BYZANTINE_BEHAVIOURS``) /
                                                      restart honest; the node is not
                                                      honest for the whole run, and a
                                                      schedule has one Byzantine node
==================  ================================  ===============================

Process, clock and Byzantine faults touch at most f = (n - 1) // 3 nodes at a
time, so a quorum of honest, running nodes remains possible; the network
shapes take any nodes (a partition without a quorum is the point of some).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tests.chaos.history import FaultSpan
from tests.chaos.proxy import grudge_bridge, grudge_partition, ring_reach

Param = int | str | tuple[int, ...] | tuple[tuple[int, ...], ...]

# parameter types: how each parameter is written and read
INT, STR, NODES, GROUPS = "int", "str", "nodes", "groups"

KINDS: Mapping[str, Mapping[str, str]] = {
    "partition": {"groups": GROUPS},
    "isolate": {"node": INT},
    "isolate-primary": {},
    "bridge": {"left": NODES, "via": INT, "right": NODES},
    "ring": {"reach": INT},
    "one-way": {"src": INT, "dst": INT},
    "latency": {"ms": INT, "jitter_ms": INT},
    "bandwidth": {"bytes_per_s": INT},
    "drip": {"bytes": INT, "every_ms": INT},
    "reset": {"nodes": NODES, "every_ms": INT},
    "kill": {"nodes": NODES},
    "pause": {"nodes": NODES},
    "restart-all": {},
    "clock-skew": {"nodes": NODES, "offset_s": INT},
    "clock-drift": {"nodes": NODES, "percent": INT},
    "disk-full": {"node": INT},
    "byzantine": {"node": INT, "behaviour": STR},
}
ALL_KINDS: tuple[str, ...] = tuple(KINDS)
NETWORK_KINDS = (
    "partition", "isolate", "isolate-primary", "bridge", "ring", "one-way",
    "latency", "bandwidth", "drip", "reset",
)  # fmt: skip
PROCESS_KINDS = ("kill", "pause", "restart-all")
CLOCK_KINDS = ("clock-skew", "clock-drift")
# what random schedules pick from: behaviours of tests.chaos.byzantine_node (its SUPPORTED,
# which a test holds this within)
BYZANTINE_BEHAVIOURS = (
    "equivocate", "conflicting_votes", "vote_all", "stale_view_change", "garbage",
    "forge_view_change", "forge_new_view", "bad_checkpoint", "flood_views", "status_lie",
    "oversized", "bad_sig", "silent",
)  # fmt: skip
MIN_NODES = {"bridge": 3, "ring": 4}  # fewer nodes: the shape cuts nothing (or is impossible)


class ScheduleError(ValueError):
    """A schedule text or a fault that does not follow the format."""


def _format_param(kind: str, value: Param) -> str:
    if isinstance(value, int | str):
        return str(value)
    if kind == NODES:
        return ",".join(str(i) for i in value)
    return "|".join(",".join(str(i) for i in g) for g in value if isinstance(g, tuple))


def _nodes(text: str) -> tuple[int, ...]:
    if not re.fullmatch(r"\d+(,\d+)*", text):
        raise ScheduleError(f"expected node numbers like 0,2,3, got {text!r}")
    return tuple(int(x) for x in text.split(","))


def _parse_param(kind: str, text: str) -> Param:
    if kind == INT:
        if not re.fullmatch(r"-?\d+", text):
            raise ScheduleError(f"expected an integer, got {text!r}")
        return int(text)
    if kind == STR:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", text):
            raise ScheduleError(f"expected a word, got {text!r}")
        return text
    if kind == NODES:
        return _nodes(text)
    return tuple(_nodes(g) for g in text.split("|"))


@dataclass(frozen=True)
class Fault:
    """A fault kind with its parameters, in the order of ``KINDS[kind]``."""

    kind: str
    params: tuple[tuple[str, Param], ...] = ()

    @classmethod
    def make(cls, kind: str, **params: Param) -> Fault:
        """A checked fault: known kind, exactly its parameters."""
        schema = KINDS.get(kind)
        if schema is None:
            raise ScheduleError(f"unknown fault kind {kind!r} (known: {', '.join(KINDS)})")
        if set(params) != set(schema):
            raise ScheduleError(f"{kind} takes {sorted(schema)}, got {sorted(params)}")
        fault = cls(kind, tuple((name, params[name]) for name in schema))
        getters = {
            INT: fault.get_int, STR: fault.get_str, NODES: fault.get_nodes,
            GROUPS: fault.get_groups,
        }  # fmt: skip
        for name, type_ in schema.items():
            getters[type_](name)  # raises ScheduleError on a value of the wrong type
        return fault

    def __getitem__(self, name: str) -> Param:
        return dict(self.params)[name]

    def get_int(self, name: str) -> int:
        value = self[name]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ScheduleError(f"{self.kind}: {name} is not an integer: {value!r}")
        return value

    def get_str(self, name: str) -> str:
        value = self[name]
        if not isinstance(value, str):
            raise ScheduleError(f"{self.kind}: {name} is not a word: {value!r}")
        return value

    def get_nodes(self, name: str) -> tuple[int, ...]:
        value = self[name]
        if not isinstance(value, tuple) or not all(isinstance(i, int) for i in value):
            raise ScheduleError(f"{self.kind}: {name} is not a node list: {value!r}")
        return tuple(i for i in value if isinstance(i, int))

    def get_groups(self, name: str) -> tuple[tuple[int, ...], ...]:
        value = self[name]
        if not isinstance(value, tuple) or not all(isinstance(g, tuple) for g in value):
            raise ScheduleError(f"{self.kind}: {name} is not a list of groups: {value!r}")
        return tuple(g for g in value if isinstance(g, tuple))

    def text(self) -> str:
        schema = KINDS[self.kind]
        return " ".join(
            [self.kind, *(f"{k}={_format_param(schema[k], v)}" for k, v in self.params)]
        )

    @classmethod
    def parse(cls, text: str) -> Fault:
        kind, *words = text.split()
        schema = KINDS.get(kind)
        if schema is None:
            raise ScheduleError(f"unknown fault kind {kind!r} (known: {', '.join(KINDS)})")
        params: dict[str, Param] = {}
        for word in words:
            name, eq, value = word.partition("=")
            if not eq or name not in schema or name in params:
                raise ScheduleError(f"{kind}: bad or repeated parameter {word!r}")
            params[name] = _parse_param(schema[name], value)
        return cls.make(kind, **params)


@dataclass(frozen=True)
class Window:
    """A fault from ``start`` to ``end`` seconds after the start of the run."""

    start: float
    end: float
    fault: Fault

    def text(self) -> str:
        return f"{self.start:8.3f} {self.end:8.3f} {self.fault.text()}"


@dataclass(frozen=True)
class Schedule:
    seed: int | None  # None: not generated (the CI schedule, or one written by hand)
    duration: float
    nodes: int
    kinds: tuple[str, ...]
    windows: tuple[Window, ...] = field(default=())

    def text(self) -> str:
        """The replayable text form (module docstring)."""
        seed = "none" if self.seed is None else str(self.seed)
        head = (
            f"# hygeia chaos schedule seed={seed} duration={self.duration:g} "
            f"nodes={self.nodes} kinds={','.join(self.kinds)}"
        )
        return "\n".join([head, *(w.text() for w in self.windows)]) + "\n"

    def covered_kinds(self) -> set[str]:
        return {w.fault.kind for w in self.windows}

    def spans(self, t0_ns: int) -> list[FaultSpan]:
        """The windows on a run's monotonic clock, the run having started at ``t0_ns``."""
        return [
            FaultSpan(t0_ns + round(w.start * 1e9), t0_ns + round(w.end * 1e9), w.fault.text())
            for w in self.windows
        ]


_HEAD = re.compile(
    r"# hygeia chaos schedule seed=(?P<seed>-?\d+|none) duration=(?P<duration>[0-9.]+) "
    r"nodes=(?P<nodes>\d+) kinds=(?P<kinds>[a-z,-]*)"
)
_LINE = re.compile(r"\s*(?P<start>\d+(?:\.\d+)?)\s+(?P<end>\d+(?:\.\d+)?)\s+(?P<fault>\S.*)")


def parse_schedule(text: str) -> Schedule:
    """Read ``Schedule.text()`` back (blank lines and other ``#`` lines ignored)."""
    lines = text.splitlines()
    head = _HEAD.fullmatch(lines[0].strip()) if lines else None
    if head is None:
        raise ScheduleError("line 1: expected '# hygeia chaos schedule seed=... duration=...'")
    windows = []
    for n, line in enumerate(lines[1:], 2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.fullmatch(line)
        if m is None:
            raise ScheduleError(f"line {n}: expected 'START END KIND key=value...', got {line!r}")
        try:
            fault = Fault.parse(m["fault"])
        except ScheduleError as exc:
            raise ScheduleError(f"line {n}: {exc}") from None
        windows.append(Window(float(m["start"]), float(m["end"]), fault))
    schedule = Schedule(
        seed=None if head["seed"] == "none" else int(head["seed"]),
        duration=float(head["duration"]),
        nodes=int(head["nodes"]),
        kinds=tuple(k for k in head["kinds"].split(",") if k),
        windows=tuple(windows),
    )
    validate(schedule)
    return schedule


def validate(schedule: Schedule) -> None:
    """Windows in order, not overlapping, within the run; faults fit the node count."""
    n = schedule.nodes
    last_end = 0.0
    for w in schedule.windows:
        where = f"window {w.text().strip()!r}"
        if not 0 <= w.start < w.end <= schedule.duration:
            raise ScheduleError(f"{where}: must have 0 <= start < end <= {schedule.duration:g}")
        if w.start < last_end:
            raise ScheduleError(f"{where}: overlaps the window before")
        last_end = w.end
        try:
            check_fault(w.fault, n)
        except ValueError as exc:
            raise ScheduleError(f"{where}: {exc}") from None
    if len(byzantine_nodes(schedule)) > 1:
        raise ScheduleError(
            f"Byzantine windows name nodes {sorted(byzantine_nodes(schedule))}: a run has at "
            "most one Byzantine node (its old signatures stay valid after it turns honest)"
        )


def byzantine_nodes(schedule: Schedule) -> set[int]:
    """The nodes some window of the schedule makes Byzantine (not honest for the run)."""
    return {w.fault.get_int("node") for w in schedule.windows if w.fault.kind == "byzantine"}


def disk_nodes(schedule: Schedule) -> set[int]:
    """The nodes whose disk some window of the schedule fills (they need a small disk)."""
    return {w.fault.get_int("node") for w in schedule.windows if w.fault.kind == "disk-full"}


def _f(n: int) -> int:
    return max(1, (n - 1) // 3)


def check_fault(fault: Fault, n: int) -> None:
    """``ValueError`` if the fault does not fit a cluster of ``n`` nodes."""
    kind = fault.kind
    if n < MIN_NODES.get(kind, 2):
        raise ValueError(f"{kind} needs at least {MIN_NODES[kind]} nodes")
    schema = KINDS[kind]
    for name in schema:
        if schema[name] == INT and name in ("node", "via", "src", "dst"):
            named = [fault.get_int(name)]
        elif schema[name] == NODES:
            named = list(fault.get_nodes(name))
        else:
            continue
        if not all(0 <= i < n for i in named):
            raise ValueError(f"{name}={fault[name]} names a node outside 0..{n - 1}")
    if kind == "partition":
        grudge_partition(n, fault.get_groups("groups"))
    elif kind == "bridge":
        grudge_bridge(n, fault.get_nodes("left"), fault.get_int("via"), fault.get_nodes("right"))
    elif kind == "one-way" and fault.get_int("src") == fault.get_int("dst"):
        raise ValueError("one-way needs two different nodes")
    elif kind in ("kill", "pause", "clock-skew", "clock-drift") and not 1 <= len(
        fault.get_nodes("nodes")
    ) <= _f(n):
        raise ValueError(f"{kind} takes 1..{_f(n)} nodes (f) at a time")
    elif kind == "byzantine" and fault.get_str("behaviour") not in BYZANTINE_BEHAVIOURS:
        raise ValueError(
            f"unknown behaviour {fault['behaviour']!r} (known: {', '.join(BYZANTINE_BEHAVIOURS)})"
        )


def random_fault(rng: random.Random, kind: str, n: int, byzantine: int = 0) -> Fault:
    """A fault of ``kind`` with random targets and settings for ``n`` nodes (the
    Byzantine one, if ``kind`` is that, is ``byzantine``)."""
    f = _f(n)

    def some(k_max: int) -> tuple[int, ...]:
        return tuple(sorted(rng.sample(range(n), rng.randint(1, k_max))))

    if kind == "partition":
        perm = rng.sample(range(n), n)
        k = rng.randint(1, n // 2)
        return Fault.make(kind, groups=(tuple(sorted(perm[k:])), tuple(sorted(perm[:k]))))
    if kind == "isolate":
        return Fault.make(kind, node=rng.randrange(n))
    if kind == "bridge":
        via, *rest = rng.sample(range(n), n)
        half = len(rest) // 2
        return Fault.make(
            kind, left=tuple(sorted(rest[:half])), via=via, right=tuple(sorted(rest[half:]))
        )
    if kind == "ring":
        return Fault.make(kind, reach=ring_reach(n))
    if kind == "one-way":
        src, dst = rng.sample(range(n), 2)
        return Fault.make(kind, src=src, dst=dst)
    if kind == "latency":
        ms = rng.choice((50, 100, 200, 500))
        return Fault.make(kind, ms=ms, jitter_ms=ms // 2)
    if kind == "bandwidth":
        return Fault.make(kind, bytes_per_s=rng.choice((10_000, 50_000, 200_000)))
    if kind == "drip":
        return Fault.make(kind, bytes=rng.choice((1, 16, 64)), every_ms=rng.choice((5, 20, 50)))
    if kind == "reset":
        return Fault.make(kind, nodes=some(n), every_ms=rng.choice((500, 1000, 2000)))
    if kind in ("kill", "pause"):
        return Fault.make(kind, nodes=some(f))
    if kind == "clock-skew":
        return Fault.make(kind, nodes=some(f), offset_s=rng.choice((-300, -30, 30, 300)))
    if kind == "clock-drift":
        return Fault.make(kind, nodes=some(f), percent=rng.choice((5, 20, 100)))
    if kind == "disk-full":
        return Fault.make(kind, node=rng.randrange(n))
    if kind == "byzantine":
        return Fault.make(kind, node=byzantine, behaviour=rng.choice(BYZANTINE_BEHAVIOURS))
    return Fault.make(kind)  # isolate-primary, restart-all: no parameters


def generate(
    seed: int,
    duration: float,
    nodes: int,
    kinds: Iterable[str] = ALL_KINDS,
    *,
    fault_s: tuple[float, float] = (3.0, 10.0),
    gap_s: tuple[float, float] = (2.0, 6.0),
    lead_s: float = 3.0,
    tail_s: float = 10.0,
) -> Schedule:
    """A random schedule from ``seed``: windows of ``fault_s`` seconds, quiet gaps of
    ``gap_s``, the first after ``lead_s``, none in the last ``tail_s``."""
    chosen = tuple(sorted(set(kinds)))
    for kind in chosen:
        if kind not in KINDS:
            raise ScheduleError(f"unknown fault kind {kind!r} (known: {', '.join(KINDS)})")
        if nodes < MIN_NODES.get(kind, 2):
            raise ScheduleError(f"{kind} needs at least {MIN_NODES[kind]} nodes, got {nodes}")
    if not chosen:
        raise ScheduleError("no fault kinds to choose from")
    rng = random.Random(seed)
    # the one node of the run that may be Byzantine, from its own stream (older seeds
    # replay the same windows)
    byzantine = random.Random(f"byzantine {seed}").randrange(nodes)
    windows: list[Window] = []
    t = lead_s
    while True:
        end = round(t + rng.uniform(*fault_s), 3)
        if end > duration - tail_s:
            break
        kind = rng.choice(chosen)
        windows.append(Window(round(t, 3), end, random_fault(rng, kind, nodes, byzantine)))
        t = end + rng.uniform(*gap_s)
    schedule = Schedule(seed, duration, nodes, chosen, tuple(windows))
    validate(schedule)
    return schedule


def ci_faults(nodes: int = 4) -> list[Fault]:
    """One fault of every kind, in ``ALL_KINDS`` order, on fixed targets (node 1 for
    single-node faults: never node 0, the first primary, except through
    ``isolate-primary``; the last node is the Byzantine one)."""
    if nodes < 4:
        raise ScheduleError("the CI schedule needs at least 4 nodes")
    last = nodes - 1
    rest = tuple(range(2, nodes))
    return [
        Fault.make("partition", groups=((0, 1), rest)),
        Fault.make("isolate", node=1),
        Fault.make("isolate-primary"),
        Fault.make("bridge", left=(0,), via=1, right=rest),
        Fault.make("ring", reach=ring_reach(nodes)),
        Fault.make("one-way", src=0, dst=1),
        Fault.make("latency", ms=100, jitter_ms=50),
        Fault.make("bandwidth", bytes_per_s=50_000),
        Fault.make("drip", bytes=16, every_ms=20),
        Fault.make("reset", nodes=(0, last), every_ms=1000),
        Fault.make("kill", nodes=(1,)),
        Fault.make("pause", nodes=(1,)),
        Fault.make("restart-all"),
        Fault.make("clock-skew", nodes=(1,), offset_s=300),
        Fault.make("clock-drift", nodes=(2,), percent=100),
        Fault.make("disk-full", node=1),
        Fault.make("byzantine", node=last, behaviour="equivocate"),
    ]


def ci_schedule(
    nodes: int = 4, fault_s: float = 4.0, gap_s: float = 3.0, skip: Iterable[str] = ()
) -> Schedule:
    """The fixed short schedule CI runs: ``ci_faults`` (less the kinds in ``skip``),
    each for ``fault_s`` seconds with ``gap_s`` between, then 10 quiet seconds."""
    left_out = set(skip)
    return fixed_schedule(
        [f for f in ci_faults(nodes) if f.kind not in left_out], nodes, fault_s, gap_s
    )


def fixed_schedule(
    faults: Sequence[Fault], nodes: int, fault_s: float, gap_s: float, tail_s: float = 10.0
) -> Schedule:
    """``faults`` one after the other, ``fault_s`` seconds each, ``gap_s`` apart (the
    first after ``gap_s``), then ``tail_s`` quiet seconds."""
    windows = []
    t = gap_s
    for fault in faults:
        windows.append(Window(round(t, 3), round(t + fault_s, 3), fault))
        t += fault_s + gap_s
    kinds = tuple(k for k in ALL_KINDS if any(f.kind == k for f in faults))
    schedule = Schedule(None, round(t + tail_s, 3), nodes, kinds, tuple(windows))
    validate(schedule)
    return schedule


def describe(schedule: Schedule) -> str:
    """The schedule's text and a replay hint, for the run's log and report."""
    hint = (
        f"# replay: generate(seed={schedule.seed}, duration={schedule.duration:g}, "
        f"nodes={schedule.nodes}, kinds={list(schedule.kinds)!r}), or parse_schedule() of this"
        if schedule.seed is not None
        else "# replay: parse_schedule() of this text"
    )
    return schedule.text() + hint + "\n"
