"""Fixtures of the integration tests: clusters of in-process nodes and an HTTP session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.integration.cluster import Cluster


@pytest.fixture
async def make_cluster(tmp_path: Path) -> AsyncIterator[Callable[..., Cluster]]:
    """Build clusters in ``tmp_path``; every node still running is stopped at the end."""
    clusters: list[Cluster] = []

    def make(n: int = 4, consensus: dict[str, int] | None = None) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster{len(clusters)}", n, consensus)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        await cluster.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """A 4-validator testnet, no node started (tests start node 0 only)."""
    c = Cluster(tmp_path / "cluster", 4)
    try:
        yield c
    finally:
        await c.close()
