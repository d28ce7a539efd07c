"""What ``/proc`` says about the node processes and the machine (Linux; elsewhere: None).

A node started by ``hygeia testnet start`` runs as ``python -m node.cli start
--home <home>``; ``find_node_pid`` finds it by that argument pair. Peak RSS is
the kernel's high-water mark ``VmHWM`` (over the process's whole life, so a
fresh testnet gives the peak of the run), CPU time is ``utime + stime``.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

PROC = Path("/proc")


def _cmdline(pid_dir: Path) -> list[str] | None:
    try:
        raw = (pid_dir / "cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _same_path(a: str, b: str) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:  # pragma: no cover - realpath does not raise on Linux
        return a == b


def cmdline_has_home(args: list[str], home: str) -> bool:
    """True when ``args`` is a node start with ``--home home`` (or ``--home=home``)."""
    if "start" not in args:
        return False
    for i, arg in enumerate(args):
        if arg == "--home" and i + 1 < len(args) and _same_path(args[i + 1], home):
            return True
        if arg.startswith("--home=") and _same_path(arg[len("--home=") :], home):
            return True
    return False


def find_node_pid(home: str, *, proc: Path = PROC) -> int | None:
    """The pid of the process running the node of ``home``, or None (none, or not Linux)."""
    if not proc.is_dir():
        return None
    me = os.getpid()
    found: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        args = _cmdline(entry)
        if args and cmdline_has_home(args, home):
            found.append(int(entry.name))
    # the node itself, not a wrapper that happens to repeat the arguments: the newest pid
    return max(found) if found else None


def _status_kb(pid: int, field: str, proc: Path = PROC) -> int | None:
    try:
        text = (proc / str(pid) / "status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return parse_status_kb(text, field)


def parse_status_kb(status_text: str, field: str) -> int | None:
    """The value in kB of ``field`` (``VmHWM``, ``VmRSS``) in a ``/proc/<pid>/status`` text."""
    for line in status_text.splitlines():
        if line.startswith(field + ":"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1])
    return None


def peak_rss_mb(pid: int | None) -> float | None:
    """``VmHWM`` of ``pid`` in MiB, or None."""
    if pid is None:
        return None
    kb = _status_kb(pid, "VmHWM")
    return None if kb is None else round(kb / 1024, 1)


def rss_mb(pid: int | None) -> float | None:
    """``VmRSS`` of ``pid`` in MiB, or None."""
    if pid is None:
        return None
    kb = _status_kb(pid, "VmRSS")
    return None if kb is None else round(kb / 1024, 1)


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds ``pid`` has used, or None."""
    if pid is None:
        return None
    try:
        text = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return parse_stat_cpu(text, os.sysconf("SC_CLK_TCK"))


def parse_stat_cpu(stat_text: str, ticks_per_s: int) -> float | None:
    """utime + stime (fields 14 and 15) of a ``/proc/<pid>/stat`` line, in seconds."""
    # the command name (field 2) is in parentheses and may contain spaces
    end = stat_text.rfind(")")
    if end < 0:
        return None
    fields = stat_text[end + 2 :].split()
    try:
        return (int(fields[11]) + int(fields[12])) / ticks_per_s  # fields 14, 15 overall
    except (IndexError, ValueError):
        return None


def parse_proc_stat(stat_text: str) -> tuple[int, int] | None:
    """``(busy, total)`` jiffies over all CPUs from ``/proc/stat``'s first line."""
    for line in stat_text.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:] if v.isdigit()]
            if len(values) < 5:
                return None
            idle = values[3] + values[4]  # idle + iowait
            total = sum(values[:8])  # guest time is already counted in user
            return total - idle, total
    return None


def machine_cpu() -> tuple[int, int] | None:
    """``(busy, total)`` jiffies of the whole machine so far, or None."""
    try:
        return parse_proc_stat((PROC / "stat").read_text(encoding="ascii", errors="replace"))
    except OSError:
        return None


def busy_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Machine CPU use between two ``machine_cpu`` readings, in percent of one core
    (so up to 100 x cores), or None."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    cores = os.cpu_count() or 1
    return round(100 * cores * (after[0] - before[0]) / (after[1] - before[1]), 1)


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in (PROC / "cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _mem_total_mb() -> int | None:
    try:
        text = (PROC / "meminfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    kb = parse_status_kb(text, "MemTotal")
    return None if kb is None else kb // 1024


def machine_info() -> dict[str, Any]:
    """CPU count and model, memory, Python and OS: what a benchmark figure depends on."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_total_mb": _mem_total_mb(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
    }
