"""The ``HYGEIA`` marker file of a data directory, and the checks made with it before
LevelDB is allowed to touch the directory.

LevelDB finds its tables through ``CURRENT`` (one line: the name of the live
``MANIFEST-NNNNNN``). Opened with ``create_if_missing`` on a directory whose
``CURRENT`` is gone, it makes a new empty database and deletes the old tables as
obsolete. So a database is only ever created on purpose (``hygeia init``,
``hygeia restore``), and every open first checks the directory with
``check_data_dir``, reading files only:

- ``HYGEIA`` (this module's marker, written when the database is created and
  after every open) must be there; it records the schema version, the genesis
  hash the database belongs to (hex; null until one is recorded) and the
  manifest ``CURRENT`` named at the last open;
- ``CURRENT`` must be there and name a manifest file that exists;
- the marker's schema version must be this build's, and its genesis hash the
  expected one (when the caller knows it).

Any failure is a ``StorageError`` saying what is wrong and how to recover;
nothing in the directory is written, renamed or deleted by a refusal.

Marker format (JSON, one object)::

    {"format": "hygeia-data/1", "schema_version": 1,
     "genesis_hash": "<64 hex>" | null, "manifest": "MANIFEST-000012" | null}
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from storage.errors import NO_ROOM_ERRNOS, StorageError, StorageWriteError
from storage.files import replace_atomically

MARKER_NAME: Final = "HYGEIA"
MARKER_FORMAT: Final = "hygeia-data/1"
MAX_MARKER_BYTES: Final = 4096
_MANIFEST = re.compile(r"MANIFEST-[0-9]{6,}")
_HEX64 = re.compile(r"[0-9a-f]{64}")

RECOVER: Final = (
    "restore the data directory from a backup (`hygeia restore`) or resync this node "
    "from its peers in a new home"
)


@dataclass(frozen=True)
class Marker:
    schema_version: int
    genesis_hash: str | None  # 64 lower-case hex, or None: no genesis recorded yet
    manifest: str | None  # the manifest CURRENT named when the database was last opened

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MARKER_FORMAT,
            "schema_version": self.schema_version,
            "genesis_hash": self.genesis_hash,
            "manifest": self.manifest,
        }


def marker_path(directory: Path) -> Path:
    return directory / MARKER_NAME


def read_marker(directory: Path) -> Marker | None:
    """The marker of ``directory``, or None when there is none; ``StorageError`` if it
    cannot be read or is malformed."""
    path = marker_path(directory)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_MARKER_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
    bad = f"{path} is damaged (not a {MARKER_FORMAT} marker); refusing to open the database: "
    if len(raw) > MAX_MARKER_BYTES:
        raise StorageError(bad + RECOVER)
    try:
        doc = json.loads(raw)
    except ValueError:
        raise StorageError(bad + RECOVER) from None
    if not isinstance(doc, dict) or doc.get("format") != MARKER_FORMAT:
        raise StorageError(bad + RECOVER)
    version = doc.get("schema_version")
    genesis = doc.get("genesis_hash")
    manifest = doc.get("manifest")
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or not (genesis is None or (isinstance(genesis, str) and _HEX64.fullmatch(genesis)))
        or not (manifest is None or (isinstance(manifest, str) and _MANIFEST.fullmatch(manifest)))
    ):
        raise StorageError(bad + RECOVER)
    return Marker(version, genesis, manifest)


def write_marker(directory: Path, marker: Marker) -> None:
    """Replace the marker atomically (temporary file, fsync, rename, fsync of the
    directory); ``StorageWriteError`` if that fails (the old marker is left)."""
    path = marker_path(directory)
    data = (json.dumps(marker.to_json(), indent=2) + "\n").encode()
    try:
        replace_atomically(path, data)
    except OSError as exc:
        raise StorageWriteError(
            path, str(exc.strerror or exc), disk_full=exc.errno in NO_ROOM_ERRNOS
        ) from None


def current_manifest(directory: Path) -> str | None:
    """The manifest named by ``CURRENT``, or None when there is no ``CURRENT``;
    ``StorageError`` when it cannot be read or holds something else."""
    path = directory / "CURRENT"
    try:
        with open(path, "rb") as f:
            raw = f.read(256)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
    name = raw.decode("ascii", "replace").strip()
    if not raw.endswith(b"\n") or not _MANIFEST.fullmatch(name):
        raise StorageError(
            f"database {directory} is corrupted: {path} does not name a manifest "
            f"(it holds {raw[:40]!r}); refusing to open it. Nothing was changed: {RECOVER}"
        )
    return name


def _entries(directory: Path) -> list[str]:
    """The names in ``directory`` but ``lost+found`` (a data directory may be a mount point)."""
    try:
        return sorted(name for name in os.listdir(directory) if name != "lost+found")
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise StorageError(f"{directory} is not a directory") from None
    except OSError as exc:
        raise StorageError(f"cannot list {directory}: {exc.strerror or exc}") from None


def is_vacant(directory: Path) -> bool:
    """True when ``directory`` does not exist or is empty: a database may be created there."""
    return not _entries(directory)


def check_data_dir(directory: Path, *, genesis_hash: bytes | None = None) -> Marker | None:
    """Check ``directory`` before LevelDB opens it (files are only read).

    Returns the marker, or None for a database made before markers existed
    (``CURRENT`` present, no marker): the caller decides whether to adopt it.
    ``StorageError`` for everything else that is wrong.
    """
    names = _entries(directory)
    if not names:
        raise StorageError(
            f"no database in {directory}: `hygeia init` creates one for a new node, "
            "`hygeia restore` restores one from a backup; refusing to create one here"
        )
    marker = read_marker(directory)
    manifest = current_manifest(directory)
    if marker is None:
        if manifest is None:
            shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
            raise StorageError(
                f"{directory} holds files ({shown}) "
                f"but neither LevelDB's CURRENT nor the {MARKER_NAME} marker: it is not an "
                f"intact Hygeia database; refusing to open it. Nothing was changed: {RECOVER}"
            )
        return None
    if manifest is None:
        known = ""
        if marker.manifest is not None:
            there = (directory / marker.manifest).is_file()
            known = (
                f" (when it was last opened, CURRENT named {marker.manifest}, which is "
                f"{'still there' if there else 'gone too'})"
            )
        raise StorageError(
            f"database {directory} is damaged: LevelDB's CURRENT file is missing{known}; "
            f"refusing to open it, since LevelDB would start an empty database over the old "
            f"tables. Nothing was changed: {RECOVER}"
        )
    if not (directory / manifest).is_file():
        raise StorageError(
            f"database {directory} is damaged: CURRENT names {manifest}, which is missing; "
            f"refusing to open it. Nothing was changed: {RECOVER}"
        )
    if genesis_hash is not None and marker.genesis_hash not in (None, genesis_hash.hex()):
        raise GenesisMismatchError(directory, marker.genesis_hash, genesis_hash.hex())
    return marker


class DatabaseInUseError(StorageError):
    """Another process holds the database's LOCK (the node is running)."""


class GenesisMismatchError(StorageError):
    """The database belongs to another genesis than the one the caller expects."""

    def __init__(self, directory: Path, recorded: str, expected: str) -> None:
        self.directory = directory
        self.recorded = recorded
        self.expected = expected
        super().__init__(
            f"database {directory} belongs to the chain with genesis hash {recorded}, but "
            f"the genesis given has hash {expected}; refusing to use it. Use the genesis.json "
            "this database was made with, or another data directory"
        )
