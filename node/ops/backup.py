"""Backups of a node's LevelDB database, and restoring one into a new home.

A backup is every key/value of the database read from ONE LevelDB snapshot,
so it is consistent even while the node keeps committing blocks. File layout
(all integers big-endian)::

    MAGIC (8 bytes, b"HYGBAK1\\n")
    payload: records  u32 key length, key, u32 value length, value
    manifest: canonical JSON (object, see ``Manifest``)
    u32 manifest length
    END (8 bytes, b"HYGBAKE\\n")

The manifest comes last so a backup is written in one pass; it names the
chain id, the genesis hash, the height, the schema version, the key count,
the payload size and the SHA-256 of the payload, the creation time, and
carries genesis.json (public). The node key is only included when asked
(``include_node_key``): two nodes running one key would equivocate.

``restore_backup`` checks the checksum before anything else, then builds a
new home: ``init_home`` (new node key, new admin token, default config),
genesis.json from the manifest, and a new database (``open_database(create=True)``,
recording the manifest's genesis hash) filled in write batches. A backup whose
records name another genesis hash than its manifest is refused.

``backup_home`` (a stopped node) opens the existing database only, and refuses
one that belongs to another genesis than the home's genesis.json.
"""

from __future__ import annotations

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
from node.setup.config import ConfigError, load_config
from node.setup.genesis import parse_genesis, write_genesis
from node.setup.home import init_home, load_public_key
from storage.db import Database, DatabaseSnapshot, open_database
from storage.errors import StorageError
from storage.layout import META_GENESIS, META_HEIGHT, SCHEMA_VERSION, Namespace, decode_u64

MAGIC = b"HYGBAK1\n"
END = b"HYGBAKE\n"
FORMAT = "hygeia-backup/1"
_U32 = struct.Struct(">I")
_BATCH_KEYS = 2048
_BATCH_BYTES = 4 << 20

Progress = Callable[[int], None]
"""Called with the number of payload bytes just written or read."""


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

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
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
        return out

    def summary(self) -> dict[str, Any]:
        """The manifest without genesis and node key (for logs and API answers)."""
        doc = self.to_json()
        doc.pop("genesis")
        doc.pop("node_key", None)
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Manifest:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise BackupError(f"not a {FORMAT} manifest")
        try:
            node_key = doc.get("node_key")
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
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupError(f"malformed backup manifest: {exc}") from None


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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
    progress: Progress | None = None,
) -> Manifest:
    """Write every key of ``snap`` to ``out`` (atomically: a temporary file, fsync, rename)."""
    parsed = parse_genesis(genesis)
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
            )
            doc = json.dumps(manifest.to_json(), sort_keys=True, separators=(",", ":")).encode()
            f.write(doc + _U32.pack(len(doc)) + END)
            f.flush()
            os.fsync(f.fileno())
        if node_key is not None:
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
    progress: Progress | None = None,
) -> Manifest:
    """Back up ``db`` from one snapshot taken now."""
    with db.snapshot() as snap:
        return write_snapshot(snap, out, genesis=genesis, node_key=node_key, progress=progress)


def backup_home(
    data_dir: Path,
    genesis_path: Path,
    out: str | os.PathLike[str],
    *,
    node_key_path: Path | None = None,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> Manifest:
    """Back up a stopped node's database (``StorageError`` mentioning LOCK if it runs)."""
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
        return write_backup(db, out, genesis=genesis, node_key=node_key, progress=progress)


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
    if len(MAGIC) + manifest.payload_bytes + length + 4 + len(END) != end:
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


def verify_backup(path: str | os.PathLike[str], progress: Progress | None = None) -> Manifest:
    """Read the whole backup and check its checksum and key count; return its manifest."""
    manifest = read_manifest(path)
    for _ in iter_records(path, progress):
        pass
    return manifest


# ------------------------------------------------------------------ restoring
def _namespace_of(key: bytes) -> tuple[Namespace, bytes]:
    for ns in Namespace:
        if key.startswith(ns.value):
            return ns, key[len(ns.value) :]
    raise BackupError(f"backup holds a key outside every namespace: {key[:40]!r}")


def _refuse_used_home(target: Path, genesis_hash: str) -> None:
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


@dataclass(frozen=True)
class Restored:
    home: Path
    node_id: str
    manifest: Manifest
    node_key_restored: bool


def restore_backup(
    path: str | os.PathLike[str],
    home: str | os.PathLike[str],
    *,
    name: str | None = None,
    restore_node_key: bool = False,
    progress: Progress | None = None,
) -> Restored:
    """Verify ``path``, then make ``home`` a node home holding its database.

    Refuses, before writing anything, a home that already has a node key, a database
    or another chain's genesis. The checksum is checked in a first pass before
    anything is created, and again while writing.
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
    _refuse_used_home(target, manifest.genesis_hash)
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
    return Restored(target, node_id, manifest, restore_node_key)
