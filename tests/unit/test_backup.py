"""Backup files: round trip from a LevelDB snapshot, checksum refusal, restore into a home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.ops import backup as bk
from node.setup import testnet
from storage.chain import ChainStore
from storage.layout import Namespace


def _home(tmp_path: Path) -> Path:
    testnet.testnet_init(tmp_path / "net", validators=1, base_port=1000, chain_id="hygeia-bk")
    return tmp_path / "net" / "node0"


def _fill(data: Path, n: int = 50) -> None:
    with ChainStore.open(data) as store:
        store.database.write(
            [(Namespace.STATE, f"k{i:04d}".encode(), b"v" * i) for i in range(n)], sync=True
        )


def test_round_trip_and_restore(tmp_path: Path) -> None:
    home = _home(tmp_path)
    _fill(home / "data")
    out = tmp_path / "b.hbk"
    seen: list[int] = []
    m = bk.backup_home(home / "data", home / "genesis.json", out, progress=seen.append)
    assert m.chain_id == "hygeia-bk" and m.height == 0 and m.key_count == 51
    assert sum(seen) == m.payload_bytes
    assert bk.verify_backup(out) == m
    assert "node_key" not in bk.read_manifest(out).to_json()
    done = bk.restore_backup(out, tmp_path / "new")
    assert not done.node_key_restored
    assert (tmp_path / "new" / "genesis.json").read_bytes() == (home / "genesis.json").read_bytes()
    with ChainStore.open(tmp_path / "new" / "data") as store:
        assert store.database.get(Namespace.STATE, b"k0049") == b"v" * 49


def test_bad_checksum_is_refused(tmp_path: Path) -> None:
    home = _home(tmp_path)
    _fill(home / "data")
    out = tmp_path / "b.hbk"
    bk.backup_home(home / "data", home / "genesis.json", out)
    raw = bytearray(out.read_bytes())
    raw[len(bk.MAGIC) + bk.read_manifest(out).payload_bytes - 1] ^= 0xFF  # in a value
    out.write_bytes(bytes(raw))
    with pytest.raises(bk.BackupError, match="checksum mismatch"):
        bk.restore_backup(out, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_truncated_and_foreign_files(tmp_path: Path) -> None:
    home = _home(tmp_path)
    out = tmp_path / "b.hbk"
    bk.backup_home(home / "data", home / "genesis.json", out)
    out.write_bytes(out.read_bytes()[:-3])
    with pytest.raises(bk.BackupError, match="truncated"):
        bk.read_manifest(out)
    other = tmp_path / "x"
    other.write_text(json.dumps({}))
    with pytest.raises(bk.BackupError, match="not a Hygeia backup"):
        bk.read_manifest(other)


def test_node_key_only_when_asked(tmp_path: Path) -> None:
    home = _home(tmp_path)
    out = tmp_path / "b.hbk"
    bk.backup_home(home / "data", home / "genesis.json", out, node_key_path=home / "node_key.json")
    assert bk.read_manifest(out).node_key is not None
    assert out.stat().st_mode & 0o077 == 0
    done = bk.restore_backup(out, tmp_path / "new", restore_node_key=True)
    assert (tmp_path / "new" / "node_key.json").stat().st_mode & 0o077 == 0
    assert done.node_key_restored
    assert json.loads((tmp_path / "new" / "node_key.json").read_text()) == json.loads(
        (home / "node_key.json").read_text()
    )
