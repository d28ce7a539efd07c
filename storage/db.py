"""Opening a node's LevelDB database, and typed access to its namespaces.

``open_database(path)`` opens an EXISTING database; only
``open_database(path, create=True)`` (``hygeia init``, ``hygeia restore``)
makes one, and only in a missing or empty directory. Nothing here deletes,
repairs or overwrites a database implicitly:

- before LevelDB touches the directory, ``storage.marker.check_data_dir``
  checks the ``HYGEIA`` marker written at creation and LevelDB's ``CURRENT``
  (without it LevelDB would start an empty database over the old tables), the
  schema version and, when the caller gives it, the genesis hash;
- LevelDB is opened with paranoid checks and without ``create_if_missing``;
  ``meta/schema`` must be this build's version, ``meta/genesis`` (the genesis
  hash recorded for the database, if any) must agree with the marker and the
  caller's, and the block at the tip height (``meta/height``) must be there;
- then the marker is rewritten with the manifest ``CURRENT`` names now.

A write that fails (``Database.write``: the disk is full, the filesystem
refused it) is a ``StorageWriteError``, and every later write through the
same ``Database`` is refused with one too, without reaching LevelDB: after a
failed write LevelDB's log may end in a partial record (harmless at the end
of the log, which recovery reads up to the last whole record) and LevelDB may
hold a sticky background error; a further append behind that partial record
would turn it into corruption in the middle of the log, which a paranoid open
refuses (LevelDB 1.22 written on after ENOSPC on a tmpfs: "Corruption:
checksum mismatch" at the next open, every time). Reads go on as before. Only
closing and opening the database again (``storage.chain.ChainStore.reopen``)
clears it; the reopened database holds every write that returned, and perhaps
the one that failed, whole or not at all.

Every failure is a ``StorageError`` naming the path and saying what to do:

- another process holds the database: "database <path> is in use by another
  process (LOCK held)";
- corruption: says so and refuses; nothing is ever repaired here (no
  ``plyvel.repair_db``), the operator restores a backup or resyncs.

``Database`` exposes bytes-in/bytes-out reads per ``Namespace`` (through
``prefixed_db``), one atomic write batch across namespaces (``write``), and
consistent read views (``snapshot``). ``close()`` closes live iterators and
snapshots, then the database; the object is a context manager. Storage knows
nothing of the bytes' format; a genesis hash is 32 opaque bytes to it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import plyvel

from storage.errors import StorageError, StorageWriteError, says_no_room
from storage.layout import (
    META_GENESIS,
    META_HEIGHT,
    META_SCHEMA,
    SCHEMA_VERSION,
    Namespace,
    decode_u64,
    encode_u64,
)
from storage.marker import (
    MARKER_NAME,
    RECOVER,
    DatabaseInUseError,
    GenesisMismatchError,
    Marker,
    check_data_dir,
    current_manifest,
    is_vacant,
    write_marker,
)

WriteOp = tuple[Namespace, bytes, bytes | None]
"""(namespace, key, value); a value of None deletes the key."""


class KeyValueReader(Protocol):
    """What the chain getters read through: the live database or a snapshot."""

    def get(self, ns: Namespace, key: bytes) -> bytes | None: ...

    def iterate(self, ns: Namespace, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]: ...


def _detail(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, bytes):
        return arg.decode("utf-8", "replace")
    return str(arg)


def translate_error(path: Path, exc: plyvel.Error) -> StorageError:
    """The ``StorageError`` an operator should see for a plyvel failure on ``path``."""
    detail = _detail(exc)
    if isinstance(exc, plyvel.CorruptionError):
        return StorageError(
            f"database {path} is corrupted ({detail}); refusing to use it. "
            "Nothing was repaired: restore the data directory from a backup "
            "or resync this node from its peers"
        )
    if isinstance(exc, plyvel.IOError) and ("LOCK" in detail or "lock " in detail):
        return DatabaseInUseError(f"database {path} is in use by another process (LOCK held)")
    if says_no_room(detail):
        return StorageWriteError(path, detail, disk_full=True)
    return StorageError(f"database {path}: {detail}")


def translate_write_error(path: Path, exc: plyvel.Error) -> StorageError:
    """What a failed write batch raises: corruption as ``translate_error`` says,
    anything else (an I/O error, a full disk) a ``StorageWriteError``."""
    error = translate_error(path, exc)
    if isinstance(error, StorageWriteError) or isinstance(exc, plyvel.CorruptionError):
        return error
    return StorageWriteError(path, _detail(exc))


class _Iterators:
    """Live plyvel iterators of one source, closed before the source goes away."""

    __slots__ = ("_live", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, Any] = {}

    def add(self, it: Any) -> None:
        with self._lock:
            self._live[id(it)] = it

    def discard(self, it: Any) -> None:
        with self._lock:
            self._live.pop(id(it), None)

    def close_all(self) -> None:
        with self._lock:
            live, self._live = list(self._live.values()), {}
        for it in live:
            it.close()


def _scan(
    path: Path,
    open_iterator: Callable[[], Any],
    strip: int,
    iterators: _Iterators,
    is_closed: Callable[[], bool],
) -> Iterator[tuple[bytes, bytes]]:
    """Yield (key[strip:], value) in key order; the plyvel iterator is opened on
    the first ``next`` and closed when the generator ends or is dropped."""
    if is_closed():
        raise StorageError(f"database {path} is closed")
    try:
        it = open_iterator()
    except plyvel.Error as exc:
        raise translate_error(path, exc) from exc
    iterators.add(it)
    try:
        for key, value in it:
            yield key[strip:], value
    except plyvel.Error as exc:
        raise translate_error(path, exc) from exc
    except RuntimeError as exc:
        if is_closed():
            raise StorageError(f"database {path} was closed during iteration") from exc
        raise
    finally:
        iterators.discard(it)
        it.close()


class DatabaseSnapshot:
    """A consistent read view of the whole database at the moment it was taken."""

    __slots__ = ("_closed", "_iterators", "_on_close", "_path", "_snap")

    def __init__(self, path: Path, snap: Any, on_close: Callable[[DatabaseSnapshot], None]) -> None:
        self._path = path
        self._snap = snap
        self._on_close = on_close
        self._iterators = _Iterators()
        self._closed = False

    def _is_closed(self) -> bool:
        return self._closed

    def get(self, ns: Namespace, key: bytes) -> bytes | None:
        if self._closed:
            raise StorageError(f"snapshot of database {self._path} is released")
        try:
            value: bytes | None = self._snap.get(ns.value + key, verify_checksums=True)
        except plyvel.Error as exc:
            raise translate_error(self._path, exc) from exc
        return value

    def iterate(self, ns: Namespace, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        full = ns.value + prefix
        return _scan(
            self._path,
            lambda: self._snap.iterator(prefix=full, verify_checksums=True),
            len(ns.value),
            self._iterators,
            self._is_closed,
        )

    def close(self) -> None:
        """Release the snapshot (and close its iterators); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._iterators.close_all()
        self._snap.close()
        self._on_close(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Database:
    """An open node database. Build it with ``open_database``."""

    def __init__(self, path: Path, raw: Any) -> None:
        self._path = path
        self._raw = raw
        self._ns: dict[Namespace, Any] = {ns: raw.prefixed_db(ns.value) for ns in Namespace}
        self._iterators = _Iterators()
        self._snapshots: dict[int, DatabaseSnapshot] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._marker: Marker | None = None
        self._write_failure: StorageError | None = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def write_failure(self) -> StorageError | None:
        """The error of the write that failed on this open database, or None; while
        there is one, every write is refused (see the module docstring)."""
        return self._write_failure

    @property
    def genesis_hash(self) -> bytes | None:
        """The genesis hash recorded for this database (``meta/genesis``), or None."""
        raw = self.get(Namespace.META, META_GENESIS)
        if raw is not None and len(raw) != 32:
            raise StorageError(
                f"database {self._path}: corrupted genesis hash (meta/genesis): "
                f"expected 32 bytes, found {len(raw)}"
            )
        return raw

    def record_genesis(self, genesis_hash: bytes) -> None:
        """Record the genesis hash this database belongs to (in the database and its
        marker). A different hash already recorded is a ``GenesisMismatchError``."""
        if len(genesis_hash) != 32:
            raise ValueError("a genesis hash is 32 bytes")
        recorded = self.genesis_hash
        if recorded is not None and recorded != genesis_hash:
            raise GenesisMismatchError(self._path, recorded.hex(), genesis_hash.hex())
        if recorded is None:
            self.write([(Namespace.META, META_GENESIS, genesis_hash)], sync=True)
        self.sync_marker()

    def sync_marker(self) -> None:
        """Rewrite the ``HYGEIA`` marker when what it records (schema version, genesis
        hash, the manifest CURRENT names) has changed."""
        self._check_open()
        genesis = self.genesis_hash
        marker = Marker(
            SCHEMA_VERSION,
            genesis.hex() if genesis is not None else None,
            current_manifest(self._path),
        )
        if marker != self._marker:
            write_marker(self._path, marker)
            self._marker = marker

    @property
    def closed(self) -> bool:
        return self._closed

    def _is_closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"database {self._path} is closed")

    def get(self, ns: Namespace, key: bytes) -> bytes | None:
        self._check_open()
        try:
            value: bytes | None = self._ns[ns].get(key, verify_checksums=True)
        except plyvel.Error as exc:
            raise translate_error(self._path, exc) from exc
        return value

    def iterate(self, ns: Namespace, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs of ``ns`` whose key starts with ``prefix``, in key order."""
        db = self._ns[ns]
        return _scan(
            self._path,
            lambda: db.iterator(prefix=prefix, verify_checksums=True),
            0,
            self._iterators,
            self._is_closed,
        )

    def write(self, ops: Iterable[WriteOp], *, sync: bool) -> None:
        """Apply ``ops`` as one atomic write batch (fsynced when ``sync``).

        If anything raises while the batch is being built, nothing is written. If
        LevelDB fails the write, ``StorageWriteError`` (``StorageError`` for
        corruption), and every later write raises too (``write_failure``).
        """
        self._check_open()
        failure = self._write_failure
        if failure is not None:
            detail = failure.detail if isinstance(failure, StorageWriteError) else str(failure)
            raise StorageWriteError(
                self._path,
                f"writes are refused since an earlier write failed ({detail}); "
                "the database must be reopened",
                disk_full=isinstance(failure, StorageWriteError) and failure.disk_full,
            )
        try:
            with self._raw.write_batch(transaction=True, sync=sync) as batch:
                for ns, key, value in ops:
                    if value is None:
                        batch.delete(ns.value + key)
                    else:
                        batch.put(ns.value + key, value)
        except plyvel.Error as exc:
            self._write_failure = translate_write_error(self._path, exc)
            raise self._write_failure from exc

    def snapshot(self) -> DatabaseSnapshot:
        """A consistent read view; close it (or use it as a context manager)."""
        with self._lock:
            self._check_open()
            snap = DatabaseSnapshot(self._path, self._raw.snapshot(), self._forget)
            self._snapshots[id(snap)] = snap
        return snap

    def _forget(self, snap: DatabaseSnapshot) -> None:
        with self._lock:
            self._snapshots.pop(id(snap), None)

    def approximate_size(self) -> int:
        """Bytes on disk: the sum of the sizes of the files in the directory."""
        total = 0
        try:
            entries = list(os.scandir(self._path))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:  # removed by a compaction meanwhile
                continue
        return total

    def close(self) -> None:
        """Close live iterators and snapshots, then the database; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            snapshots = list(self._snapshots.values())
        for snap in snapshots:
            snap.close()
        self._iterators.close_all()
        self._raw.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _check_schema(db: Database) -> None:
    raw = db.get(Namespace.META, META_SCHEMA)
    if raw is None:
        raise StorageError(
            f"database {db.path} has no schema version (meta/schema): it is not a Hygeia "
            f"database, or it is damaged; refusing to use it. Nothing was changed: {RECOVER}"
        )
    version = decode_u64(raw, f"schema version of database {db.path}")
    if version != SCHEMA_VERSION:
        raise _schema_error(db.path, version)


def _schema_error(path: Path, version: int) -> StorageError:
    return StorageError(
        f"database {path} has schema version {version}, but this build of hygeia "
        f"expects schema version {SCHEMA_VERSION}; refusing to open it "
        "(migrate the data directory or use another home)"
    )


def _check_genesis(db: Database, marker: Marker | None, expected: bytes | None) -> None:
    recorded = db.genesis_hash
    if marker is not None and marker.genesis_hash != (recorded.hex() if recorded else None):
        raise StorageError(
            f"database {db.path} is inconsistent: its {MARKER_NAME} marker records genesis "
            f"hash {marker.genesis_hash}, the database itself "
            f"{recorded.hex() if recorded else None} (files of two data directories mixed?); "
            f"refusing to use it. Nothing was changed: {RECOVER}"
        )
    if expected is not None and recorded is not None and recorded != expected:
        raise GenesisMismatchError(db.path, recorded.hex(), expected.hex())


def _check_tip(db: Database) -> None:
    raw = db.get(Namespace.META, META_HEIGHT)
    if raw is None:
        return
    height = decode_u64(raw, f"tip height (meta/height) of database {db.path}")
    if height >= 1 and db.get(Namespace.BLOCKS, encode_u64(height)) is None:
        raise StorageError(
            f"database {db.path} is damaged: its latest block (height {height}) is missing; "
            f"refusing to use it. Nothing was repaired: {RECOVER}"
        )


# LevelDB's memtable size. 4 MiB (the default) made compaction rewrite levels 1-2
# over and over under load; 64 MiB (two of them while one flushes) pushed a busy
# node's peak RSS past 300 MB once (330 MB); 32 MiB kept every node under 252 MB
# at the same throughput (docs/benchmarks.md)
WRITE_BUFFER_BYTES = 32 << 20


def _open_raw(where: Path, *, create: bool) -> Any:
    try:
        return plyvel.DB(
            str(where),
            create_if_missing=create,
            error_if_exists=create,
            paranoid_checks=True,
            bloom_filter_bits=10,
            write_buffer_size=WRITE_BUFFER_BYTES,
            # no Snappy: flushing a full 64 MiB memtable took ~2.7 s of a busy
            # core with it and ~0.5 s without, and that stall was the deepest dip
            # in sustained throughput; the price is about twice the disk space
            # (hex and JSON compress ~2:1), which a node can afford more easily
            # than CPU (docs/benchmarks.md). Existing files stay readable: LevelDB
            # records the compression of every block.
            compression=None,
        )
    except plyvel.Error as exc:
        raise translate_error(where, exc) from exc


def _create(where: Path, genesis_hash: bytes | None) -> Database:
    if not is_vacant(where):
        raise StorageError(
            f"{where} is not empty; refusing to create a database over what it holds"
        )
    try:
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StorageError(f"cannot create database directory {where}: {exc}") from exc
    db = Database(where, _open_raw(where, create=True))
    try:
        ops: list[WriteOp] = [(Namespace.META, META_SCHEMA, encode_u64(SCHEMA_VERSION))]
        if genesis_hash is not None:
            if len(genesis_hash) != 32:
                raise ValueError("a genesis hash is 32 bytes")
            ops.append((Namespace.META, META_GENESIS, genesis_hash))
        db.write(ops, sync=True)
        db.sync_marker()
    except BaseException:
        db.close()
        raise
    return db


def open_database(
    path: str | os.PathLike[str],
    *,
    create: bool = False,
    genesis_hash: bytes | None = None,
    adopt: bool = False,
) -> Database:
    """Open the node database in directory ``path``.

    ``create``: make a new database; the directory must be missing or empty.
    Otherwise the database must exist and pass the checks of the module docstring.
    ``genesis_hash``: the database must not belong to another genesis
    (``GenesisMismatchError``); it is recorded at creation, or later with
    ``Database.record_genesis``. ``adopt``: also open a database made before the
    ``HYGEIA`` marker existed (``CURRENT`` present, no marker); it is marked by
    ``record_genesis``, once the caller has checked it.
    """
    where = Path(path).absolute()
    if create:
        return _create(where, genesis_hash)
    marker = check_data_dir(where, genesis_hash=genesis_hash)
    if marker is None and not adopt:
        raise StorageError(
            f"database {where} has no {MARKER_NAME} marker: it was made by an older hygeia, "
            "or the marker was lost; refusing to open it. If it is this node's database, "
            "`hygeia init --home HOME --adopt-database` checks it against genesis.json and "
            f"marks it; otherwise {RECOVER}"
        )
    if marker is not None and marker.schema_version != SCHEMA_VERSION:
        raise _schema_error(where, marker.schema_version)
    db = Database(where, _open_raw(where, create=False))
    try:
        db._marker = marker
        _check_schema(db)
        _check_genesis(db, marker, genesis_hash)
        _check_tip(db)
        if marker is not None:  # one being adopted is marked by record_genesis
            db.sync_marker()
    except BaseException:
        db.close()
        raise
    return db
