"""Backup files: round trip from a LevelDB snapshot, checksum refusal, restore into a home;
the document store's files and key in backups."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.exchange import store as docstore
from node.exchange.store import DocumentKeyError, DocumentStore, Erased
from node.ops import backup as bk
from node.setup import testnet
from node.setup.config import load_config
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


# ------------------------------------------------------------------ the document store
TEXT = '{"resourceType": "Observation", "code": "MARKER-4711"}'
SALT = bytes(range(32))
V1, V2, V3 = "a1" * 32, "b2" * 32, "c3" * 32


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _with_documents(tmp_path: Path) -> tuple[Path, bytes]:
    """A home whose store holds rpt-001 (V1) and rpt-002 (V2, V3) erased; the bytes of
    V2's file as they were before the erasure."""
    home = _home(tmp_path)
    _fill(home / "data")
    store = DocumentStore.open(home)
    store.put(V1, "rpt-001", TEXT, SALT)
    store.put(V2, "rpt-002", TEXT + " ", SALT)
    store.put(V3, "rpt-002", TEXT + "  ", SALT)
    (erased_file,) = (home / "documents").rglob(f"{V2}.doc")
    erased_bytes = erased_file.read_bytes()
    assert store.erase_record("rpt-002") == [V2, V3]
    return home, erased_bytes


def _backup(home: Path, out: Path, *, keys: bool) -> bk.Manifest:
    cfg = load_config(home, env={})
    return bk.backup_home(
        cfg.data_dir,
        cfg.genesis_path,
        out,
        node_key_path=cfg.node_key_path if keys else None,
        documents=bk.documents_of(cfg, include_key=keys),
    )


def test_documents_are_backed_up_and_restored_with_their_key(tmp_path: Path) -> None:
    home, erased_bytes = _with_documents(tmp_path)
    out = tmp_path / "b.hbk"
    seen: list[int] = []
    cfg = load_config(home, env={})
    m = bk.backup_home(
        cfg.data_dir,
        cfg.genesis_path,
        out,
        node_key_path=cfg.node_key_path,
        documents=bk.documents_of(cfg, include_key=True),
        progress=seen.append,
    )
    assert m.format == bk.FORMAT
    assert m.document_files == 2  # V1's file, rpt-002's tombstone
    assert m.document_key is not None and m.document_key["key_hex"]
    assert sum(seen) == m.total_bytes == m.payload_bytes + m.documents_bytes
    assert "document_key" not in m.summary() and m.summary()["includes_document_key"]
    assert _mode(out) == 0o600
    raw = out.read_bytes()
    assert erased_bytes not in raw  # erased before the backup: not in it
    assert b"MARKER-4711" not in raw  # the documents are as they were: encrypted
    assert bk.verify_backup(out) == m

    done = bk.restore_backup(out, tmp_path / "new", restore_node_key=True)
    new = tmp_path / "new"
    assert (done.documents, done.document_key_restored, done.notes) == (2, True, ())
    assert _mode(new / "document_key.json") == 0o600
    for d in [new / "documents", *(p for p in (new / "documents").rglob("*") if p.is_dir())]:
        assert _mode(d) == 0o700, d
    files = [p for p in (new / "documents").rglob("*") if not p.is_dir()]
    assert sorted(p.name for p in files) == sorted([f"{V1}.doc", "erased.box"])
    assert all(_mode(p) == 0o600 for p in files)
    store = DocumentStore.open(new)
    assert store.get(V1) == (TEXT, SALT)
    for vid in (V2, V3):
        with pytest.raises(Erased):
            store.get(vid)
    with ChainStore.open(new / "data") as chain:
        assert chain.database.get(Namespace.STATE, b"k0049") == b"v" * 49


def test_document_key_only_with_the_keys(tmp_path: Path) -> None:
    """Without --include-node-key the documents are backed up but not their key; they
    restore readable only into a home that has the same key file."""
    home, _ = _with_documents(tmp_path)
    out = tmp_path / "b.hbk"
    m = _backup(home, out, keys=False)
    assert m.document_files == 2 and m.document_key is None and m.node_key is None
    key_hex = json.loads((home / "document_key.json").read_text())["key_hex"]
    assert key_hex.encode() not in out.read_bytes()
    assert bk.read_manifest(out).to_json()["includes_document_key"] is False

    done = bk.restore_backup(out, tmp_path / "keyless")
    assert done.documents == 2 and not done.document_key_restored
    assert done.notes and "document_key.json" in done.notes[0]
    with pytest.raises(DocumentKeyError, match="missing"):
        DocumentStore.open(tmp_path / "keyless")

    same = tmp_path / "same"
    same.mkdir(mode=0o700)
    shutil.copy2(home / "document_key.json", same / "document_key.json")
    done = bk.restore_backup(out, same)
    assert done.documents == 2 and done.notes == ()
    assert DocumentStore.open(same).get(V1) == (TEXT, SALT)


