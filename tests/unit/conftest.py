"""Fixtures shared by the unit tests of ``hygeia client`` commands.

``node``: the fake node of ``test_cli_client`` answering the client's requests (and
recording the transactions posted); ``key``: a fresh member key file, by path. A test
module's own fixture of the same name takes precedence over these.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from node.core.keys import generate_key, save_key
from tests.unit.test_cli_client import FakeNode


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    fake = FakeNode()
    monkeypatch.setattr("node.cli.clients.common.request_json", fake)
    return fake


@pytest.fixture
def key(tmp_path: Path) -> str:
    path = tmp_path / "member.json"
    save_key(path, generate_key())
    return str(path)
