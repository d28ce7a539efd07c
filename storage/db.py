"""Opening a node's LevelDB database, and typed access to its namespaces.

``open_database(path)`` creates the directory if needed, opens LevelDB with
paranoid checks (corruption is an error, never skipped), and checks the schema
version in ``meta/schema``: a new, empty database gets the current version, one
of another version (or a non-empty one without a version) is refused. Every
plyvel failure becomes a ``StorageError`` naming the path:

- another process holds the database: "database <path> is in use by another
  process (LOCK held)";
- corruption: says so and refuses; nothing is ever repaired here (no
  ``plyvel.repair_db``), the operator restores a backup or resyncs.

``Database`` exposes bytes-in/bytes-out reads per ``Namespace`` (through
``prefixed_db``), one atomic write batch across namespaces (``write``), and
consistent read views (``snapshot``). ``close()`` closes live iterators and
snapshots, then the database; the object is a context manager. Storage knows
nothing of the bytes' format.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import plyvel

from storage.errors import StorageError
from storage.layout import META_SCHEMA, SCHEMA_VERSION, Namespace, decode_u64, encode_u64

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
        return StorageError(f"database {path} is in use by another process (LOCK held)")
    return StorageError(f"database {path}: {detail}")


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

    @property
    def path(self) -> Path:
        return self._path

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

    def is_empty(self) -> bool:
        """True when the database holds no key at all, in any namespace."""
        self._check_open()
        try:
            with self._raw.iterator(include_value=False) as it:
                return next(it, None) is None
        except plyvel.Error as exc:
            raise translate_error(self._path, exc) from exc

    def write(self, ops: Iterable[WriteOp], *, sync: bool) -> None:
        """Apply ``ops`` as one atomic write batch (fsynced when ``sync``).

        If anything raises while the batch is being built, nothing is written.
        """
        self._check_open()
        try:
            with self._raw.write_batch(transaction=True, sync=sync) as batch:
                for ns, key, value in ops:
                    if value is None:
                        batch.delete(ns.value + key)
                    else:
                        batch.put(ns.value + key, value)
        except plyvel.Error as exc:
            raise translate_error(self._path, exc) from exc

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
        if not db.is_empty():
            raise StorageError(
                f"database {db.path} has no schema version (meta/schema) but is not empty: "
                "it is not a Hygeia database; refusing to use it"
            )
        db.write([(Namespace.META, META_SCHEMA, encode_u64(SCHEMA_VERSION))], sync=True)
        return
    version = decode_u64(raw, f"schema version of database {db.path}")
    if version != SCHEMA_VERSION:
        raise StorageError(
            f"database {db.path} has schema version {version}, but this build of hygeia "
            f"expects schema version {SCHEMA_VERSION}; refusing to open it "
            "(migrate the data directory or use another home)"
        )


# LevelDB's memtable size. 4 MiB (the default) made compaction rewrite levels 1-2
# over and over under load; 64 MiB (two of them while one flushes) pushed a busy
# node's peak RSS past 300 MB once (330 MB); 32 MiB kept every node under 252 MB
# at the same throughput (docs/benchmarks.md)
WRITE_BUFFER_BYTES = 32 << 20


def open_database(path: str | os.PathLike[str]) -> Database:
    """Open (creating if needed) the node database in directory ``path``."""
    where = Path(path).absolute()
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create database directory {where}: {exc}") from exc
    try:
        raw = plyvel.DB(
            str(where),
            create_if_missing=True,
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
    db = Database(where, raw)
    try:
        _check_schema(db)
    except BaseException:
        db.close()
        raise
    return db