def test_a_backup_with_keys_needs_the_document_key(tmp_path: Path) -> None:
    home, _ = _with_documents(tmp_path)
    (home / "document_key.json").unlink()
    with pytest.raises(bk.BackupError, match=r"key file .* is missing"):
        _backup(home, tmp_path / "b.hbk", keys=True)
    assert not (tmp_path / "b.hbk").exists()
    assert _backup(home, tmp_path / "c.hbk", keys=False).document_files == 2


def test_a_home_without_documents(tmp_path: Path) -> None:
    home = _home(tmp_path)
    m = _backup(home, tmp_path / "b.hbk", keys=True)
    assert (m.document_files, m.documents_bytes, m.document_key) == (0, 0, None)
    assert not (home / "documents").exists()  # a backup creates nothing in the home
    done = bk.restore_backup(tmp_path / "b.hbk", tmp_path / "new")
    assert done.documents == 0 and not (tmp_path / "new" / "documents").exists()


def test_restore_never_writes_over_documents_or_a_key(tmp_path: Path) -> None:
    home, _ = _with_documents(tmp_path)
    out = tmp_path / "b.hbk"
    _backup(home, out, keys=True)

    used = tmp_path / "used"
    DocumentStore.open(used).put(V1, "rpt-001", "another text", SALT)
    before = sorted(p.relative_to(used) for p in used.rglob("*"))
    with pytest.raises(bk.BackupError, match="already holds documents"):
        bk.restore_backup(out, used)
    assert sorted(p.relative_to(used) for p in used.rglob("*")) == before  # nothing written

    other_key = tmp_path / "other"
    DocumentStore.open(other_key)  # a key of its own, no documents
    with pytest.raises(bk.BackupError, match="another document key"):
        bk.restore_backup(out, other_key)
    assert not (other_key / "node_key.json").exists()


def test_a_version_erased_while_it_is_copied_is_taken_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home(tmp_path)
    store = DocumentStore.open(home)
    store.put(V1, "rpt-001", TEXT, SALT)
    store.put(V2, "rpt-002", TEXT, SALT)
    (path,) = (home / "documents").rglob(f"{V1}.doc")
    v1_bytes = path.read_bytes()
    opener = bk._open_source_file

    def open_then_erase(item: docstore.BackupFile) -> tuple[int, os.stat_result] | None:
        opened = opener(item)
        if item.path == path:
            store.erase_record("rpt-001")  # unlinked while the backup holds it open
        return opened

    monkeypatch.setattr(bk, "_open_source_file", open_then_erase)
    out = tmp_path / "b.hbk"
    m = _backup(home, out, keys=True)
    assert v1_bytes not in out.read_bytes()
    assert m.document_files == 2  # rpt-001's tombstone (written meanwhile), V2
    monkeypatch.undo()
    bk.restore_backup(out, tmp_path / "new")
    restored = DocumentStore.open(tmp_path / "new")
    with pytest.raises(Erased):
        restored.get(V1)
    assert restored.get(V2) == (TEXT, SALT)


def test_damaged_documents_section_is_refused(tmp_path: Path) -> None:
    home, _ = _with_documents(tmp_path)
    out = tmp_path / "b.hbk"
    m = _backup(home, out, keys=True)
    raw = bytearray(out.read_bytes())
    raw[len(bk.MAGIC) + m.payload_bytes + m.documents_bytes - 1] ^= 0xFF  # in the tombstone
    out.write_bytes(bytes(raw))
    with pytest.raises(bk.BackupError, match="documents section's SHA-256"):
        bk.restore_backup(out, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_name_the_store_never_writes_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = _with_documents(tmp_path)
    real = docstore.backup_files

    def hostile(documents: str | os.PathLike[str]) -> Iterator[docstore.BackupFile]:
        for item in real(documents):
            yield dataclasses.replace(item, name="records/../../../escaped.doc")

    monkeypatch.setattr(docstore, "backup_files", hostile)
    out = tmp_path / "b.hbk"
    _backup(home, out, keys=True)
    with pytest.raises(bk.BackupError, match="not a name the document store writes"):
        bk.restore_backup(out, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    assert not (tmp_path / "escaped.doc").exists()


def test_a_format_1_backup_still_restores(tmp_path: Path) -> None:
    home = _home(tmp_path)
    _fill(home / "data")
    out = tmp_path / "b.hbk"
    m = bk.backup_home(home / "data", home / "genesis.json", out)
    doc = m.to_json()
    doc["format"] = bk.FORMAT_V1
    for field in ("document_files", "documents_bytes", "documents_sha256"):
        del doc[field]
    del doc["includes_document_key"]
    manifest = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    payload = out.read_bytes()[: len(bk.MAGIC) + m.payload_bytes]
    out.write_bytes(payload + manifest + struct.pack(">I", len(manifest)) + bk.END)
    old = bk.verify_backup(out)
    assert old.format == bk.FORMAT_V1 and old.document_files == 0
    assert "document_files" not in old.to_json()
    done = bk.restore_backup(out, tmp_path / "new")
    assert done.documents == 0
