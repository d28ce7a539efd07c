"""Progress of a load run: a rich progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import IO, Any

from node.bench.load import NullProgress, Progress, Snapshot


def _line(s: Snapshot) -> str:
    return (
        f"[{s.phase:>7}] {s.elapsed_s:6.1f}/{s.total_s:.0f} s  submitted {s.submitted}  "
        f"accepted {s.accepted}  committed {s.committed}  errors {s.errors}  "
        f"{s.rate_1s:.0f} tx/s"
    )


class PlainProgress:
    """One line every ``every_s`` seconds (for logs and pipes)."""

    def __init__(self, out: IO[str] | None = None, every_s: float = 5.0) -> None:
        self.out = out or sys.stderr
        self.every_s = every_s
        self._next = 0.0

    def update(self, snap: Snapshot) -> None:
        if snap.elapsed_s >= self._next:
            self._next = snap.elapsed_s + self.every_s
            self.out.write(_line(snap) + "\n")
            self.out.flush()

    def close(self) -> None:
        pass


class RichProgress:
    """A live bar over the whole run (warm-up, window, drain) with the counters."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("[bold]{task.fields[phase]:>7}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            transient=False,
            refresh_per_second=4,
        )
        self._task: Any = None
        self._bar.start()

    def update(self, snap: Snapshot) -> None:
        detail = (
            f"sub {snap.submitted} ok {snap.accepted} committed {snap.committed} "
            f"err {snap.errors} | {snap.rate_1s:.0f} tx/s"
        )
        if self._task is None:
            self._task = self._bar.add_task("bench", total=snap.total_s, phase="", detail="")
        self._bar.update(
            self._task, completed=min(snap.elapsed_s, snap.total_s), phase=snap.phase, detail=detail
        )

    def close(self) -> None:
        self._bar.stop()


def make_progress(enabled: bool = True, stream: IO[str] | None = None) -> Progress:
    """Rich on a TTY (when rich is importable), plain lines otherwise, nothing if disabled."""
    if not enabled:
        return NullProgress()
    out = stream or sys.stderr
    if out.isatty():
        try:
            return RichProgress()
        except ImportError:  # pragma: no cover - rich is normally present
            pass
    return PlainProgress(out)
