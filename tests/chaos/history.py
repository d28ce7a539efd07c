"""The history of a chaos run: what each client asked of which node, and what came back.

As in Jepsen, a history is a sequence of operations. A client (a single-threaded
worker, Jepsen's *process*) *invokes* an operation and later *completes* it
with one of:

* ``ok``: it happened (a 202 for a submission; an answer for a status read),
* ``fail``: it certainly did not happen (a 4xx refusal, a 503 mempool-full,
  connection refused: the node never had the tx),
* ``info``: unknown (a timeout, a reset connection: the tx may or may not have
  been admitted). Jepsen's *indeterminate*.

The invoke and its completion share ``(client, op)``; a client has at most one
operation outstanding. Operations (``f``):

* ``submit``: POST /v1/txs of ``tx`` to ``node``; ``ok`` has ``status="accepted"``;
* ``status``: GET /v1/txs/{tx} on ``node``; ``ok`` has the node's answer,
  ``committed``/``rejected`` (both: in a block, at ``height`` and ``index``),
  ``pending`` or ``unknown``;
* ``nemesis``: a fault window opens (``phase="start"``) or closes (``"end"``),
  ``client = NEMESIS``, ``op`` numbers the window, ``fault`` is its text in the
  schedule's replayable form (``tests/chaos/schedule.py``). Always ``info``.

Times are ``wall_ns`` (time.time_ns, for people) and ``mono_ns``
(time.monotonic_ns, for every computation: intervals, fault windows).

On disk: JSON Lines, one operation per line, append-only, flushed line by line
(a killed run keeps its history). ``read_history`` checks the schema of every
line and the sequence rules above, and names the line of the first problem.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

import msgspec

Kind = Literal["invoke", "ok", "fail", "info"]
Fn = Literal["submit", "status", "nemesis"]
Status = Literal["accepted", "committed", "rejected", "pending", "unknown"]
Phase = Literal["start", "end"]
Clock = Callable[[], tuple[int, int]]  # () -> (wall_ns, mono_ns)

NEMESIS = -1  # the client id of fault events
IN_CHAIN: frozenset[str] = frozenset({"committed", "rejected"})  # statuses with height/index
_HEX64 = re.compile(r"[0-9a-f]{64}")
_OUTCOME_FIELDS = ("status", "height", "index", "code", "error")


class HistoryError(ValueError):
    """A history that breaks the schema or the sequence rules."""


class Op(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One line of a history (module docstring)."""

    type: Kind
    f: Fn
    client: int
    op: int
    wall_ns: int
    mono_ns: int
    tx: str | None = None
    node: int | None = None
    status: Status | None = None
    height: int | None = None
    index: int | None = None
    code: int | None = None  # the HTTP status, when there was an answer
    error: str | None = None  # the API error code, or what broke (timeout, reset, ...)
    fault: str | None = None
    phase: Phase | None = None

    @property
    def in_chain(self) -> bool:
        """An ``ok`` status read that found the tx in a block."""
        return self.type == "ok" and self.f == "status" and self.status in IN_CHAIN


