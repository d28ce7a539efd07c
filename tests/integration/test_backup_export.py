"""Backup through a running node's admin API, restore into a new home, audit exports."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api.admin import admin_app
from node.api.remote import ClientError, request_json
from node.core.proof import verify_proof
from node.exchange.store import DocumentStore, Erased
from node.ops import backup as bk
from node.ops import export as ex
from storage.chain import ChainStore
from tests.integration.cluster import Cluster


async def test_backup_while_running_restore_and_export(
    make_cluster: Callable[..., Cluster],
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    c = make_cluster(1)
    home = c.homes[0]
    home.cfg = dataclasses.replace(
        home.cfg, admin=dataclasses.replace(home.cfg.admin, enable_mutations=True)
    )
    await c.start(0)
    txs = [c.anchor_tx(member=0) for _ in range(5)]
    for tx in txs:
        await c.node(0).submit_tx(tx.wire)
    await c.wait_committed([tx.hash for tx in txs], [0])
    auth = {"Authorization": f"Bearer {home.token}"}

    async with http.post(f"{home.admin_url}/admin/backup", json={}, headers=auth) as resp:
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
    path = Path(answer["path"])
    assert path.parent == home.path / "backups"
    manifest = bk.verify_backup(path)
    assert manifest.height == answer["manifest"]["height"] >= 1
    assert manifest.node_key is None

    async with http.post(f"{home.admin_url}/admin/peers/{'ab' * 32}/disconnect", headers=auth) as r:
        assert r.status == 404

    done = await asyncio.to_thread(bk.restore_backup, path, tmp_path / "restored")
    with ChainStore.open(done.home / "data") as store:
        assert store.tip_height() == manifest.height
        tip = c.node(0).block_json(manifest.height)
        assert tip is not None
        raw = store.block_by_height(manifest.height)
        assert raw is not None
    assert done.node_id != home.node_id.hex()

    bad = tmp_path / "bad.hbk"
    data = bytearray(path.read_bytes())
    data[len(bk.MAGIC) + manifest.payload_bytes - 1] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(bk.BackupError, match="checksum"):
        bk.restore_backup(bad, tmp_path / "restored2")

    def fetch(p: str) -> Any:
        try:
            return request_json("GET", home.api_url + p)
        except ClientError as err:
            if err.status == 404:
                return None
            raise

    lines = await asyncio.to_thread(lambda: list(ex.blocks(fetch, 1, None)))
    assert {tx.hash for tx in txs} <= {line["tx"] for line in lines}
    keys = [v.public_key for v in c.genesis.validators]
    for line in lines:
        proof = c.node(0).proof_json(line["tx"])
        result = verify_proof(proof, c.chain_id, keys)
        assert (result.tx_hash, result.height, result.index) == (
            line["tx"],
            line["height"],
            line["index"],
        )


async def test_backup_of_a_running_nodes_documents(
    make_cluster: Callable[..., Cluster], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """``POST /admin/backup`` of a running node with documents, while blocks commit:
    the database snapshot, then the document store (and, asked for with the node
    key, its key); restored, the documents read back with the key, and the record
    erased before the backup is not in it."""
    c = make_cluster(1)
    home = c.homes[0]
    home.cfg = dataclasses.replace(
        home.cfg, admin=dataclasses.replace(home.cfg.admin, enable_mutations=True)
    )
    await c.start(0)
    node = c.node(0)
    assert node.documents is not None
    store = node.documents.store
    salt = bytes(range(32))
    kept, erased = "a1" * 32, "b2" * 32
    store.put(kept, "rpt-kept", '{"resourceType": "Observation"}', salt)
    store.put(erased, "rpt-gone", '{"resourceType": "Condition"}', salt)
    (erased_file,) = (home.path / "documents").rglob(f"{erased}.doc")
    erased_bytes = erased_file.read_bytes()
    store.erase_record("rpt-gone")

    txs = [c.anchor_tx(member=0) for _ in range(3)]
    for tx in txs:
        await node.submit_tx(tx.wire)
    auth = {"Authorization": f"Bearer {home.token}"}
    async with http.post(
        f"{home.admin_url}/admin/backup", json={"include_node_key": True}, headers=auth
    ) as resp:
        assert resp.status == 200, await resp.text()
        out = Path((await resp.json())["path"])
    manifest = bk.verify_backup(out)
    assert manifest.document_files == 2 and manifest.document_key is not None
    assert erased_bytes not in out.read_bytes()

    done = await asyncio.to_thread(bk.restore_backup, out, tmp_path / "restored")
    assert done.documents == 2 and done.document_key_restored
    restored = DocumentStore.open(done.home)
    assert restored.get(kept) == ('{"resourceType": "Observation"}', salt)
    with pytest.raises(Erased):
        restored.get(erased)
    with ChainStore.open(done.home / "data") as chain:
        assert chain.tip_height() == manifest.height


async def test_mutating_routes_absent_when_disabled(
    make_cluster: Callable[..., Cluster],
) -> None:
    c = make_cluster(1)
    await c.start(0)
    token = c.homes[0].token
    async with TestClient(TestServer(admin_app(c.node(0), token))) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert (await client.post("/admin/backup", headers=auth)).status == 404
        disconnect = f"/admin/peers/{'ab' * 32}/disconnect"
        assert (await client.post(disconnect, headers=auth)).status == 404
        assert (await client.get("/status", headers=auth)).status == 200
