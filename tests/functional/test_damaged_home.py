"""Functional: a stopped node's home damaged on disk, then ``hygeia start``: the node
refuses to start with one ``Error: ...`` line and exit code 1, and nothing in the data
directory is deleted or rewritten. Once the damage is undone the node starts again at
its old height.

Damage, one at a time (issue 11): ``data/CURRENT`` missing (LevelDB used to make a
new empty database over the old tables), another chain's ``genesis.json`` and the
same chain id with one consensus parameter changed (also refused by ``hygeia config
check``), the latest block corrupt and missing, a world-readable node key.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import plyvel

from storage.layout import META_HEIGHT, Namespace, decode_u64, encode_u64
from tests.functional.framework import TIMEOUT, TestNetwork, run_hygeia


def hy(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``hygeia ARGS``, any exit status; a command that runs on (a node that started)
    fails the test."""
    return run_hygeia(*args, ok=False, timeout=TIMEOUT)


def tree_digest(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under ``directory``, by relative path."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def refused(home: Path, *words: str, command: tuple[str, ...] = ("start",)) -> str:
    """Run ``hygeia COMMAND --home HOME``; check it failed with one clear line holding
    ``words``, and return that line."""
    proc = hy(*command, "--home", home)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, (proc.returncode, out)
    assert "Traceback" not in out, out
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def test_damaged_home_is_refused_with_one_line_and_left_untouched(tmp_path: Path) -> None:
    with TestNetwork(1, name="damaged") as net:
        n0 = net.nodes[0]
        home, data = n0.home, n0.home / "data"
        for _ in range(2):  # two rounds: the latest block is not the only one
            net.wait_committed(net.submit([0], 6))
        height = net.height(0)
        assert height >= 2
        net.stop(0)

        # ---- data/CURRENT missing: refused before LevelDB opens anything
        current = data / "CURRENT"
        aside = tmp_path / "CURRENT"
        os.replace(current, aside)
        before = tree_digest(data)
        line = refused(home, "CURRENT", str(data), "backup")
        net.log(f"missing CURRENT: {line}")
        assert tree_digest(data) == before, "the data directory was changed"
        refused(home, "CURRENT", command=("config", "check"))
        assert tree_digest(data) == before, "the data directory was changed"
        os.replace(aside, current)

        # ---- another genesis: another chain, or one consensus knob changed
        genesis_path = home / "genesis.json"
        original = genesis_path.read_bytes()
        doc = json.loads(original)
        for label, change in (
            ("another chain", {"chain_id": "hygeia-other"}),
            ("a changed knob", {"consensus": {**doc["consensus"], "batch_timeout_ms": 7}}),
        ):
            genesis_path.write_text(json.dumps({**doc, **change}, indent=2), encoding="utf-8")
            before = tree_digest(data)
            line = refused(home, "genesis", str(genesis_path))
            net.log(f"{label}: {line}")
            refused(home, "genesis", str(genesis_path), command=("config", "check"))
            assert tree_digest(data) == before, "the data directory was changed"
        genesis_path.write_bytes(original)

        # ---- the latest block corrupt, then missing
        db = plyvel.DB(str(data))
        tip_key = Namespace.BLOCKS.value + encode_u64(height)
        raw_tip = db.get(Namespace.META.value + META_HEIGHT)
        assert raw_tip is not None and decode_u64(raw_tip, "tip") == height
        block = db.get(tip_key)
        assert block is not None
        db.put(tip_key, b"\x93not a block", sync=True)
        db.close()
        line = refused(home, "block", str(height))
        net.log(f"corrupt latest block: {line}")
        db = plyvel.DB(str(data))
        db.delete(tip_key, sync=True)
        db.close()
        line = refused(home, "block", str(height), "missing")
        net.log(f"missing latest block: {line}")
        db = plyvel.DB(str(data))
        db.put(tip_key, block, sync=True)
        db.close()

        # ---- a node key other users may read
        key = home / "node_key.json"
        key.chmod(0o644)
        line = refused(home, str(key), "0644", "chmod 600")
        net.log(f"world-readable key: {line}")
        key.chmod(0o600)

        # ---- everything undone: the node starts where it was and commits on
        net.restart(0)
        assert net.height(0) >= height
        net.wait_committed(net.submit([0], 4))
