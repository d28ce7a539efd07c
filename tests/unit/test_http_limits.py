"""The pieces of node/api/listener.py that need no socket: the connection gate's
counting, the repeated-log-line filter, the file-handle check."""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from node.api.listener import (
    LEVELDB_OPEN_FILES,
    ConnectionGate,
    ListenerLimits,
    RepeatFilter,
    check_open_files,
    open_files_needed,
)
from node.setup.config import ConfigError, default_config, load_config


def test_gate_counts_per_listener_and_per_source() -> None:
    gate = ConnectionGate("api", ListenerLimits(max_connections=3, max_connections_per_source=2))
    assert gate.admit("a") is None and gate.admit("a") is None
    assert gate.admit("a") == "source"
    assert gate.admit("b") is None
    assert gate.admit("c") == "listener"
    gate.release("a")
    assert gate.admit("c") is None
    assert gate.open == 3 and gate.per_source == {"a": 1, "b": 1, "c": 1}
    assert gate.refused == {"listener": 1, "source": 1}
    for source in ("a", "b", "c"):
        gate.release(source)
    assert gate.open == 0 and gate.per_source == {}  # nothing kept for gone sources


def _record(msg: object, name: str = "asyncio", level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_repeat_filter_lets_a_burst_through_then_counts_what_it_drops() -> None:
    now = [0.0]
    f = RepeatFilter(burst=3, window_s=10.0, clock=lambda: now[0])
    accept = "socket.accept() out of system resource\nsocket: <fd=7>"
    passed = [f.filter(_record(accept)) for _ in range(1000)]
    assert passed == [True] * 3 + [False] * 997
    assert f.filter(_record("another message"))  # another kind has its own budget
    now[0] = 10.0
    summary = _record(accept)
    assert f.filter(summary)
    assert "[997 similar lines suppressed]" in summary.getMessage()
    event = _record({"event": "request failed", "path": "/x"}, name="hygeia.api")
    assert all(f.filter(_record({"event": "request failed"}, "hygeia.api")) for _ in range(3))
    assert not f.filter(event)
    now[0] = 20.0
    later = _record({"event": "request failed", "path": "/y"}, name="hygeia.api")
    assert f.filter(later) and later.msg == {
        "event": "request failed",
        "path": "/y",
        "suppressed": 1,
    }


def test_repeat_filter_forgets_the_oldest_kinds() -> None:
    f = RepeatFilter(burst=1, window_s=60.0, max_kinds=2, clock=lambda: 0.0)
    for msg in ("a", "b", "c"):
        assert f.filter(_record(msg))
    assert f.filter(_record("a"))  # forgotten, so allowed again
    assert not f.filter(_record("c"))


def _limits(
    soft: int, hard: int
) -> tuple[
    list[tuple[int, int]], Callable[[int], tuple[int, int]], Callable[[int, tuple[int, int]], None]
]:
    state = {"now": (soft, hard)}
    calls: list[tuple[int, int]] = []

    def get(which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return state["now"]

    def set_(which: int, value: tuple[int, int]) -> None:
        if value[0] > value[1]:
            raise ValueError("not allowed")
        calls.append(value)
        state["now"] = value

    return calls, get, set_


def test_open_files_raised_when_the_hard_limit_allows() -> None:
    calls, get, set_ = _limits(256, 65536)
    with capture_logs() as logs:
        assert check_open_files(2000, getrlimit=get, setrlimit=set_) == 2000
    assert calls == [(2000, 65536)]
    assert [e["event"] for e in logs] == ["file-handle limit raised"]


def test_open_files_warns_with_the_number_needed() -> None:
    _, get, set_ = _limits(256, 1024)
    with capture_logs() as logs:
        assert check_open_files(2000, getrlimit=get, setrlimit=set_) == 1024
    warning = next(e for e in logs if e["log_level"] == "warning")
    assert warning["needed"] == 2000 and warning["limit"] == 1024
    assert "ulimit -n 2000" in warning["hint"]


def test_open_files_enough_or_unlimited_is_left_alone() -> None:
    for soft in (4096, resource.RLIM_INFINITY):
        calls, get, set_ = _limits(soft, resource.RLIM_INFINITY)
        with capture_logs() as logs:
            check_open_files(2000, getrlimit=get, setrlimit=set_)
        assert calls == [] and logs == []


def test_open_files_needed_counts_the_listeners_and_leveldb(tmp_path: Path) -> None:
    cfg = default_config(tmp_path)
    need = open_files_needed(cfg, validators=4)
    assert need >= LEVELDB_OPEN_FILES + cfg.api.max_connections + cfg.admin.max_connections


def test_per_source_cap_above_the_listener_cap_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        "[api]\nmax_connections = 10\nmax_connections_per_source = 11\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="max_connections_per_source"):
        load_config(tmp_path, env={})
