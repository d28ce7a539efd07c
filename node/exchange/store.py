"""The custodian's documents: encrypted at rest, one file per version, erasable per record.

Layout in a node home (``DocumentStore.open(home)``)::

    <home>/document_key.json                        0600, the store's secret key
    <home>/documents/                               0700
    <home>/documents/records/<rk>/                  0700, one directory per record
    <home>/documents/records/<rk>/<version_id>.doc  0600, one version's text and salt
    <home>/documents/records/<rk>/erased.box        0600, the record's tombstone

``rk`` is a keyed BLAKE2b-128 of the record id (32 hex): the file names say
which versions belong together, not which records this node holds, and a
record id needs no escaping to be a file name.

Key file: ``{"type": "hygeia-document-key", "cipher": "xsalsa20-poly1305",
"key_hex": "<64 hex>"}``, written once by ``node.core.secretfile.write_secret``
(0600, never overwritten). Like the node key, a key file that other users may
read or write is refused (``node.core.keys.loose_mode_error``). A store whose
documents exist but whose key file is missing is refused, not given a new key
(that would make every document unreadable): restore the key from the backup.

A version file is ``MAGIC`` then a ``SecretBox`` (XSalsa20-Poly1305, random
nonce) of ``u32 header length | header JSON | text (UTF-8)``; the header names
the version id, the record id and the salt, and is checked on every read against
the file's place (version id from its name, record from its directory), so
files swapped or renamed on disk are refused, not served as another version.
Files are written to a temporary file (0600, fsynced), linked into place (which
fails rather than replace an existing file) and the directory is fsynced. A
version is never overwritten: the same content again is a no-op, other content
is ``VersionConflict``.

Erasure (``erase_record``) first writes the record's tombstone (a sealed list of
every version id ever erased in it, replaced atomically), then unlinks the
version files and fsyncs the directory; ``open`` finishes an erasure a crash
interrupted. ``get`` of an erased version raises ``Erased`` (after restarts too),
and ``put`` of an erased version is refused: its content never comes back. A new
version of an erased record may be stored (a record is erased as of the call).
Erasure unlinks, it does not overwrite: copies in backups are the backups' matter.

Backups (node/ops/backup.py, docs/backup.md) copy the files as they are, without
the key: ``backup_files`` lists them on disk (no store need be open, the node
may be running), each record's version files before its tombstone, which is
looked for only once they were listed to the caller; ``restore_file`` writes one
back (0600, in 0700 directories, never replacing a file); ``read_key_document``
and ``write_key_document`` carry the key file, which a backup holds only when
asked, as it does the node key.

Hostile disk: every read is bounded by the largest file the store can write,
opened without following symlinks and authenticated before a byte is believed;
anything else is a ``CorruptDocument`` naming the file, never another exception.
One process per home (the node's database lock guarantees that); within it the
store may be called from several threads.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import stat
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import nacl.exceptions
import nacl.secret

from node.core.hexstr import HEX64, is_hex
from node.core.secretfile import SecretFileError, read_secret_json, write_secret
from node.exchange.canonical import MAX_RESOURCE_BYTES, SALT_BYTES
from node.ledger.domains.ehr import RECORD_ID
from storage.files import UnsafeFile, fsync_dir, open_regular, replace_atomically

__all__ = [
    "DOCUMENTS_DIR",
    "KEY_FILE",
    "MAX_TEXT_BYTES",
    "BackupFile",
    "CorruptDocument",
    "DocumentKeyError",
    "DocumentStore",
    "DocumentStoreError",
    "Erased",
    "StoreStats",
    "TooLarge",
    "UnknownDocument",
    "VersionConflict",
    "backup_file_limit",
    "backup_files",
    "is_key_document",
    "read_key_document",
    "restore_file",
    "write_key_document",
]

KEY_FILE: Final = "document_key.json"
DOCUMENTS_DIR: Final = "documents"
MAX_TEXT_BYTES: Final = MAX_RESOURCE_BYTES

_KEY_TYPE = "hygeia-document-key"
_CIPHER = "xsalsa20-poly1305"
_DOC_MAGIC = b"HYGDOC1\n"
_TOMB_MAGIC = b"HYGERA1\n"
_DOC_FORMAT = "hygeia-document/1"
_TOMB_FORMAT = "hygeia-erased/1"
_DOC_SUFFIX = ".doc"
_TOMBSTONE = "erased.box"
_U32 = struct.Struct(">I")
_MAX_HEADER = 4096
_BOX_OVERHEAD = nacl.secret.SecretBox.NONCE_SIZE + nacl.secret.SecretBox.MACBYTES
_MAX_DOC_FILE = len(_DOC_MAGIC) + _BOX_OVERHEAD + _U32.size + _MAX_HEADER + MAX_TEXT_BYTES
_MAX_TOMB_FILE = 128 << 20  # 1,000,000 versions of 67 bytes, and room to spare
_RECORD_KEY = re.compile(r"[0-9a-f]{32}")
_TMP_MARK = ".tmp-"


class DocumentStoreError(Exception):
    """The store cannot do what was asked; the message is for the operator or client."""

    code = "store-error"


class DocumentKeyError(DocumentStoreError):
    """The key file is missing (with documents present), unreadable, malformed or loose."""

    code = "key-file"


class UnknownDocument(DocumentStoreError):
    """No version with this id is stored here."""

    code = "unknown"


class Erased(DocumentStoreError):
    """The version was erased (its record's erasure); its text and salt are gone."""

    code = "erased"


class TooLarge(DocumentStoreError):
    """A text over ``MAX_TEXT_BYTES`` in UTF-8."""

    code = "too-large"


class VersionConflict(DocumentStoreError):
    """The version is stored already with other content (or under another record)."""

    code = "conflict"


class CorruptDocument(DocumentStoreError):
    """A file of the store that is not what the store wrote (damaged, altered or swapped)."""

    code = "corrupt"


@dataclass(frozen=True)
class StoreStats:
    versions: int  # stored, readable or not
    records: int  # with at least one stored version
    bytes: int  # of the stored version files on disk
    erased_versions: int


# ------------------------------------------------------------------ key file
def _load_key_file(path: Path) -> bytes:
    try:
        doc = read_secret_json(path, "document key file")
    except SecretFileError as exc:
        raise DocumentKeyError(str(exc)) from None
    if (
        not isinstance(doc, dict)
        or doc.get("type") != _KEY_TYPE
        or doc.get("cipher") != _CIPHER
        or not is_hex(doc.get("key_hex"), 32)
    ):
        raise DocumentKeyError(
            f"document key file {path} is malformed: expected "
            f'{{"type": "{_KEY_TYPE}", "cipher": "{_CIPHER}", "key_hex": "<64 hex>"}}'
        )
    return bytes.fromhex(doc["key_hex"])


def _new_key_file(path: Path) -> bytes:
    key = secrets.token_bytes(32)
    doc = {"type": _KEY_TYPE, "cipher": _CIPHER, "key_hex": key.hex()}
    try:
        write_secret(
            path, (json.dumps(doc, indent=2) + "\n").encode(), force=False, what="document key"
        )
    except SecretFileError as exc:
        raise DocumentKeyError(str(exc)) from None
    except OSError as exc:
        raise DocumentKeyError(f"cannot write document key file {path}: {exc.strerror}") from None
    return key


def _subkey(master: bytes, label: bytes) -> bytes:
    return hashlib.blake2b(label, key=master, digest_size=32).digest()


# ------------------------------------------------------------------ files
def _read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, symlinks not followed."""
    try:
        fd, _ = open_regular(path, limit)
    except FileNotFoundError:
        raise
    except UnsafeFile as exc:
        raise CorruptDocument(describe_unsafe(exc)) from None
    except OSError as exc:
        raise DocumentStoreError(f"cannot read {path}: {exc.strerror}") from None
    try:
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise CorruptDocument(f"{path} grew past the largest file the store writes")
        return b"".join(chunks)
    except OSError as exc:
        raise DocumentStoreError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def describe_unsafe(exc: UnsafeFile) -> str:
    """What is wrong with a file in the store that ``open_regular`` refused."""
    if exc.reason == "symlink":
        return f"{exc.path} is a symbolic link; the store never writes one"
    if exc.reason == "not-regular":
        return f"{exc.path} is not a regular file; the store never writes one"
    return f"{exc.path} is {exc.size} bytes, more than the store writes"


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data`` (0600, durable); ``FileExistsError`` if it exists."""
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}-{threading.get_ident()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)


