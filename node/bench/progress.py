"""Progress on stderr, the one helper for it: a rich bar on a terminal, plain lines otherwise.

``TaskBar`` is every progress bar hygeia draws (``hygeia bench`` and ``make
bench``, ``hygeia backup`` and ``restore``, ``hygeia status --wait-synced``):
one rich task on stderr with the columns the caller names. ``Every`` paces the
plain lines written instead when stderr is not a terminal (``is_terminal``).

The load bench reports its progress as ``Snapshot``s to a ``Progress``;
``make_progress`` picks the display. This module imports nothing from the rest
of node/bench: the load run (node/bench/runner.py) depends on it, not the
other way round.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, Protocol


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (a stream without ``isatty`` is not)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Every:
    """``due(now)`` is true at most once per ``seconds`` (the first time: true)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._next = -math.inf

    def due(self, now: float) -> bool:
        if now < self._next:
            return False
        self._next = now + self.seconds
        return True


class TaskBar:
    """One rich progress task on stderr, started when made; ``close()`` (or the end of
    a ``with`` block) stops it.

    ``columns``, left to right: ``"bar"``, ``"download"`` (bytes done of total),
    ``"count"`` (done/total), ``"elapsed"``, ``"remaining"``, or a rich text
    template such as ``"{task.description}"`` or ``"{task.fields[detail]}"``, whose
    fields get their first values from ``fields``. A transient bar is erased
    when it stops."""

    def __init__(
        self,
        description: str,
        columns: Sequence[str],
        *,
        total: float | None = None,
        transient: bool = True,
        refresh_per_second: float = 10,
        **fields: Any,
    ) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        named: dict[str, type[ProgressColumn]] = {
            "bar": BarColumn,
            "download": DownloadColumn,
            "count": MofNCompleteColumn,
            "elapsed": TimeElapsedColumn,
            "remaining": TimeRemainingColumn,
        }
        shown = [named[c]() if c in named else TextColumn(c) for c in columns]
        self._bar = Progress(
            *shown,
            console=Console(stderr=True),
            transient=transient,
            refresh_per_second=refresh_per_second,
        )
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, **fields)

    def update(self, **changes: Any) -> None:
        """Change the task: ``completed``, ``total``, ``description`` or a field."""
        self._bar.update(self._task, **changes)

    def advance(self, amount: float) -> None:
        self._bar.update(self._task, advance=amount)

    def close(self) -> None:
        self._bar.stop()

    def __enter__(self) -> TaskBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ------------------------------------------------------------------ the load bench
@dataclass(frozen=True)
class Snapshot:
    """Where a load run is, sent to its ``Progress`` twice a second."""

    elapsed_s: float
    total_s: float
    phase: str  # "warm-up" | "measure" | "drain"
    submitted: int
    accepted: int
    committed: int
    errors: int
    rate_1s: float  # commits seen in the last second


class Progress(Protocol):
    def update(self, snap: Snapshot) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    def update(self, snap: Snapshot) -> None:
        pass

    def close(self) -> None:
        pass


def _line(s: Snapshot) -> str:
    return (
        f"[{s.phase:>7}] {s.elapsed_s:6.1f}/{s.total_s:.0f} s  submitted {s.submitted}  "
        f"accepted {s.accepted}  committed {s.committed}  errors {s.errors}  "
        f"{s.rate_1s:.0f} tx/s"
    )


class PlainProgress:
    """One line every ``every_s`` seconds of the run (for logs and pipes)."""

    def __init__(self, out: IO[str] | None = None, every_s: float = 5.0) -> None:
        self.out = out or sys.stderr
        self._every = Every(every_s)

    def update(self, snap: Snapshot) -> None:
        if self._every.due(snap.elapsed_s):
            self.out.write(_line(snap) + "\n")
            self.out.flush()

    def close(self) -> None:
        pass


class RichProgress:
    """A live bar over the whole run (warm-up, window, drain) with the counters."""

    def __init__(self) -> None:
        self._bar: TaskBar | None = None

    def update(self, snap: Snapshot) -> None:
        detail = (
            f"sub {snap.submitted} ok {snap.accepted} committed {snap.committed} "
            f"err {snap.errors} | {snap.rate_1s:.0f} tx/s"
        )
        if self._bar is None:
            self._bar = TaskBar(
                "bench",
                ("[bold]{task.fields[phase]:>7}", "bar", "elapsed", "{task.fields[detail]}"),
                total=snap.total_s,
                transient=False,
                refresh_per_second=4,
                phase="",
                detail="",
            )
        self._bar.update(
            completed=min(snap.elapsed_s, snap.total_s), phase=snap.phase, detail=detail
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def make_progress(enabled: bool = True, stream: IO[str] | None = None) -> Progress:
    """A bar on a terminal, plain lines otherwise, nothing if disabled."""
    if not enabled:
        return NullProgress()
    out = stream or sys.stderr
    return RichProgress() if is_terminal(out) else PlainProgress(out)
