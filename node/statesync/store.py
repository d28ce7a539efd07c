"""The snapshots a node keeps on disk, to serve to joining nodes.

What it is for: at every ``snapshot_interval``-th checkpoint height c a validator
writes the app state of c as chunks (``node.statesync.manifest.cut_chunks``) and
a *pending* manifest; once checkpoint c is stable (a quorum signed its state
root) and the epoch links to c's set are on chain, ``complete`` adds the
signatures and links and the snapshot can be served. ``prune`` keeps the newest
``keep`` complete snapshots (the operator's ``sync.snapshot_keep``) and drops
pending ones older than the newest complete one (their checkpoint was never
made stable here: the node was down, or it is not a validator of that epoch).

Layout, one directory per snapshot under ``<home>/snapshots/``::

    <height, 12 digits>/chunk-<index, 6 digits>.bin   the chunks
    <height>/pending.bin                              the manifest before signatures
    <height>/manifest.bin                             the complete manifest

Every file is written to a temporary name, synced and renamed, so a crash leaves
a snapshot pending or complete, never half a file. Methods do blocking I/O: the
daemon calls them in a worker thread.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import msgspec

from node.statesync.manifest import (
    CheckpointSig,
    ChunkInfo,
    Manifest,
    SnapshotError,
    decode_manifest,
    encode_manifest,
)

__all__ = ["SnapshotStore"]

PENDING: Final = "pending.bin"
MANIFEST: Final = "manifest.bin"


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class SnapshotStore:
    """The snapshots under one directory (see the module docstring)."""

    def __init__(self, root: Path, keep: int) -> None:
        self.root = root
        self.keep = keep
        self._manifests: dict[int, bytes] = {}  # complete ones, read once

    def _dir(self, height: int) -> Path:
        return self.root / f"{height:012d}"

    def _heights(self, marker: str) -> list[int]:
        if not self.root.is_dir():
            return []
        out = []
        for entry in self.root.iterdir():
            if entry.name.isdigit() and (entry / marker).is_file():
                out.append(int(entry.name))
        return sorted(out)

    def complete_heights(self) -> list[int]:
        return self._heights(MANIFEST)

    def pending_heights(self) -> list[int]:
        return [h for h in self._heights(PENDING) if not (self._dir(h) / MANIFEST).exists()]

    def write_pending(self, base: Manifest, chunks: Iterable[tuple[ChunkInfo, bytes]]) -> Manifest:
        """Write the chunks of the snapshot at ``base.height`` and its pending manifest
        (``base`` with its chunk list); returns that manifest."""
        where = self._dir(base.height)
        if where.exists():
            shutil.rmtree(where)  # an unfinished earlier attempt at this height
        where.mkdir(parents=True)
        infos: list[ChunkInfo] = []
        for info, data in chunks:
            _write_file(where / f"chunk-{len(infos):06d}.bin", data)
            infos.append(info)
        pending = msgspec.structs.replace(base, chunks=infos)
        _write_file(where / PENDING, encode_manifest(pending))
        return pending

    def complete(
        self, height: int, epoch: int, checkpoint: list[CheckpointSig], epochs_json: bytes
    ) -> Manifest:
        """Sign off the pending snapshot of ``height``: its checkpoint signatures and epoch
        links go into ``manifest.bin``."""
        where = self._dir(height)
        pending = decode_manifest((where / PENDING).read_bytes())
        manifest = msgspec.structs.replace(
            pending, epoch=epoch, checkpoint=checkpoint, epochs=epochs_json
        )
        data = encode_manifest(manifest)
        _write_file(where / MANIFEST, data)
        self._manifests[height] = data
        return manifest

    def discard(self, height: int) -> None:
        """Delete one snapshot (a pending one that can no longer be completed)."""
        self._manifests.pop(height, None)
        shutil.rmtree(self._dir(height), ignore_errors=True)

    def prune(self) -> list[int]:
        """Apply the retention policy (module docstring); returns the heights deleted."""
        complete = self.complete_heights()
        doomed = complete[: max(0, len(complete) - self.keep)]
        newest = complete[-1] if complete else 0
        doomed += [h for h in self.pending_heights() if h < newest]
        for height in doomed:
            self.discard(height)
        return sorted(doomed)

    def newest_manifest(self) -> bytes | None:
        """The encoded manifest of the newest complete snapshot that reads back, or None."""
        for height in reversed(self.complete_heights()):
            data = self.manifest(height)
            if data is not None:
                return data
        return None

    def manifest(self, height: int) -> bytes | None:
        if height not in self._manifests:
            path = self._dir(height) / MANIFEST
            if not path.is_file():
                return None
            data = path.read_bytes()
            try:
                decode_manifest(data)
            except SnapshotError:
                return None  # damaged on disk: not served
            self._manifests[height] = data
        return self._manifests[height]

    def chunk(self, height: int, index: int) -> bytes | None:
        if index < 0 or self.manifest(height) is None:
            return None
        path = self._dir(height) / f"chunk-{index:06d}.bin"
        return path.read_bytes() if path.is_file() else None
