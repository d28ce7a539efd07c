"""A backup of a running node's database (``POST /admin/backup``), without stopping it.

The file is ``node.ops.backup``'s format (``write_snapshot``); what differs from
``backup_home`` (a stopped node) is where the snapshot comes from. It is taken
in the node's storage executor, so it is ordered after any block being written;
the long read of that snapshot then runs in a thread of its own, so block
commits are not held up meanwhile (docs/operator.md, "Back up").
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import structlog

from node.ops import backup
from node.setup.config import NodeConfig
from storage.db import Database

log = structlog.get_logger("hygeia.node")


async def backup_running(
    db: Database, storage_executor: Executor, cfg: NodeConfig, path: Path, *, include_node_key: bool
) -> dict[str, Any]:
    """Write a backup of ``db`` to ``path``; the manifest's summary (``Manifest.summary``)."""
    genesis = backup.read_json_file(cfg.genesis_path, "genesis.json")
    key = backup.read_json_file(cfg.node_key_path, "node key") if include_node_key else None
    loop = asyncio.get_running_loop()
    snap = await loop.run_in_executor(storage_executor, db.snapshot)
    try:
        manifest = await asyncio.to_thread(
            backup.write_snapshot,
            snap,
            path,
            genesis=genesis,
            node_key=key,
            documents=backup.documents_of(cfg, include_key=include_node_key),
        )
    finally:
        snap.close()
    log.info("backup written", path=str(path), height=manifest.height, keys=manifest.key_count)
    return manifest.summary()
