"""Why ``GET /health`` answers 503: ``node.api.health.health_reasons`` and its config key.

Each reason of the issue (no peers, syncing, height stalled, disk low), the
consensus driver having stopped and a failed storage write (the reason comes
from ``node.engine.storage_fault``, tests/unit/test_storage_fault.py) is
triggered on its own, at its threshold, and all at once; ``Node.health`` only
gathers these inputs from the running node
(tests/integration/test_metrics_health.py checks that over HTTP).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node.api.health import STALL_HEALTH_MS, health_reasons
from node.setup.config import ConfigError, load_config

MIB = 1 << 20


def reasons(**changes: Any) -> list[str]:
    """The reasons of a healthy validator of four, with ``changes`` applied."""
    inputs: dict[str, Any] = {
        "failed": None,
        "validators": 4,
        "peers": 3,
        "syncing": False,
        "pending_txs": 0,
        "since_commit_ms": 0,
        "disk_free_bytes": 10_000 * MIB,
        "min_free_disk_mib": 512,
        "storage": None,
    }
    inputs.update(changes)
    return health_reasons(**inputs)


def test_healthy() -> None:
    assert reasons() == []
    assert reasons(peers=1) == []  # one link is enough not to be isolated


def test_no_peers() -> None:
    assert reasons(peers=0) == ["no peers"]
    assert reasons(validators=1, peers=0) == []  # a one-validator chain has nobody to link to


def test_syncing() -> None:
    assert reasons(syncing=True) == ["syncing"]


def test_height_stalled_only_while_transactions_wait() -> None:
    assert reasons(pending_txs=5, since_commit_ms=STALL_HEALTH_MS) == []
    assert reasons(pending_txs=5, since_commit_ms=STALL_HEALTH_MS + 12_000) == [
        f"height stalled for {STALL_HEALTH_MS // 1000 + 12} s"
    ]
    # an idle chain (nothing to commit) is healthy however long since the last block
    assert reasons(pending_txs=0, since_commit_ms=10 * STALL_HEALTH_MS) == []


def test_disk_low_at_the_configured_threshold() -> None:
    assert reasons(disk_free_bytes=512 * MIB) == []
    assert reasons(disk_free_bytes=512 * MIB - 1) == ["disk low: 511 MiB free"]
    assert reasons(disk_free_bytes=2000 * MIB, min_free_disk_mib=4096) == [
        "disk low: 2000 MiB free"
    ]
    assert reasons(disk_free_bytes=0, min_free_disk_mib=0) == []  # 0: no check


def test_consensus_stopped() -> None:
    assert reasons(failed=OSError("LevelDB write failed")) == [
        "consensus stopped: LevelDB write failed"
    ]


def test_storage_write_failed_is_reported_as_given() -> None:
    line = "storage write failed (disk full) 3 s ago: ..."
    assert reasons(storage=line) == [line]
    # a full disk usually trips "disk low" too
    assert reasons(storage=line, disk_free_bytes=0) == [line, "disk low: 0 MiB free"]


def test_every_reason_at_once() -> None:
    got = reasons(
        failed=RuntimeError("bug"),
        storage="storage write failed (I/O error) ...",
        peers=0,
        syncing=True,
        pending_txs=1,
        since_commit_ms=STALL_HEALTH_MS + 1000,
        disk_free_bytes=MIB,
    )
    assert got == [
        "consensus stopped: bug",
        "storage write failed (I/O error) ...",
        "no peers",
        "syncing",
        f"height stalled for {STALL_HEALTH_MS // 1000 + 1} s",
        "disk low: 1 MiB free",
    ]


def test_disk_threshold_config_key(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("")
    assert load_config(tmp_path, env={}).admin.health_min_free_disk_mib == 512
    env = {"HYGEIA_ADMIN_HEALTH_MIN_FREE_DISK_MIB": "0"}
    assert load_config(tmp_path, env=env).admin.health_min_free_disk_mib == 0
    (tmp_path / "config.toml").write_text("[admin]\nhealth_min_free_disk_mib = -1\n")
    with pytest.raises(ConfigError, match=r"admin.health_min_free_disk_mib.*0 or a positive"):
        load_config(tmp_path, env={})
