"""Functional: ``hygeia backup`` of a running and of a stopped validator, ``hygeia restore``
into a new home that replaces it, starts, catches up and keeps committing.

The replacement follows docs/backup.md ("To replace a validator, stop the old
node for good, back up with ``--include-node-key``, restore with
``--restore-node-key``"): the restored home runs with node 3's key, so the old
home is never started again (``TestNetwork.move_home`` points node 3 at the new
home) and at no moment do two processes hold that key.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from node.ops import backup as bk
from storage.chain import ChainStore
from tests.functional.framework import TIMEOUT, TestNetwork, run_hygeia


def hy(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """``hygeia ARGS`` (see ``run_hygeia``)."""
    return run_hygeia(*args, ok=ok, timeout=TIMEOUT)


def payload_sha256(path: Path, manifest: bk.Manifest) -> str:
    """SHA-256 of the records, computed here from the file (not by node.ops.backup)."""
    data = path.read_bytes()
    return hashlib.sha256(data[len(bk.MAGIC) : len(bk.MAGIC) + manifest.payload_bytes]).hexdigest()


def node_id(home: Path) -> str:
    return str(json.loads((home / "node_key.json").read_text())["public_key_hex"])


def tip_of(home: Path) -> int:
    with ChainStore.open(home / "data") as store:
        return store.tip_height()


def test_backup_running_and_stopped_validator_restore_catches_up(tmp_path: Path) -> None:
    """4 validators commit; node 3 is backed up while it runs (through its admin API) with
    its key; more blocks are committed; a corrupted copy is refused, and so is a restore over
    a live validator's home (which is left untouched); node 3 is stopped for
    good and the backup restored with its key into a new home, which starts in its place,
    catches up with block sync and keeps committing, every block hash equal on every node.
    Then the restored node is stopped, backed up directly (database opened by the command),
    restored once more and started again: it catches up the same way."""
    settings = {3: {"admin.enable_mutations": "true"}}  # POST /admin/backup on node 3
    with TestNetwork(4, name="backup", settings=settings) as net:
        n3 = net.nodes[3]
        key3 = node_id(n3.home)
        net.wait_committed(net.submit([0, 1, 2, 3], 24))

        # ---- a backup of node 3 while it runs: a snapshot taken by the node
        out = tmp_path / "running.hbk"
        before = net.height(3)
        r = hy("backup", "--home", n3.home, "--out", out, "--include-node-key")
        after = net.height(3)
        assert "(snapshot taken by the running node)" in r.stdout, r.stdout
        manifest = bk.read_manifest(out)
        assert before <= manifest.height <= after, (before, manifest.height, after)
        assert manifest.height >= 1 and manifest.chain_id == net.chain_id
        assert payload_sha256(out, manifest) == manifest.payload_sha256
        assert f"height {manifest.height}," in r.stdout
        assert f"sha256 {manifest.payload_sha256}" in r.stdout
        assert manifest.node_key is not None and manifest.node_key["public_key_hex"] == key3
        assert out.stat().st_mode & 0o077 == 0, "a backup holding a node key must be 0600"
        assert "keep it secret" in r.stderr
        assert not any((n3.home / "backups").iterdir()), "the node's copy was not moved"
        assert bk.verify_backup(out) == manifest

        # the chain grows past the backup
        net.wait_committed(net.submit([0, 1, 2, 3], 24))
        assert net.height(0) > manifest.height
        net.log(f"backup of node3 at height {manifest.height}; chain now at {net.height(0)}")

        # ---- a damaged copy is refused, nothing is created
        bad = tmp_path / "damaged.hbk"
        raw = bytearray(out.read_bytes())
        raw[len(bk.MAGIC) + manifest.payload_bytes // 2] ^= 0x40
        bad.write_bytes(bytes(raw))
        refused = hy("restore", bad, "--home", tmp_path / "never", ok=False)
        assert refused.returncode == 1
        assert refused.stderr.startswith("Error: ") and refused.stderr.count("\n") == 1
        assert "checksum mismatch" in refused.stderr and str(bad) in refused.stderr
        assert not (tmp_path / "never").exists()

        # ---- restoring over a live validator's home is refused, and changes nothing there
        n0 = net.nodes[0]
        kept = {f: (n0.home / f).read_bytes() for f in ("node_key.json", "admin_token")}
        refused = hy("restore", out, "--home", n0.home, "--restore-node-key", ok=False)
        assert refused.returncode == 1
        assert "already has a node key" in refused.stderr, refused.stderr
        assert {f: (n0.home / f).read_bytes() for f in kept} == kept

        # ---- node 3 stops for good; the backup, with its key, takes its place
        net.stop(3)
        old_home = n3.home
        restored = tmp_path / "node3-restored"
        r = hy("restore", out, "--home", restored, "--restore-node-key")
        assert f"node id {key3}" in r.stdout, r.stdout
        assert tip_of(restored) == manifest.height
        net.move_home(3, restored)
        assert n3.home == restored != old_home
        net.restart(3)
        assert net.status(3)["node_id"] == key3
        top = max(net.heights([0, 1, 2]).values())
        net.wait_for_height(top, [3])
        net.log(f"restored node3 caught up from {manifest.height} to {top}")
        # it takes part again: txs submitted to it (and to the others) commit everywhere
        net.wait_committed(net.submit([3, 0, 1, 2], 24))
        height = net.wait_same_height(at_least=top + 1)
        assert net.assert_same_chain() == height

        # ---- a backup of the stopped node, opened directly by the command
        net.stop(3)
        stopped_at = tip_of(restored)
        out2 = tmp_path / "stopped.hbk"
        r = hy("backup", "--home", restored, "--out", out2, "--include-node-key")
        assert "(database opened directly (node stopped))" in r.stdout, r.stdout
        manifest2 = bk.read_manifest(out2)
        assert out2.stat().st_mode & 0o077 == 0
        assert manifest2.height == stopped_at >= height
        assert payload_sha256(out2, manifest2) == manifest2.payload_sha256
        again = tmp_path / "node3-restored-again"
        hy("restore", out2, "--home", again, "--restore-node-key")
        net.move_home(3, again)
        net.restart(3)
        net.wait_committed(net.submit([0, 1, 2, 3], 24))
        final = net.wait_same_height(at_least=height + 1)
        assert net.assert_same_chain() == final

        # no node ever saw two different votes from one validator
        for node in net.nodes:
            assert not node.log_contains("equivocation evidence"), node.name
        for i in range(4):
            consensus = net.admin_get(i, "/consensus")
            assert consensus["validator"] and consensus["evidence"] == 0, (i, consensus)