def _mkdir_private(path: Path) -> None:
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    os.chmod(path, 0o700)  # whatever the umask
    fsync_dir(path.parent)


# ------------------------------------------------------------------ the store
class DocumentStore:
    """Documents of one node home; see the module's header."""

    def __init__(self, home: Path, key_path: Path, master: bytes) -> None:
        self._home = home
        self._key_path = key_path
        self._dir = home / DOCUMENTS_DIR
        self._records = self._dir / "records"
        self._box = nacl.secret.SecretBox(_subkey(master, b"hygeia-document-box/1"))
        self._names = _subkey(master, b"hygeia-document-names/1")
        self._lock = threading.RLock()
        self._where: dict[str, str] = {}  # version id -> record key (stored versions)
        self._sizes: dict[str, int] = {}  # version id -> bytes on disk
        self._erased: dict[str, set[str]] = {}  # record key -> version ids erased
        self._erased_versions: set[str] = set()

    # -------------------------------------------------------------- opening
    @classmethod
    def open(cls, home: str | os.PathLike[str], *, key_path: Path | None = None) -> DocumentStore:
        """The store of ``home``: ``<home>/documents/`` and the key file (default
        ``<home>/document_key.json``), both created on first use."""
        home_dir = Path(home)
        key_file = key_path if key_path is not None else home_dir / KEY_FILE
        docs = home_dir / DOCUMENTS_DIR
        try:
            home_dir.mkdir(parents=True, exist_ok=True)
            _mkdir_private(docs)
            st = docs.lstat()
            if not stat.S_ISDIR(st.st_mode):
                raise DocumentStoreError(f"{docs} is not a directory")
            if st.st_mode & 0o077:
                raise DocumentStoreError(
                    f"documents directory {docs} has mode {stat.S_IMODE(st.st_mode):04o}: "
                    f"other users may read or change it; refusing to use it "
                    f"(fix it with chmod 700 {docs})"
                )
            _mkdir_private(docs / "records")
        except OSError as exc:
            raise DocumentStoreError(f"cannot create {docs}: {exc.strerror}") from None
        try:
            populated = any((docs / "records").iterdir())
        except OSError as exc:
            raise DocumentStoreError(f"cannot list {docs}: {exc.strerror}") from None
        if key_file.exists() or key_file.is_symlink():
            master = _load_key_file(key_file)
        elif populated:
            raise DocumentKeyError(
                f"{docs} holds documents but the document key file {key_file} is missing: "
                "without it they cannot be read; restore the key file from a backup "
                "(a new key is never made over existing documents)"
            )
        else:
            master = _new_key_file(key_file)
        store = cls(home_dir, key_file, master)
        with store._lock:
            try:
                store._scan()
            except OSError as exc:
                raise DocumentStoreError(f"cannot read {docs}: {exc.strerror}") from None
        return store

    def _scan(self) -> None:
        """Index the version files and tombstones; finish interrupted erasures."""
        record_dirs = sorted(os.scandir(self._records), key=lambda e: e.name)
        for entry in record_dirs:
            if not (_RECORD_KEY.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)):
                continue  # not the store's (an operator's note, a stray file): left alone
            rk = entry.name
            rdir = Path(entry.path)
            names = sorted(os.listdir(rdir))
            if _TOMBSTONE in names:
                erased = self._read_tombstone(rk)
                self._erased[rk] = erased
                self._erased_versions |= erased
            unfinished = False
            for name in names:
                path = rdir / name
                if _TMP_MARK in name and name.startswith("."):
                    with contextlib.suppress(OSError):
                        path.unlink()  # a write a crash interrupted
                    continue
                vid = name.removesuffix(_DOC_SUFFIX)
                if not (name.endswith(_DOC_SUFFIX) and HEX64.fullmatch(vid)):
                    continue
                if vid in self._erased_versions:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()  # an erasure a crash interrupted
                    unfinished = True
                    continue
                if vid in self._where:
                    raise CorruptDocument(
                        f"version {vid} is stored in two records ({self._where[vid]} and {rk}); "
                        "the documents directory was altered"
                    )
                self._where[vid] = rk
                self._sizes[vid] = path.lstat().st_size
            if unfinished:
                fsync_dir(rdir)

    # -------------------------------------------------------------- names and boxes
    def _record_key(self, record_id: str) -> str:
        return hashlib.blake2b(record_id.encode(), key=self._names, digest_size=16).hexdigest()

    def _doc_path(self, rk: str, version_id: str) -> Path:
        return self._records / rk / f"{version_id}{_DOC_SUFFIX}"

    def _seal_document(self, version_id: str, record_id: str, text: bytes, salt: bytes) -> bytes:
        header = json.dumps(
            {
                "format": _DOC_FORMAT,
                "version_id": version_id,
                "record_id": record_id,
                "salt": salt.hex(),
                "text_bytes": len(text),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        plain = _U32.pack(len(header)) + header + text
        return _DOC_MAGIC + bytes(self._box.encrypt(plain))

    def _open_document(self, path: Path, rk: str, version_id: str) -> tuple[str, str, bytes]:
        """``(record_id, text, salt)`` of a version file, checked against its place."""
        raw = _read_bounded(path, _MAX_DOC_FILE)
        if not raw.startswith(_DOC_MAGIC):
            raise CorruptDocument(f"{path} is not a document file (bad magic)")
        try:
            plain = self._box.decrypt(raw[len(_DOC_MAGIC) :])
        except (nacl.exceptions.CryptoError, ValueError):
            raise CorruptDocument(
                f"{path} does not decrypt with this store's key: damaged, altered, or from "
                "another node's store"
            ) from None
        try:
            (hlen,) = _U32.unpack_from(plain)
            if hlen > _MAX_HEADER:
                raise ValueError("header too long")
            header = json.loads(plain[_U32.size : _U32.size + hlen])
            text_bytes = plain[_U32.size + hlen :]
            record_id = header["record_id"]
            salt = header["salt"]
            stored_version = header["version_id"]
            ok = (
                header["format"] == _DOC_FORMAT
                and header["text_bytes"] == len(text_bytes)
                and isinstance(record_id, str)
                and is_hex(salt, SALT_BYTES)
            )
            text = text_bytes.decode("utf-8")
        except (ValueError, KeyError, TypeError, struct.error):
            raise CorruptDocument(f"{path}: its header is malformed") from None
        if not ok:
            raise CorruptDocument(f"{path}: its header is malformed")
        if stored_version != version_id or self._record_key(record_id) != rk:
            raise CorruptDocument(
                f"{path} holds another version or record than its name says: files were "
                "moved or swapped on disk"
            )
        return record_id, text, bytes.fromhex(salt)

    def _read_tombstone(self, rk: str) -> set[str]:
        path = self._records / rk / _TOMBSTONE
        raw = _read_bounded(path, _MAX_TOMB_FILE)
        if not raw.startswith(_TOMB_MAGIC):
            raise CorruptDocument(f"{path} is not a tombstone file (bad magic)")
        try:
            doc = json.loads(self._box.decrypt(raw[len(_TOMB_MAGIC) :]))
            versions = doc["versions"]
            ok = (
                doc["format"] == _TOMB_FORMAT
                and doc["record_key"] == rk
                and isinstance(versions, list)
                and all(isinstance(v, str) and HEX64.fullmatch(v) for v in versions)
            )
        except (nacl.exceptions.CryptoError, ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise CorruptDocument(
                f"tombstone {path} is damaged or altered: which versions of the record were "
                "erased is unknown; restore it from a backup or remove the record's directory"
            )
        return set(versions)

    def _write_tombstone(self, rk: str, versions: Iterable[str]) -> None:
        doc = {"format": _TOMB_FORMAT, "record_key": rk, "versions": sorted(versions)}
        data = _TOMB_MAGIC + bytes(self._box.encrypt(json.dumps(doc).encode()))
        replace_atomically(self._records / rk / _TOMBSTONE, data, mode=0o600)

    # -------------------------------------------------------------- the API
    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def key_path(self) -> Path:
        return self._key_path

    def put(self, version_id: str, record_id: str, text: str, salt: bytes) -> bool:
        """Store one version; True when written, False when it was stored already with
        this content. ``TooLarge``, ``Erased`` (an erased version), ``VersionConflict``
        (stored with other content), ``ValueError`` for malformed arguments."""
        if not HEX64.fullmatch(version_id):
            raise ValueError("version_id must be 64 lower-case hex digits")
        if not isinstance(record_id, str) or not RECORD_ID.fullmatch(record_id):
            raise ValueError("record_id must match [A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
        if len(salt) != SALT_BYTES:
            raise ValueError(f"a salt is {SALT_BYTES} bytes, got {len(salt)}")
        if len(text) > MAX_TEXT_BYTES:
            raise TooLarge(f"a document's text is at most {MAX_TEXT_BYTES} bytes")
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text holds a lone surrogate: it has no UTF-8 form") from None
        if len(data) > MAX_TEXT_BYTES:
            raise TooLarge(f"a document's text is at most {MAX_TEXT_BYTES} bytes")
        salt = bytes(salt)
        rk = self._record_key(record_id)
        with self._lock:
            if version_id in self._erased_versions:
                raise Erased(f"version {version_id} was erased; its content is not stored again")
            if version_id in self._where:
                self._same_or_conflict(version_id, record_id, text, salt)
                return False
            path = self._doc_path(rk, version_id)
            sealed = self._seal_document(version_id, record_id, data, salt)
            try:
                _mkdir_private(path.parent)
                _write_new(path, sealed)
            except FileExistsError:  # not in the index: put there behind the store's back
                raise VersionConflict(
                    f"{path} exists but was not there when the store was opened"
                ) from None
            except OSError as exc:
                raise DocumentStoreError(f"cannot write {path}: {exc.strerror}") from None
            self._where[version_id] = rk
            self._sizes[version_id] = len(sealed)
        return True

    def _same_or_conflict(self, version_id: str, record_id: str, text: str, salt: bytes) -> None:
        rk = self._where[version_id]
        if rk != self._record_key(record_id):
            raise VersionConflict(f"version {version_id} is stored under another record")
        stored_record, stored_text, stored_salt = self._open_document(
            self._doc_path(rk, version_id), rk, version_id
        )
        if (stored_record, stored_text, stored_salt) != (record_id, text, salt):
            raise VersionConflict(
                f"version {version_id} is stored already with other content; "
                "a stored version is never replaced"
            )

    def get(self, version_id: str) -> tuple[str, bytes]:
        """``(text, salt)`` of a stored version: ``Erased``, ``UnknownDocument``, or
        ``CorruptDocument`` / ``DocumentStoreError`` for a file that cannot be read."""
        if not isinstance(version_id, str) or not HEX64.fullmatch(version_id):
            raise UnknownDocument("a version id is 64 lower-case hex digits")
        with self._lock:
            if version_id in self._erased_versions:
                raise Erased(f"version {version_id} was erased")
            rk = self._where.get(version_id)
        if rk is None:
            raise UnknownDocument(f"no version {version_id} is stored here")
        try:
            _, text, salt = self._open_document(self._doc_path(rk, version_id), rk, version_id)
        except FileNotFoundError:
            with self._lock:
                if version_id in self._erased_versions:  # erased while we looked it up
                    raise Erased(f"version {version_id} was erased") from None
            raise CorruptDocument(
                f"version {version_id}'s file {self._doc_path(rk, version_id)} is gone "
                "(removed behind the store's back)"
            ) from None
        return text, salt

    def status(self, version_id: str) -> str:
        """``stored``, ``erased`` or ``unknown`` (from the index; no file is read)."""
        with self._lock:
            if version_id in self._erased_versions:
                return "erased"
            return "stored" if version_id in self._where else "unknown"

    def erase_record(self, record_id: str) -> list[str]:
        """Erase every stored version of ``record_id`` (text and salt), keeping the fact;
        the version ids erased by this call, sorted (empty if none was stored)."""
        if not isinstance(record_id, str) or not RECORD_ID.fullmatch(record_id):
            raise ValueError("record_id must match [A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
        rk = self._record_key(record_id)
        with self._lock:
            versions = sorted(v for v, r in self._where.items() if r == rk)
            if not versions:
                return []
            rdir = self._records / rk
            before = self._erased.get(rk, set())
            try:
                self._write_tombstone(rk, before | set(versions))  # first: the fact
                for vid in versions:
                    with contextlib.suppress(FileNotFoundError):
                        self._doc_path(rk, vid).unlink()
            except OSError as exc:
                raise DocumentStoreError(f"cannot erase in {rdir}: {exc.strerror}") from None
            fsync_dir(rdir)
            self._erased[rk] = before | set(versions)
            self._erased_versions.update(versions)
            for vid in versions:
                del self._where[vid]
                del self._sizes[vid]
        return versions

    def stats(self) -> StoreStats:
        with self._lock:
            return StoreStats(
                versions=len(self._where),
                records=len(set(self._where.values())),
                bytes=sum(self._sizes.values()),
                erased_versions=len(self._erased_versions),
            )

    def paths(self) -> list[Path]:
        """Every file a backup of the store must hold: the key file first (a secret, as
        the node key is), then the version files and tombstones, sorted."""
        with self._lock:
            files = [self._doc_path(rk, vid) for vid, rk in self._where.items()]
            files += [self._records / rk / _TOMBSTONE for rk in self._erased]
        return [self._key_path, *sorted(files)]


# ------------------------------------------------------------------ backups
_BACKUP_NAME = re.compile(r"records/([0-9a-f]{32})/(?:[0-9a-f]{64}\.doc|erased\.box)")


@dataclass(frozen=True)
class BackupFile:
    """One file of a store as a backup names it."""

    name: str  # relative to the documents directory: records/<rk>/<version>.doc or .../erased.box
    path: Path
    limit: int  # the largest such file the store writes
    is_version: bool  # a version file (an erasure unlinks it), not a tombstone


def backup_file_limit(name: str) -> int | None:
    """The largest size of a store file called ``name`` (as ``BackupFile.name``), or None
    when the store never writes that name: a backup entry to refuse."""
    if not isinstance(name, str) or not _BACKUP_NAME.fullmatch(name):
        return None
    return _MAX_TOMB_FILE if name.endswith("/" + _TOMBSTONE) else _MAX_DOC_FILE


def backup_files(documents: str | os.PathLike[str]) -> Iterator[BackupFile]:
    """The store's files under ``documents`` (``<home>/documents``), read from disk: the
    key is not needed and the store may be open in a running node meanwhile.

    Records come in name order; in each, its version files (sorted), then its tombstone.
    The tombstone is looked for only when the caller asks for the entry after the last
    version (this is a generator), so a tombstone an erasure wrote while those versions
    were copied is the one listed. The listing is live: a file listed may be gone when it
    is opened (erased meanwhile), which the caller skips. Names the store does not write
    (strays, temporaries) are not listed; ``OSError`` if a directory cannot be read."""
    records = Path(documents) / "records"
    try:
        with os.scandir(records) as it:
            keys = sorted(
                e.name
                for e in it
                if _RECORD_KEY.fullmatch(e.name) and e.is_dir(follow_symlinks=False)
            )
    except FileNotFoundError:
        return
    for rk in keys:
        rdir = records / rk
        try:
            names = sorted(os.listdir(rdir))
        except FileNotFoundError:
            continue
        for name in names:
            if name.endswith(_DOC_SUFFIX) and HEX64.fullmatch(name.removesuffix(_DOC_SUFFIX)):
                yield BackupFile(f"records/{rk}/{name}", rdir / name, _MAX_DOC_FILE, True)
        tombstone = rdir / _TOMBSTONE
        if os.path.lexists(tombstone):
            yield BackupFile(f"records/{rk}/{_TOMBSTONE}", tombstone, _MAX_TOMB_FILE, False)


def _private_dir(path: Path) -> None:
    """``path`` as a directory of mode 0700: created so, or already one that only its
    owner may use (anything else: ``DocumentStoreError``, nothing changed)."""
    _mkdir_private(path)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise DocumentStoreError(f"{path} is not a directory")
    if st.st_mode & 0o077:
        raise DocumentStoreError(
            f"{path} has mode {stat.S_IMODE(st.st_mode):04o}: other users may read or change "
            f"it; refusing to write documents there (fix it with chmod 700 {path})"
        )


def restore_file(documents: str | os.PathLike[str], name: str, chunks: Iterable[bytes]) -> int:
    """Create the store file ``name`` (a ``BackupFile.name``) under ``documents`` from
    ``chunks``; its size. The file is written to a temporary (0600, fsynced) and linked
    into place, so it never replaces a file (``FileExistsError``) and a crash leaves no
    partial file under a store's name (``DocumentStore.open`` removes the temporary).
    Missing directories are made 0700. ``ValueError``: a name the store never writes,
    or more bytes than such a file holds; ``DocumentStoreError``: a directory in the
    way that others may use."""
    limit = backup_file_limit(name)
    if limit is None:
        raise ValueError(f"{name!r} is not the name of a document store file")
    _, rk, file_name = name.split("/")
    docs = Path(documents)
    for directory in (docs, docs / "records", docs / "records" / rk):
        _private_dir(directory)
    path = docs / "records" / rk / file_name
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "a document file is there already", str(path))
    tmp = path.with_name(f".{file_name}{_TMP_MARK}{os.getpid()}-{threading.get_ident()}")
    size = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise ValueError(f"{name}: more than the {limit} bytes such a file holds")
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)
    return size


def read_key_document(path: Path) -> dict[str, str]:
    """The key file at ``path`` as JSON, checked as ``DocumentStore.open`` checks it
    (``DocumentKeyError``: missing, loose, malformed)."""
    key = _load_key_file(path)
    return {"type": _KEY_TYPE, "cipher": _CIPHER, "key_hex": key.hex()}


def is_key_document(doc: object) -> bool:
    """Whether ``doc`` is a key file's JSON (as ``read_key_document`` gives it)."""
    return (
        isinstance(doc, dict)
        and doc.get("type") == _KEY_TYPE
        and doc.get("cipher") == _CIPHER
        and is_hex(doc.get("key_hex"), 32)
    )


def write_key_document(path: Path, doc: object) -> None:
    """Write a key file (from ``read_key_document``) at ``path``: 0600, never replacing
    one (``DocumentKeyError``, also for a ``doc`` that is not a key file's JSON)."""
    if not is_key_document(doc):
        raise DocumentKeyError("not a document key file's content")
    assert isinstance(doc, dict)
    data = {"type": _KEY_TYPE, "cipher": _CIPHER, "key_hex": doc["key_hex"]}
    try:
        write_secret(
            path, (json.dumps(data, indent=2) + "\n").encode(), force=False, what="document key"
        )
    except SecretFileError as exc:
        raise DocumentKeyError(str(exc)) from None
    except OSError as exc:
        raise DocumentKeyError(f"cannot write document key file {path}: {exc.strerror}") from None