def op_problem(op: Op) -> str | None:
    """What is wrong with one operation on its own (None: nothing)."""
    if op.wall_ns < 0 or op.mono_ns < 0 or op.op < 0:
        return "times and op numbers must be >= 0"
    if op.f == "nemesis":
        if op.client != NEMESIS or op.type != "info":
            return f"a nemesis op has client {NEMESIS} and type info"
        if op.phase is None or not op.fault:
            return "a nemesis op needs phase and fault"
        if op.tx is not None or any(getattr(op, k) is not None for k in _OUTCOME_FIELDS):
            return "a nemesis op has no tx and no outcome"
        return None
    if op.client < 0:
        return "a client id is >= 0"
    if op.fault is not None or op.phase is not None:
        return "only nemesis ops have fault and phase"
    if op.tx is None or not _HEX64.fullmatch(op.tx):
        return "tx must be 64 lower-case hex digits"
    if op.node is None or op.node < 0:
        return "node must be a node index >= 0"
    if op.type == "invoke":
        if any(getattr(op, k) is not None for k in _OUTCOME_FIELDS):
            return "an invoke has no outcome fields"
        return None
    if op.type in ("fail", "info"):
        if not op.error:
            return f"a {op.type} completion needs an error"
        if op.status is not None or op.height is not None or op.index is not None:
            return f"a {op.type} completion has no status, height or index"
        return None
    # ok
    if op.f == "submit":
        if op.status != "accepted" or op.height is not None or op.index is not None:
            return "an ok submit has status accepted and no height or index"
        return None
    if op.status is None or op.status == "accepted":
        return "an ok status read has status committed, rejected, pending or unknown"
    if op.status in IN_CHAIN:
        if op.height is None or op.height < 1 or op.index is None or op.index < 0:
            return f"status {op.status} needs height >= 1 and index >= 0"
    elif op.height is not None or op.index is not None:
        return f"status {op.status} has no height or index"
    return None


class _Sequence:
    """The sequence rules, fed one op at a time (module docstring)."""

    def __init__(self) -> None:
        self.open: dict[int, Op] = {}  # client -> its outstanding invoke
        self.last_op: dict[int, int] = {}
        self.last_mono: dict[int, int] = {}
        self.windows: dict[int, str] = {}  # nemesis window -> fault, while open
        self.closed_windows: set[int] = set()

    def feed(self, op: Op) -> str | None:
        if (problem := op_problem(op)) is not None:
            return problem
        if op.mono_ns < self.last_mono.get(op.client, 0):
            return f"client {op.client}: monotonic time goes back"
        self.last_mono[op.client] = op.mono_ns
        if op.f == "nemesis":
            return self._nemesis(op)
        if op.type == "invoke":
            if op.client in self.open:
                return (
                    f"client {op.client} invokes op {op.op} with op {self.open[op.client].op} open"
                )
            if op.op <= self.last_op.get(op.client, -1):
                return (
                    f"client {op.client}: op {op.op} does not follow op {self.last_op[op.client]}"
                )
            self.open[op.client] = op
            self.last_op[op.client] = op.op
            return None
        inv = self.open.pop(op.client, None)
        if inv is None or inv.op != op.op:
            return f"client {op.client}: {op.type} of op {op.op}, which is not open"
        if (inv.f, inv.tx, inv.node) != (op.f, op.tx, op.node):
            return f"client {op.client} op {op.op}: the completion names another f, tx or node"
        return None

    def _nemesis(self, op: Op) -> str | None:
        if op.phase == "start":
            if op.op in self.windows or op.op in self.closed_windows:
                return f"fault window {op.op} starts twice"
            self.windows[op.op] = op.fault or ""
            return None
        fault = self.windows.pop(op.op, None)
        if fault is None:
            return f"fault window {op.op} ends without a start"
        if fault != op.fault:
            return f"fault window {op.op} ends with another fault than it started"
        self.closed_windows.add(op.op)
        return None


def check_sequence(ops: Iterable[Op]) -> list[str]:
    """Every problem of a history (schema and sequence), as ``op #k: ...``."""
    seq = _Sequence()
    problems = []
    for k, op in enumerate(ops):
        if (problem := seq.feed(op)) is not None:
            problems.append(f"op #{k}: {problem}")
    return problems


_decoder = msgspec.json.Decoder(Op)
_encoder = msgspec.json.Encoder()


def encode_op(op: Op) -> bytes:
    """One JSON line (without the newline)."""
    return _encoder.encode(op)


def read_history(path: Path) -> list[Op]:
    """Read and check a JSON Lines history; ``HistoryError`` names the first bad line."""
    seq = _Sequence()
    ops: list[Op] = []
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            try:
                op = _decoder.decode(line)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise HistoryError(f"{path}:{n}: {exc}") from None
            if (problem := seq.feed(op)) is not None:
                raise HistoryError(f"{path}:{n}: {problem}")
            ops.append(op)
    return ops


