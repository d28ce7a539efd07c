"""Backups of a node's LevelDB database and document store, and restoring one into a
new home.

A backup is every key/value of the database read from ONE LevelDB snapshot,
so it is consistent even while the node keeps committing blocks, followed by
the files of the node's document store (node/exchange/store.py) as they are on
disk (encrypted at rest). File layout (all integers big-endian)::

    MAGIC (8 bytes, b"HYGBAK1\\n")
    payload: records  u32 key length, key, u32 value length, value
    documents: files  u32 name length, name (ASCII), u64 size, the file's bytes
    manifest: canonical JSON (object, see ``Manifest``)
    u32 manifest length
    END (8 bytes, b"HYGBAKE\\n")

The manifest comes last so a backup is written in one pass; it names the
chain id, the genesis hash, the height, the schema version, the key count,
the payload size and the SHA-256 of the payload, the number of document files,
the size and SHA-256 of the documents section, the creation time, and carries
genesis.json (public). The node key is only included when asked
(``include_node_key``): two nodes running one key would equivocate. The
document store's key is secret in the same way and goes with the same opt-in
(``DocumentSource.key_path``). Format ``hygeia-backup/2``; a ``hygeia-backup/1``
file (no documents section) is still read and restored.

Documents are copied after the database payload, so after the snapshot: a
version stored after the snapshot may be in the backup without its anchor
(harmless: the chain does not know it yet). Names of the store's files are
listed from the live directory (``store.backup_files``): a version whose
erasure finished before its record was reached is not in the backup; a version
file unlinked while it was being copied is taken back out of the backup (the
entry is truncated away); one whose erasure began (tombstone written) before the
backup copied that record's tombstone is listed in that tombstone, so the store
deletes it when it opens the restored home, as it finishes an interrupted
erasure (``restore_backup`` opens it when the backup holds the key). An erasure
that begins after the backup finished a record leaves that record's versions in
the backup: it was made before the erasure.

``restore_backup`` checks the checksum before anything else, then builds a
new home: ``init_home`` (new node key, new admin token, default config),
genesis.json from the manifest, and a new database (``open_database(create=True)``,
recording the manifest's genesis hash) filled in write batches. A backup whose
records name another genesis hash than its manifest is refused.

Documents are restored after the database: the key (when the backup has it) to
``document_key.json`` beside the new home's node key, never replacing one that
differs, then each file to ``<home>/documents/`` (0600 files in 0700
directories, written whole and linked into place, never replacing a file). A
home whose document store already holds records is refused before anything is
written. Everything is streamed: memory does not grow with the store.

``backup_home`` (a stopped node) opens the existing database only, and refuses
one that belongs to another genesis than the home's genesis.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from node.core.secretfile import SecretFileError, write_secret
from node.exchange import store as docstore
from node.setup.config import ConfigError, NodeConfig, load_config
from node.setup.genesis import parse_genesis, write_genesis
from node.setup.home import init_home, load_public_key
from storage.db import Database, DatabaseSnapshot, open_database
from storage.errors import StorageError
from storage.files import UnsafeFile, open_regular
from storage.layout import META_GENESIS, META_HEIGHT, SCHEMA_VERSION, Namespace, decode_u64

MAGIC = b"HYGBAK1\n"
END = b"HYGBAKE\n"
FORMAT = "hygeia-backup/2"
FORMAT_V1 = "hygeia-backup/1"  # no documents section; still read and restored
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_MAX_NAME = 256  # a document file's name is 18 + 32 + 1 + 68 bytes at most
_CHUNK = 1 << 20
_BATCH_KEYS = 2048
_BATCH_BYTES = 4 << 20

Progress = Callable[[int], None]
"""Called with the number of payload or documents bytes just written or read."""


class BackupError(Exception):
    """A backup that cannot be made, read or restored; the message is for the operator."""


@dataclass(frozen=True)
class Manifest:
    chain_id: str
    genesis_hash: str
    height: int
    schema_version: int
    key_count: int
    payload_bytes: int
    payload_sha256: str
    created_at: str
    genesis: dict[str, Any]
    node_key: dict[str, Any] | None = None
    document_files: int = 0
    documents_bytes: int = 0
    documents_sha256: str = _EMPTY_SHA256
    document_key: dict[str, Any] | None = None
    format: str = FORMAT

    @property
    def total_bytes(self) -> int:
        """The bytes ``iter_records`` and ``iter_documents`` read: the progress total."""
        return self.payload_bytes + self.documents_bytes

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": self.format,
            "chain_id": self.chain_id,
            "genesis_hash": self.genesis_hash,
            "height": self.height,
            "schema_version": self.schema_version,
            "key_count": self.key_count,
            "payload_bytes": self.payload_bytes,
            "payload_sha256": self.payload_sha256,
            "created_at": self.created_at,
            "genesis": self.genesis,
            "includes_node_key": self.node_key is not None,
        }
        if self.node_key is not None:
            out["node_key"] = self.node_key
        if self.format != FORMAT_V1:
            out["document_files"] = self.document_files
            out["documents_bytes"] = self.documents_bytes
            out["documents_sha256"] = self.documents_sha256
            out["includes_document_key"] = self.document_key is not None
            if self.document_key is not None:
                out["document_key"] = self.document_key
        return out

    def summary(self) -> dict[str, Any]:
        """The manifest without genesis and keys (for logs and API answers)."""
        doc = self.to_json()
        doc.pop("genesis")
        doc.pop("node_key", None)
        doc.pop("document_key", None)
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Manifest:
        if not isinstance(doc, dict) or doc.get("format") not in (FORMAT, FORMAT_V1):
            raise BackupError(f"not a {FORMAT} (or {FORMAT_V1}) manifest")
        try:
            node_key = doc.get("node_key")
            documents: dict[str, Any] = {}
            if doc["format"] == FORMAT:
                document_key = doc.get("document_key")
                if int(doc["document_files"]) < 0 or int(doc["documents_bytes"]) < 0:
                    raise ValueError("negative documents size")
                documents = {
                    "document_files": int(doc["document_files"]),
                    "documents_bytes": int(doc["documents_bytes"]),
                    "documents_sha256": str(doc["documents_sha256"]),
                    "document_key": dict(document_key) if document_key is not None else None,
                }
            return cls(
                chain_id=str(doc["chain_id"]),
                genesis_hash=str(doc["genesis_hash"]),
                height=int(doc["height"]),
                schema_version=int(doc["schema_version"]),
                key_count=int(doc["key_count"]),
                payload_bytes=int(doc["payload_bytes"]),
                payload_sha256=str(doc["payload_sha256"]),
                created_at=str(doc["created_at"]),
                genesis=dict(doc["genesis"]),
                node_key=dict(node_key) if node_key is not None else None,
                format=str(doc["format"]),
                **documents,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupError(f"malformed backup manifest: {exc}") from None


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ------------------------------------------------------------------ documents
@dataclass(frozen=True)
class DocumentSource:
    """The document store a backup copies: its directory (``<home>/documents``) and,
    only when the keys are to be included, its key file."""

    directory: Path
    key_path: Path | None = None


def document_key_path(cfg: NodeConfig) -> Path:
    """Where a node keeps its document key: beside its node key (node/daemon.py)."""
    return cfg.node_key_path.parent / docstore.KEY_FILE


def documents_of(cfg: NodeConfig, *, include_key: bool) -> DocumentSource:
    """The document store of the node home ``cfg``; its key only with ``include_key``
    (the same opt-in as the node key's)."""
    return DocumentSource(
        cfg.home / docstore.DOCUMENTS_DIR, document_key_path(cfg) if include_key else None
    )


@dataclass(frozen=True)
class _Section:
    files: int = 0
    size: int = 0
    sha256: str = _EMPTY_SHA256


def _has_records(directory: Path) -> bool:
    try:
        return any((directory / "records").iterdir())
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise BackupError(f"cannot list {directory / 'records'}: {exc.strerror}") from None


def _read_document_key(source: DocumentSource) -> dict[str, Any] | None:
    """The key file's JSON when asked for; None when asked for but there is no store
    (no key, no records): a key missing beside documents is an error."""
    path = source.key_path
    if path is None:
        return None
    if not (path.exists() or path.is_symlink()):
        if not _has_records(source.directory):
            return None
        raise BackupError(
            f"{source.directory} holds documents but their key file {path} is missing; "
            "a backup that includes the keys cannot be made without it"
        )
    try:
        return dict(docstore.read_key_document(path))
    except docstore.DocumentKeyError as exc:
        raise BackupError(str(exc)) from None


def _open_source_file(item: docstore.BackupFile) -> tuple[int, os.stat_result] | None:
    """An open descriptor of a store file and its stat, or None if it is gone (erased)."""
    try:
        return open_regular(item.path, item.limit)
    except FileNotFoundError:
        return None
    except UnsafeFile as exc:
        why = docstore.describe_unsafe(exc)
        if exc.reason == "too-large":
            why += (
                ": it is not a document file; move it out of the documents directory and "
                "back up again"
            )
        raise BackupError(why) from None
    except OSError as exc:
        raise BackupError(f"cannot read {item.path}: {exc.strerror}") from None


def _still_there(path: Path, st: os.stat_result) -> bool:
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


def _write_documents(f: IO[bytes], source: DocumentSource, progress: Progress | None) -> _Section:
    """Append the store's files to ``f`` (see the module's header for what an erasure
    meanwhile does); streamed in chunks of 1 MiB."""
    digest = hashlib.sha256()
    files = size = 0
    try:
        for item in docstore.backup_files(source.directory):
            opened = _open_source_file(item)
            if opened is None:
                continue  # erased since it was listed
            fd, st = opened
            mark, before = f.tell(), digest.copy()
            try:
                name = item.name.encode("ascii")
                head = _U32.pack(len(name)) + name + _U64.pack(st.st_size)
                f.write(head)
                digest.update(head)
                if progress is not None:
                    progress(len(head))
                left = st.st_size
                while left > 0:
                    chunk = os.read(fd, min(_CHUNK, left))
                    if not chunk:
                        raise BackupError(f"{item.path} shrank while it was copied")
                    f.write(chunk)
                    digest.update(chunk)
                    left -= len(chunk)
                    if progress is not None:
                        progress(len(chunk))
            finally:
                os.close(fd)
            if item.is_version and not _still_there(item.path, st):
                f.seek(mark)  # erased while it was copied: take it back out
                f.truncate()
                digest = before
                continue
            files += 1
            size += len(head) + st.st_size
    except OSError as exc:
        raise BackupError(f"cannot copy the documents in {source.directory}: {exc}") from None
    return _Section(files, size, digest.hexdigest())


def _snapshot_items(snap: DatabaseSnapshot) -> Iterator[tuple[bytes, bytes]]:
    for ns in Namespace:
        for key, value in snap.iterate(ns):
            yield ns.value + key, value


def write_snapshot(
    snap: DatabaseSnapshot,
    out: str | os.PathLike[str],
    *,
    genesis: dict[str, Any],
    node_key: dict[str, Any] | None = None,
    documents: DocumentSource | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Write every key of ``snap`` to ``out``, then the files of ``documents`` (and its
    key when it names one); atomically: a temporary file, fsync, rename."""
    parsed = parse_genesis(genesis)
    document_key = _read_document_key(documents) if documents is not None else None
    raw_height = snap.get(Namespace.META, META_HEIGHT)
    height = decode_u64(raw_height, "tip height") if raw_height is not None else 0
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    count = size = 0
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC)
            for key, value in _snapshot_items(snap):
                record = _U32.pack(len(key)) + key + _U32.pack(len(value)) + value
                digest.update(record)
                f.write(record)
                count += 1
                size += len(record)
                if progress is not None:
                    progress(len(record))
            section = (
                _write_documents(f, documents, progress) if documents is not None else _Section()
            )
            manifest = Manifest(
                chain_id=parsed.chain_id,
                genesis_hash=parsed.genesis_hash_hex(),
                height=height,
                schema_version=SCHEMA_VERSION,
                key_count=count,
                payload_bytes=size,
                payload_sha256=digest.hexdigest(),
                created_at=_utc_now(),
                genesis=genesis,
                node_key=node_key,
                document_files=section.files,
                documents_bytes=section.size,
                documents_sha256=section.sha256,
                document_key=document_key,
            )
            doc = json.dumps(manifest.to_json(), sort_keys=True, separators=(",", ":")).encode()
            f.write(doc + _U32.pack(len(doc)) + END)
            f.flush()
            os.fsync(f.fileno())
        if node_key is not None or document_key is not None:
            os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


def write_backup(
    db: Database,
    out: str | os.PathLike[str],
    *,
    genesis: dict[str, Any],
    node_key: dict[str, Any] | None = None,
    documents: DocumentSource | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Back up ``db`` from one snapshot taken now (then ``documents``' files)."""
    with db.snapshot() as snap:
        return write_snapshot(
            snap, out, genesis=genesis, node_key=node_key, documents=documents, progress=progress
        )


def backup_home(
    data_dir: Path,
    genesis_path: Path,
    out: str | os.PathLike[str],
    *,
    node_key_path: Path | None = None,
    documents: DocumentSource | None = None,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> Manifest:
    """Back up a stopped node's database (``StorageError`` mentioning LOCK if it runs),
    and its document store when ``documents`` names it (``documents_of``)."""
    if not data_dir.is_dir():
        raise BackupError(f"{data_dir}: no database here (is --home right?)")
    genesis = read_json_file(genesis_path, "genesis.json")
    try:
        genesis_hash = parse_genesis(genesis, source=str(genesis_path)).genesis_hash()
    except ValueError as exc:
        raise BackupError(str(exc)) from None
    node_key = read_json_file(node_key_path, "node key") if node_key_path is not None else None
    with open_database(data_dir, genesis_hash=genesis_hash) as db:
        if on_total is not None:
            on_total(db.approximate_size())
        return write_backup(
            db, out, genesis=genesis, node_key=node_key, documents=documents, progress=progress
        )


def read_json_file(path: Path, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise BackupError(f"{path}: {what} not found") from None
    except ValueError as exc:
        raise BackupError(f"{path}: {what} is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BackupError(f"{path}: {what} is not a JSON object")
    return doc


# ------------------------------------------------------------------ reading
def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The manifest of a backup file (its checksum is NOT checked here: see ``verify_backup``)."""
    where = Path(path)
    try:
        with open(where, "rb") as f:
            return _read_manifest(f, where)
    except FileNotFoundError:
        raise BackupError(f"{where}: no such backup file") from None


def _read_manifest(f: IO[bytes], where: Path) -> Manifest:
    end = f.seek(0, os.SEEK_END)
    f.seek(0)
    if end < len(MAGIC) + 4 + len(END) or f.read(len(MAGIC)) != MAGIC:
        raise BackupError(f"{where}: not a Hygeia backup file")
    f.seek(end - len(END) - 4)
    (length,) = _U32.unpack(f.read(4))
    if f.read(len(END)) != END or length > end - len(MAGIC) - 4 - len(END):
        raise BackupError(f"{where}: truncated backup file (no manifest at the end)")
    f.seek(end - len(END) - 4 - length)
    try:
        doc = json.loads(f.read(length))
    except ValueError:
        raise BackupError(f"{where}: the backup manifest is not JSON") from None
    manifest = Manifest.from_json(doc)
    if len(MAGIC) + manifest.total_bytes + length + 4 + len(END) != end:
        raise BackupError(f"{where}: the payload size does not match the manifest (truncated?)")
    return manifest


def iter_records(
    path: str | os.PathLike[str], progress: Progress | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """Key/value records of a backup, checked as they are read: the checksum and the key
    count are compared at the end, so a consumer must not commit before the last one."""
    where = Path(path)
    with open(where, "rb") as f:
        manifest = _read_manifest(f, where)
        f.seek(len(MAGIC))
        digest = hashlib.sha256()
        left = manifest.payload_bytes
        count = 0
        while left > 0:
            head = f.read(4)
            if len(head) < 4 or left < 4:
                raise BackupError(f"{where}: corrupt payload (record header)")
            (klen,) = _U32.unpack(head)
            key = f.read(klen)
            vhead = f.read(4)
            if len(key) != klen or len(vhead) != 4:
                raise BackupError(f"{where}: corrupt payload (key)")
            (vlen,) = _U32.unpack(vhead)
            value = f.read(vlen)
            size = 8 + klen + vlen
            if len(value) != vlen or size > left:
                raise BackupError(f"{where}: corrupt payload (value)")
            digest.update(head + key + vhead + value)
            left -= size
            count += 1
            if progress is not None:
                progress(size)
            yield key, value
        if digest.hexdigest() != manifest.payload_sha256:
            raise BackupError(
                f"{where}: checksum mismatch: the payload's SHA-256 is {digest.hexdigest()}, "
                f"the manifest says {manifest.payload_sha256}; the backup is damaged, "
                "refusing to restore it"
            )
        if count != manifest.key_count:
            raise BackupError(
                f"{where}: {count} keys in the payload, the manifest says {manifest.key_count}"
            )


def _file_chunks(
    f: IO[bytes], size: int, digest: Any, where: Path, progress: Progress | None
) -> Iterator[bytes]:
    left = size
    while left > 0:
        chunk = f.read(min(_CHUNK, left))
        if not chunk:
            raise BackupError(f"{where}: corrupt documents section (a file is cut short)")
        digest.update(chunk)
        left -= len(chunk)
        if progress is not None:
            progress(len(chunk))
        yield chunk


def iter_documents(
    path: str | os.PathLike[str], progress: Progress | None = None
) -> Iterator[tuple[str, int, Iterator[bytes]]]:
    """The document files of a backup: ``(name, size, chunks)``, ``name`` relative to
    the documents directory (``store.BackupFile.name``), checked to be a name the store
    writes and no larger than such a file. Read ``chunks`` before asking for the next
    file (what is left is skipped). The checksum and file count are compared at the
    end, so a consumer must not rely on the files before the last one was read."""
    where = Path(path)
    with open(where, "rb") as f:
        manifest = _read_manifest(f, where)
        f.seek(len(MAGIC) + manifest.payload_bytes)
        digest = hashlib.sha256()
        left = manifest.documents_bytes
        count = 0
        while left > 0:
            head = f.read(4)
            if len(head) < 4 or left < 4:
                raise BackupError(f"{where}: corrupt documents section (file header)")
            (nlen,) = _U32.unpack(head)
            if nlen > _MAX_NAME:
                raise BackupError(f"{where}: corrupt documents section (a name of {nlen} bytes)")
            raw_name = f.read(nlen)
            shead = f.read(8)
            if len(raw_name) != nlen or len(shead) != 8:
                raise BackupError(f"{where}: corrupt documents section (file name)")
            (size,) = _U64.unpack(shead)
            name = raw_name.decode("ascii", errors="replace")
            limit = docstore.backup_file_limit(name)
            if limit is None:
                raise BackupError(
                    f"{where}: the documents section holds {name!r}, not a name the document "
                    "store writes; refusing it"
                )
            entry = 12 + nlen + size
            if size > limit or entry > left:
                raise BackupError(f"{where}: corrupt documents section ({name} is too large)")
            digest.update(head + raw_name + shead)
            if progress is not None:
                progress(12 + nlen)
            chunks = _file_chunks(f, size, digest, where, progress)
            yield name, size, chunks
            for _ in chunks:  # whatever the consumer left unread
                pass
            left -= entry
            count += 1
        if digest.hexdigest() != manifest.documents_sha256:
            raise BackupError(
                f"{where}: checksum mismatch: the documents section's SHA-256 is "
                f"{digest.hexdigest()}, the manifest says {manifest.documents_sha256}; the "
                "backup is damaged, refusing to restore it"
            )
        if count != manifest.document_files:
            raise BackupError(
                f"{where}: {count} document files in the backup, the manifest says "
                f"{manifest.document_files}"
            )


def verify_backup(path: str | os.PathLike[str], progress: Progress | None = None) -> Manifest:
    """Read the whole backup and check its checksums, key count and document count;
    return its manifest."""
    manifest = read_manifest(path)
    for _ in iter_records(path, progress):
        pass
    for _ in iter_documents(path, progress):
        pass
    return manifest


# ------------------------------------------------------------------ restoring
def _namespace_of(key: bytes) -> tuple[Namespace, bytes]:
    for ns in Namespace:
        if key.startswith(ns.value):
            return ns, key[len(ns.value) :]
    raise BackupError(f"backup holds a key outside every namespace: {key[:40]!r}")


def _refuse_used_home(target: Path, genesis_hash: str) -> NodeConfig:
    """Refuse, before anything is written, a home that already has a node key (an identity
    that a restore must never replace, with or without ``--restore-node-key``), a database,
    or another chain's genesis.json. A home holding only config.toml (and this chain's
    genesis) is fine: ports and peers can be set before restoring."""
    if target.exists() and not target.is_dir():
        raise BackupError(f"{target} exists and is not a directory")
    try:
        cfg = load_config(target, env={}, require_file=False)
    except ConfigError as exc:
        raise BackupError(str(exc)) from None
    if cfg.node_key_path.exists() or cfg.node_key_path.is_symlink():
        raise BackupError(
            f"{target} already has a node key ({cfg.node_key_path}); a restore never "
            "replaces a node's identity: restore into a new home"
        )
    if cfg.data_dir.is_dir() and any(cfg.data_dir.iterdir()):
        raise BackupError(f"{cfg.data_dir} already holds a database; restore into a new home")
    if cfg.genesis_path.exists():
        try:
            existing = parse_genesis(json.loads(cfg.genesis_path.read_bytes()))
        except ValueError as exc:  # not JSON, or not a valid genesis
            raise BackupError(f"{cfg.genesis_path}: not a valid genesis.json ({exc})") from None
        if existing.genesis_hash_hex() != genesis_hash:
            raise BackupError(f"{cfg.genesis_path} exists and is another chain's genesis")
    return cfg


def _refuse_document_conflicts(cfg: NodeConfig, manifest: Manifest) -> None:
    """Refuse, before anything is written, a home whose document store holds records
    (when the backup has documents), or whose document key differs from the backup's."""
    docs = cfg.home / docstore.DOCUMENTS_DIR
    if manifest.document_files:
        if docs.is_symlink() or (docs.exists() and not docs.is_dir()):
            raise BackupError(f"{docs} is in the way: it is not a directory")
        if docs.is_dir() and _has_records(docs):
            raise BackupError(
                f"{docs} already holds documents; a restore never writes over a document "
                "store: restore into a new home"
            )
    if manifest.document_key is not None and not docstore.is_key_document(manifest.document_key):
        raise BackupError("the document key in the backup is malformed; refusing to restore it")
    key_path = document_key_path(cfg)
    if manifest.document_key is not None and (key_path.exists() or key_path.is_symlink()):
        try:
            existing = docstore.read_key_document(key_path)
        except docstore.DocumentKeyError as exc:
            raise BackupError(str(exc)) from None
        if existing.get("key_hex") != manifest.document_key.get("key_hex"):
            raise BackupError(
                f"{key_path} holds another document key than the backup's; a restore never "
                "replaces a key: restore into a new home"
            )


def _restore_documents(path: Path, docs: Path, progress: Progress | None) -> int:
    """Write the backup's document files under ``docs``; how many."""
    count = 0
    for name, _size, chunks in iter_documents(path, progress):
        try:
            docstore.restore_file(docs, name, chunks)
        except FileExistsError:
            raise BackupError(
                f"{docs / name} exists already; a restore never replaces a document file"
            ) from None
        except (docstore.DocumentStoreError, ValueError) as exc:
            raise BackupError(f"{path}: cannot restore {name}: {exc}") from None
        except OSError as exc:
            raise BackupError(f"cannot write {docs / name}: {exc.strerror or exc}") from None
        count += 1
    return count


@dataclass(frozen=True)
class Restored:
    home: Path
    node_id: str
    manifest: Manifest
    node_key_restored: bool
    documents: int = 0  # document files written
    document_key_restored: bool = False
    notes: tuple[str, ...] = ()  # for the operator (e.g. documents without their key)


def restore_backup(
    path: str | os.PathLike[str],
    home: str | os.PathLike[str],
    *,
    name: str | None = None,
    restore_node_key: bool = False,
    progress: Progress | None = None,
) -> Restored:
    """Verify ``path``, then make ``home`` a node home holding its database and its
    document store (and the store's key when the backup has it).

    Refuses, before writing anything, a home that already has a node key, a database,
    another chain's genesis, documents (when the backup has some) or another document
    key than the backup's. The checksums are checked in a first pass before anything
    is created, and again while writing.
    """
    manifest = verify_backup(path)
    if manifest.schema_version != SCHEMA_VERSION:
        raise BackupError(
            f"backup has schema version {manifest.schema_version}, this build expects "
            f"{SCHEMA_VERSION}"
        )
    if restore_node_key and manifest.node_key is None:
        raise BackupError("--restore-node-key: this backup does not include the node key")
    genesis = parse_genesis(manifest.genesis)
    if genesis.genesis_hash_hex() != manifest.genesis_hash:
        raise BackupError("the genesis in the backup does not match its genesis hash")
    target = Path(home).expanduser().absolute()
    _refuse_document_conflicts(_refuse_used_home(target, manifest.genesis_hash), manifest)
    node_id = init_home(target, name=name, database=False)
    cfg = load_config(target, env={})
    if not cfg.genesis_path.exists():
        write_genesis(cfg.genesis_path, genesis)
    if restore_node_key:
        assert manifest.node_key is not None
        # replaces the key init_home just made: atomically, so a crash leaves one whole key
        try:
            write_secret(
                cfg.node_key_path,
                json.dumps(manifest.node_key, indent=2).encode(),
                force=True,
                what="node key",
            )
        except SecretFileError as exc:
            raise BackupError(str(exc)) from None
        node_id = load_public_key(cfg.node_key_path)
    try:
        db = open_database(cfg.data_dir, create=True, genesis_hash=genesis.genesis_hash())
    except StorageError as exc:  # e.g. the data directory is no longer empty
        raise BackupError(str(exc)) from None
    try:
        batch: list[tuple[Namespace, bytes, bytes | None]] = []
        held = 0
        for key, value in iter_records(path, progress):
            ns, rest = _namespace_of(key)
            if ns is Namespace.META and rest == META_GENESIS and value != genesis.genesis_hash():
                raise BackupError(
                    f"{path}: its database records genesis hash {value.hex()}, its manifest "
                    f"{manifest.genesis_hash}; the backup is inconsistent, refusing to restore it"
                )
            batch.append((ns, rest, value))
            held += len(key) + len(value)
            if len(batch) >= _BATCH_KEYS or held >= _BATCH_BYTES:
                db.write(batch, sync=False)
                batch, held = [], 0
        db.write(batch, sync=True)
        raw = db.get(Namespace.META, META_HEIGHT)
        height = decode_u64(raw, "tip height") if raw is not None else 0
        if height != manifest.height:
            raise BackupError(f"restored height {height} != manifest height {manifest.height}")
    except StorageError as exc:
        raise BackupError(str(exc)) from None
    finally:
        db.close()
    return _restore_document_store(
        Restored(target, node_id, manifest, restore_node_key), path, cfg, progress
    )


def _restore_document_store(
    done: Restored, path: str | os.PathLike[str], cfg: NodeConfig, progress: Progress | None
) -> Restored:
    """The documents part of ``restore_backup``: the key, the files, then the store opened
    once (it deletes versions the backup's tombstones list, an erasure the backup caught
    half done) when the key came with the backup."""
    manifest = done.manifest
    key_path = document_key_path(cfg)
    key_restored = False
    if manifest.document_key is not None and not (key_path.exists() or key_path.is_symlink()):
        try:
            docstore.write_key_document(key_path, manifest.document_key)
        except docstore.DocumentKeyError as exc:
            raise BackupError(str(exc)) from None
        key_restored = True
    count = 0
    if manifest.document_files:
        count = _restore_documents(Path(path), cfg.home / docstore.DOCUMENTS_DIR, progress)
    notes: list[str] = []
    if manifest.document_key is not None:
        try:
            docstore.DocumentStore.open(cfg.home, key_path=key_path)
        except docstore.DocumentStoreError as exc:
            raise BackupError(f"the restored document store does not open: {exc}") from None
    elif count and not (key_path.exists() or key_path.is_symlink()):
        notes.append(
            f"the backup holds {count} document files but not their key: copy the old "
            f"node's {docstore.KEY_FILE} to {key_path} (mode 0600): without it the "
            "documents cannot be read and the node refuses to start"
        )
    return dataclasses.replace(
        done, documents=count, document_key_restored=key_restored, notes=tuple(notes)
    )
