"""node/exchange/store.py: documents encrypted at rest, kept across restarts, erasable per
record with the fact kept, bounded, and a hostile disk met with clear errors."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from node.exchange.store import (
    KEY_FILE,
    MAX_TEXT_BYTES,
    CorruptDocument,
    DocumentKeyError,
    DocumentStore,
    DocumentStoreError,
    Erased,
    TooLarge,
    UnknownDocument,
    VersionConflict,
    backup_file_limit,
    backup_files,
    is_key_document,
    read_key_document,
    restore_file,
    write_key_document,
)

TEXT = '{"resourceType": "Observation", "status": "final", "code": "MARKER-4711"}'
SALT = bytes(range(32))
V1, V2, V3 = "a1" * 32, "b2" * 32, "c3" * 32


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def doc_files(home: Path) -> list[Path]:
    return sorted((home / "documents").rglob("*.doc"))


def test_open_creates_private_directory_and_key(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    assert store.directory == tmp_path / "documents"
    assert mode(tmp_path / "documents") == 0o700
    assert store.key_path == tmp_path / KEY_FILE
    assert mode(store.key_path) == 0o600
    doc = json.loads(store.key_path.read_text())
    assert doc["type"] == "hygeia-document-key" and len(doc["key_hex"]) == 64


def test_put_get_and_restart(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    assert store.put(V1, "rpt-001", TEXT, SALT) is True
    assert store.get(V1) == (TEXT, SALT)
    assert store.status(V1) == "stored"
    reopened = DocumentStore.open(tmp_path)
    assert reopened.get(V1) == (TEXT, SALT)
    (path,) = doc_files(tmp_path)
    assert mode(path) == 0o600
    assert path.name == f"{V1}.doc"


def test_text_and_salt_are_encrypted_at_rest(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    raw = b"".join(p.read_bytes() for p in (tmp_path / "documents").rglob("*") if p.is_file())
    assert b"MARKER-4711" not in raw
    assert SALT not in raw and SALT.hex().encode() not in raw
    assert b"rpt-001" not in raw
    assert all("rpt-001" not in str(p) for p in (tmp_path / "documents").rglob("*"))


def test_exact_text_survives(tmp_path: Path) -> None:
    """Whitespace, key order, number spelling and non-ASCII come back byte for byte."""
    text = '{ "value":1.50,\n\t"resourceType" : "Observation", "note": "Größe 😀" }\n'
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", text, SALT)
    assert DocumentStore.open(tmp_path).get(V1) == (text, SALT)


def test_put_is_idempotent_and_never_overwrites(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    assert store.put(V1, "rpt-001", TEXT, SALT) is True
    before = doc_files(tmp_path)[0].read_bytes()
    assert store.put(V1, "rpt-001", TEXT, SALT) is False  # same content: nothing written
    with pytest.raises(VersionConflict):
        store.put(V1, "rpt-001", TEXT.replace("final", "amended"), SALT)
    with pytest.raises(VersionConflict):
        store.put(V1, "rpt-001", TEXT, bytes(32))
    with pytest.raises(VersionConflict):
        store.put(V1, "rpt-002", TEXT, SALT)
    assert doc_files(tmp_path)[0].read_bytes() == before
    # and after a restart too
    with pytest.raises(VersionConflict):
        DocumentStore.open(tmp_path).put(V1, "rpt-001", "{}", SALT)
    assert DocumentStore.open(tmp_path).put(V1, "rpt-001", TEXT, SALT) is False


def test_unknown_version(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    with pytest.raises(UnknownDocument):
        store.get(V1)
    with pytest.raises(UnknownDocument):
        store.get("../../etc/passwd")
    assert store.status(V1) == "unknown"


@pytest.mark.parametrize(
    ("version_id", "record_id", "salt"),
    [
        ("A1" * 32, "rpt-001", SALT),  # upper-case hex
        ("a1" * 31, "rpt-001", SALT),
        (V1, "", SALT),
        (V1, "../rpt", SALT),
        (V1, "r" * 65, SALT),
        (V1, "rpt-001", b"short"),
    ],
)
def test_put_refuses_malformed_arguments(
    tmp_path: Path, version_id: str, record_id: str, salt: bytes
) -> None:
    with pytest.raises(ValueError):
        DocumentStore.open(tmp_path).put(version_id, record_id, TEXT, salt)
    assert doc_files(tmp_path) == []


def test_lone_surrogate_text_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        DocumentStore.open(tmp_path).put(V1, "rpt-001", '"\ud800"', SALT)


def test_too_large(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", "a" * MAX_TEXT_BYTES, SALT)  # exactly the bound: fine
    assert store.get(V1)[0] == "a" * MAX_TEXT_BYTES
    with pytest.raises(TooLarge) as info:
        store.put(V2, "rpt-001", "a" * (MAX_TEXT_BYTES + 1), SALT)
    assert info.value.code == "too-large"
    with pytest.raises(TooLarge):  # the bound is in UTF-8 bytes, not characters
        store.put(V2, "rpt-001", "é" * (MAX_TEXT_BYTES // 2 + 1), SALT)
    assert store.status(V2) == "unknown"


# ------------------------------------------------------------------ erasure
def test_erase_record_erases_every_version_and_keeps_the_fact(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    store.put(V2, "rpt-001", TEXT.replace("final", "amended"), SALT)
    store.put(V3, "rpt-002", TEXT, SALT)
    assert store.erase_record("rpt-001") == sorted([V1, V2])
    for vid in (V1, V2):
        with pytest.raises(Erased) as info:
            store.get(vid)
        assert info.value.code == "erased"
        assert store.status(vid) == "erased"
    assert store.get(V3) == (TEXT, SALT)  # another record is untouched
    assert [p.name for p in doc_files(tmp_path)] == [f"{V3}.doc"]
    # after a restart the fact stays
    reopened = DocumentStore.open(tmp_path)
    with pytest.raises(Erased):
        reopened.get(V1)
    with pytest.raises(Erased):
        reopened.get(V2)
    assert reopened.get(V3) == (TEXT, SALT)
    assert reopened.erase_record("rpt-001") == []  # nothing left to erase


def test_erased_content_is_never_stored_again(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    store.erase_record("rpt-001")
    with pytest.raises(Erased):
        store.put(V1, "rpt-001", TEXT, SALT)
    with pytest.raises(Erased):
        DocumentStore.open(tmp_path).put(V1, "rpt-001", TEXT, SALT)


def test_a_later_version_of_an_erased_record_can_be_stored_and_erased(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    store.erase_record("rpt-001")
    assert store.put(V2, "rpt-001", TEXT, SALT) is True
    assert store.get(V2) == (TEXT, SALT)
    assert store.erase_record("rpt-001") == [V2]
    reopened = DocumentStore.open(tmp_path)
    for vid in (V1, V2):  # the tombstone accumulates
        assert reopened.status(vid) == "erased"


def test_erasing_an_unknown_record_is_a_no_op(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    assert store.erase_record("never-stored") == []
    with pytest.raises(ValueError):
        store.erase_record("../x")


def test_open_finishes_an_interrupted_erasure(tmp_path: Path) -> None:
    """A crash after the tombstone was written, before the files were unlinked."""
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    (path,) = doc_files(tmp_path)
    saved = path.read_bytes()
    store.erase_record("rpt-001")
    path.write_bytes(saved)  # as if the unlink had not happened
    reopened = DocumentStore.open(tmp_path)
    assert not path.exists()
    with pytest.raises(Erased):
        reopened.get(V1)


# ------------------------------------------------------------------ stats and paths
def test_stats_and_paths(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    assert store.stats().versions == 0 and store.stats().bytes == 0
    store.put(V1, "rpt-001", TEXT, SALT)
    store.put(V2, "rpt-002", TEXT, SALT)
    s = store.stats()
    assert (s.versions, s.records, s.erased_versions) == (2, 2, 0)
    assert s.bytes == sum(p.stat().st_size for p in doc_files(tmp_path))
    assert s.bytes > 2 * len(TEXT)
    store.erase_record("rpt-001")
    s = store.stats()
    assert (s.versions, s.records, s.erased_versions) == (1, 1, 1)
    assert DocumentStore.open(tmp_path).stats() == s
    paths = store.paths()
    assert paths[0] == tmp_path / KEY_FILE
    on_disk = sorted(p for p in (tmp_path / "documents").rglob("*") if p.is_file())
    assert sorted(paths[1:]) == on_disk
    assert any(p.name == "erased.box" for p in paths)


# ------------------------------------------------------------------ the key file
def test_loose_key_file_is_refused(tmp_path: Path) -> None:
    DocumentStore.open(tmp_path)
    os.chmod(tmp_path / KEY_FILE, 0o644)
    with pytest.raises(DocumentKeyError, match="0644"):
        DocumentStore.open(tmp_path)


def test_malformed_key_file_is_refused(tmp_path: Path) -> None:
    key = tmp_path / KEY_FILE
    key.write_text('{"type": "ed25519", "seed_hex": "00"}')
    os.chmod(key, 0o600)
    with pytest.raises(DocumentKeyError, match="malformed"):
        DocumentStore.open(tmp_path)
    key.write_bytes(b"\xff\xfe")
    with pytest.raises(DocumentKeyError, match="not JSON"):
        DocumentStore.open(tmp_path)
    key.unlink()
    key.mkdir()
    with pytest.raises(DocumentKeyError, match="not a regular file"):
        DocumentStore.open(tmp_path)


def test_missing_key_with_documents_present_is_refused(tmp_path: Path) -> None:
    DocumentStore.open(tmp_path).put(V1, "rpt-001", TEXT, SALT)
    (tmp_path / KEY_FILE).unlink()
    with pytest.raises(DocumentKeyError, match="restore the key file"):
        DocumentStore.open(tmp_path)
    assert not (tmp_path / KEY_FILE).exists()  # no new key was made over the documents


def test_key_path_can_be_given(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "docs.json"
    key.parent.mkdir()
    store = DocumentStore.open(tmp_path / "home", key_path=key)
    assert store.key_path == key and mode(key) == 0o600
    assert not (tmp_path / "home" / KEY_FILE).exists()


def test_loose_documents_directory_is_refused(tmp_path: Path) -> None:
    DocumentStore.open(tmp_path)
    os.chmod(tmp_path / "documents", 0o755)
    with pytest.raises(DocumentStoreError, match="chmod 700"):
        DocumentStore.open(tmp_path)


# ------------------------------------------------------------------ a hostile disk
def test_flipped_bit_is_corrupt_not_a_crash(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    (path,) = doc_files(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptDocument, match="does not decrypt") as info:
        store.get(V1)
    assert info.value.code == "corrupt"
    with pytest.raises(CorruptDocument):  # put of the same content cannot tell either
        store.put(V1, "rpt-001", TEXT, SALT)


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"HYGDOC1\n",
        b"HYGDOC1\n" + b"\x00" * 30,
        b"not a document at all",
    ],
    ids=["empty", "magic-only", "short-box", "bad-magic"],
)
def test_truncated_or_foreign_file_is_corrupt(tmp_path: Path, damage: bytes) -> None:
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    doc_files(tmp_path)[0].write_bytes(damage)
    with pytest.raises(CorruptDocument):
        store.get(V1)
    with pytest.raises(CorruptDocument):
        DocumentStore.open(tmp_path).get(V1)


def test_swapped_files_are_refused(tmp_path: Path) -> None:
    """A version file copied over another one decrypts, but names another version."""
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    store.put(V2, "rpt-001", TEXT.replace("final", "amended"), SALT)
    p1, p2 = doc_files(tmp_path)
    p1.write_bytes(p2.read_bytes())
    with pytest.raises(CorruptDocument, match="moved or swapped"):
        store.get(V1)


def test_file_moved_to_another_record_is_refused(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    store.put(V2, "rpt-002", TEXT, SALT)
    (p1,) = [p for p in doc_files(tmp_path) if p.name.startswith(V1)]
    (p2,) = [p for p in doc_files(tmp_path) if p.name.startswith(V2)]
    moved = p2.parent / p1.name
    os.rename(p1, moved)
    reopened = DocumentStore.open(tmp_path)
    with pytest.raises(CorruptDocument, match="moved or swapped"):
        reopened.get(V1)


def test_another_stores_file_does_not_decrypt(tmp_path: Path) -> None:
    a = DocumentStore.open(tmp_path / "a")
    b = DocumentStore.open(tmp_path / "b")
    a.put(V1, "rpt-001", TEXT, SALT)
    b.put(V1, "rpt-001", "{}", SALT)
    (pa,) = doc_files(tmp_path / "a")
    (pb,) = doc_files(tmp_path / "b")
    pb.write_bytes(pa.read_bytes())
    with pytest.raises(CorruptDocument, match="does not decrypt"):
        b.get(V1)


def test_symlink_and_directory_in_place_of_a_file(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    store.put(V2, "rpt-002", TEXT, SALT)
    p1, p2 = doc_files(tmp_path)
    p1.unlink()
    p1.symlink_to("/dev/zero")
    with pytest.raises(CorruptDocument, match="symbolic link"):
        store.get(V1 if p1.name.startswith(V1) else V2)
    p2.unlink()
    p2.mkdir()
    with pytest.raises(CorruptDocument, match="not a regular file"):
        store.get(V2 if p2.name.startswith(V2) else V1)


def test_oversized_file_is_not_read(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    (path,) = doc_files(tmp_path)
    with open(path, "r+b") as f:
        f.truncate(MAX_TEXT_BYTES + (1 << 20))  # sparse: no real disk used
    with pytest.raises(CorruptDocument, match="more than the store writes"):
        store.get(V1)


def test_file_removed_behind_the_stores_back(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    doc_files(tmp_path)[0].unlink()
    with pytest.raises(CorruptDocument, match="gone"):
        store.get(V1)


def test_damaged_tombstone_refuses_to_open(tmp_path: Path) -> None:
    """Which versions were erased must not be forgotten silently."""
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    store.erase_record("rpt-001")
    (tomb,) = (tmp_path / "documents").rglob("erased.box")
    tomb.write_bytes(tomb.read_bytes()[:-1])
    with pytest.raises(CorruptDocument, match="tombstone"):
        DocumentStore.open(tmp_path)


def test_leftovers_are_cleaned_and_strays_ignored(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    rdir = doc_files(tmp_path)[0].parent
    leftover = rdir / f".{V2}.doc.tmp-1-2"
    leftover.write_bytes(b"half a write")
    stray = tmp_path / "documents" / "records" / "README"
    stray.write_text("an operator's note")
    (rdir / "notes.txt").write_text("x")
    reopened = DocumentStore.open(tmp_path)
    assert not leftover.exists()
    assert stray.exists()
    assert reopened.get(V1) == (TEXT, SALT)
    assert reopened.stats().versions == 1


def test_the_same_version_in_two_records_refuses_to_open(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    store.put(V2, "rpt-002", TEXT, SALT)
    (p1,) = [p for p in doc_files(tmp_path) if p.name.startswith(V1)]
    (p2,) = [p for p in doc_files(tmp_path) if p.name.startswith(V2)]
    (p2.parent / p1.name).write_bytes(p1.read_bytes())
    with pytest.raises(CorruptDocument, match="two records"):
        DocumentStore.open(tmp_path)


# ------------------------------------------------------------------ backups
def test_backup_files_lists_versions_then_the_tombstone(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path)
    store.put(V1, "rpt-001", TEXT, SALT)
    store.put(V2, "rpt-002", TEXT, SALT)
    store.put(V3, "rpt-002", TEXT + " ", SALT)
    store.erase_record("rpt-002")
    store.put(V2.replace("b", "d"), "rpt-002", TEXT, SALT)  # a later version, kept
    (tmp_path / "documents" / "records" / "notes.txt").write_text("an operator's note")
    rdir = next(p.parent for p in doc_files(tmp_path) if p.name == f"{V1}.doc")
    (rdir / f".{V1}.doc.tmp-1-2").write_bytes(b"a crash's leftover")
    files = list(backup_files(tmp_path / "documents"))
    names = [f.name for f in files]
    assert all(backup_file_limit(n) is not None for n in names)
    by_record: dict[str, list[str]] = {}
    for f in files:
        assert f.path == tmp_path / "documents" / f.name
        assert f.is_version == f.name.endswith(".doc")
        by_record.setdefault(f.name.split("/")[1], []).append(f.name.split("/")[2])
    assert sorted(by_record) == list(by_record)  # records in name order
    assert sorted(by_record.values()) == [[f"{V1}.doc"], [f"{'d2' * 32}.doc", "erased.box"]]
    assert {p.name for p in store.paths()[1:]} == {n.split("/")[2] for n in names}
    assert list(backup_files(tmp_path / "nothing-here")) == []


def test_backup_file_limit_knows_only_the_stores_names() -> None:
    rk = "0f" * 16
    assert backup_file_limit(f"records/{rk}/{V1}.doc") is not None
    assert backup_file_limit(f"records/{rk}/erased.box") is not None
    for bad in (
        f"records/{rk}/../{V1}.doc",
        f"/records/{rk}/{V1}.doc",
        f"records/{rk.upper()}/{V1}.doc",
        f"records/{rk}/{V1}.txt",
        f"records/{rk}/.{V1}.doc.tmp-1-2",
        "document_key.json",
    ):
        assert backup_file_limit(bad) is None, bad


def test_restore_file_writes_private_files_and_never_replaces(tmp_path: Path) -> None:
    source = DocumentStore.open(tmp_path / "a")
    source.put(V1, "rpt-001", TEXT, SALT)
    (item,) = backup_files(tmp_path / "a" / "documents")
    data = item.path.read_bytes()
    docs = tmp_path / "b" / "documents"
    (tmp_path / "b").mkdir()
    assert restore_file(docs, item.name, [data[:10], data[10:]]) == len(data)
    assert (docs / item.name).read_bytes() == data
    assert mode(docs / item.name) == 0o600
    for d in (docs, docs / "records", (docs / item.name).parent):
        assert mode(d) == 0o700
    with pytest.raises(FileExistsError):
        restore_file(docs, item.name, [b"other"])
    assert (docs / item.name).read_bytes() == data
    with pytest.raises(ValueError, match="not the name"):
        restore_file(docs, "records/../../x.doc", [data])
    name = item.name.replace(V1, V2)
    with pytest.raises(ValueError, match="more than"):
        restore_file(docs, name, iter(lambda: b"x" * (1 << 20), b""))
    assert not (docs / name).exists()
    assert [p.name for p in (docs / item.name).parent.iterdir()] == [f"{V1}.doc"]  # no temp
    shutil.copy2(tmp_path / "a" / KEY_FILE, tmp_path / "b" / KEY_FILE)
    assert DocumentStore.open(tmp_path / "b").get(V1) == (TEXT, SALT)


def test_restore_file_refuses_a_loose_directory(tmp_path: Path) -> None:
    docs = tmp_path / "documents"
    docs.mkdir(mode=0o755)
    os.chmod(docs, 0o755)
    with pytest.raises(DocumentStoreError, match="other users"):
        restore_file(docs, f"records/{'0f' * 16}/{V1}.doc", [b"x"])
    assert not (docs / "records").exists()


def test_key_document_round_trip(tmp_path: Path) -> None:
    store = DocumentStore.open(tmp_path / "a")
    store.put(V1, "rpt-001", TEXT, SALT)
    doc = read_key_document(store.key_path)
    assert is_key_document(doc)
    assert doc == json.loads(store.key_path.read_text())
    target = tmp_path / "b" / KEY_FILE
    write_key_document(target, doc)
    assert mode(target) == 0o600
    assert read_key_document(target) == doc
    with pytest.raises(DocumentKeyError, match="already exists"):
        write_key_document(target, doc)
    with pytest.raises(DocumentKeyError, match="not a document key"):
        write_key_document(tmp_path / "c" / KEY_FILE, {**doc, "key_hex": "00"})
    with pytest.raises(DocumentKeyError):
        read_key_document(tmp_path / "missing.json")