def system_clock() -> tuple[int, int]:
    return time.time_ns(), time.monotonic_ns()


class HistoryWriter:
    """Append-only JSON Lines history, safe to share between client threads.

    ``invoke`` numbers each client's ops and stamps the times; ``complete``
    writes the completion of an invoke; ``nemesis`` writes fault windows. Every
    op is checked (schema and sequence) before it is written: a workload bug
    fails at once instead of leaving an unreadable history. An existing file is
    read (and checked) first, and appended to as its continuation.
    """

    def __init__(self, path: Path, *, clock: Clock = system_clock) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = _Sequence()
        self._next_op: dict[int, int] = {}
        if path.exists():  # go on from what is there (checked): numbers, open ops, times
            for op in read_history(path):
                self._seq.feed(op)
                if op.client != NEMESIS:
                    self._next_op[op.client] = op.op + 1
        self._file: IO[bytes] = path.open("ab")

    def append(self, op: Op) -> Op:
        with self._lock:
            if (problem := self._seq.feed(op)) is not None:
                raise HistoryError(f"{self.path}: refusing {op!r}: {problem}")
            self._file.write(encode_op(op) + b"\n")
            self._file.flush()
        return op

    def invoke(self, client: int, f: Literal["submit", "status"], tx: str, node: int) -> Op:
        with self._lock:
            number = self._next_op.get(client, 0)
            self._next_op[client] = number + 1
        wall, mono = self._clock()
        return self.append(
            Op(
                type="invoke",
                f=f,
                client=client,
                op=number,
                wall_ns=wall,
                mono_ns=mono,
                tx=tx,
                node=node,
            )
        )

    def complete(
        self,
        invoke: Op,
        type: Literal["ok", "fail", "info"],
        *,
        status: Status | None = None,
        height: int | None = None,
        index: int | None = None,
        code: int | None = None,
        error: str | None = None,
    ) -> Op:
        wall, mono = self._clock()
        return self.append(
            Op(
                type=type,
                f=invoke.f,
                client=invoke.client,
                op=invoke.op,
                wall_ns=wall,
                mono_ns=mono,
                tx=invoke.tx,
                node=invoke.node,
                status=status,
                height=height,
                index=index,
                code=code,
                error=error,
            )
        )

    def nemesis(self, window: int, phase: Phase, fault: str) -> Op:
        wall, mono = self._clock()
        return self.append(
            Op(
                type="info",
                f="nemesis",
                client=NEMESIS,
                op=window,
                wall_ns=wall,
                mono_ns=mono,
                fault=fault,
                phase=phase,
            )
        )

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---------------------------------------------------------------- views
@dataclass(frozen=True)
class FaultSpan:
    """A fault window on the history's monotonic clock (``end_ns`` None: never healed)."""

    start_ns: int
    end_ns: int | None
    fault: str

    @property
    def kind(self) -> str:
        return self.fault.split(" ", 1)[0]


def fault_spans(ops: Sequence[Op]) -> list[FaultSpan]:
    """The fault windows of a history, in start order."""
    starts: dict[int, Op] = {}
    ends: dict[int, Op] = {}
    for op in ops:
        if op.f == "nemesis":
            (starts if op.phase == "start" else ends)[op.op] = op
    spans = [
        FaultSpan(s.mono_ns, ends[w].mono_ns if w in ends else None, s.fault or "")
        for w, s in starts.items()
    ]
    return sorted(spans, key=lambda s: s.start_ns)


def completions(ops: Iterable[Op]) -> list[tuple[Op, Op | None]]:
    """Each client invoke with its completion (None: none was recorded), in invoke order."""
    out: list[tuple[Op, Op | None]] = []
    where: dict[tuple[int, int], int] = {}
    for op in ops:
        if op.f == "nemesis":
            continue
        if op.type == "invoke":
            where[(op.client, op.op)] = len(out)
            out.append((op, None))
        elif (k := where.get((op.client, op.op))) is not None:
            out[k] = (out[k][0], op)
    return out
