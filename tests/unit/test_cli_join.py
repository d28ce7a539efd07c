"""Joining a chain by state sync, the operator's side: the ``[sync]`` snapshot keys and
their frame check, ``hygeia init --join NODE_ID@HOST:PORT --genesis FILE``, and how
``hygeia status --wait-synced`` reads the ``state_sync`` object of ``/status``."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from node.cli import status as cli_status
from node.cli.main import main
from node.net.addr import Peer
from node.setup.config import SNAPSHOT_FRAME_HEADROOM, ConfigError, default_config, load_config
from node.setup.genesis import (
    default_consensus_params,
    load_genesis,
    parse_genesis,
    write_genesis,
)
from node.setup.home import check_home, load_public_key

PEER_ID = "ab" * 32
PEER = f"{PEER_ID}@10.0.0.7:26656"


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env={"HYGEIA_HOME": None, **(env or {})})


def make_genesis(path: Path, chain_id: str = "hygeia-join") -> Path:
    doc = {
        "chain_id": chain_id,
        "genesis_time": 0,
        "consensus": default_consensus_params(),
        "validators": [{"name": "v", "member": "m", "node_key": PEER_ID, "p2p": "10.0.0.7:26656"}],
        "members": [{"id": "m", "name": "M", "roles": ["hospital"], "keys": ["11" * 32]}],
    }
    write_genesis(path, parse_genesis(doc))
    return path


@pytest.fixture
def genesis(tmp_path: Path) -> Path:
    return make_genesis(tmp_path / "given-genesis.json")


# ------------------------------------------------------------------ config keys
def test_sync_keys_defaults_and_environment(tmp_path: Path) -> None:
    sync = default_config(tmp_path).sync
    assert (sync.state_sync, sync.snapshot_interval, sync.snapshot_keep) == (False, 64, 3)
    assert sync.snapshot_chunk_bytes == 1 << 20
    env = {
        "HYGEIA_SYNC_STATE_SYNC": "yes",
        "HYGEIA_SYNC_SNAPSHOT_INTERVAL": "0",
        "HYGEIA_SYNC_SNAPSHOT_KEEP": "5",
    }
    sync = load_config(tmp_path, env=env, require_file=False).sync
    assert (sync.state_sync, sync.snapshot_interval, sync.snapshot_keep) == (True, 0, 5)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[sync]\nsnapshot_interval = -1", "sync.snapshot_interval: must be"),
        ("[sync]\nsnapshot_keep = 0", "sync.snapshot_keep: must be a positive integer"),
        ("[sync]\nsnapshot_chunk_bytes = 0", "sync.snapshot_chunk_bytes: must be a positive"),
        ('[sync]\nstate_sync = "maybe"', "sync.state_sync: expected a boolean"),
    ],
)
def test_sync_keys_are_typed(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "config.toml").write_text(toml + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path, env={})


def test_snapshot_chunk_must_fit_in_a_frame(tmp_path: Path) -> None:
    frame = 1 << 20
    (tmp_path / "config.toml").write_text(
        f"[p2p]\nmax_frame_bytes = {frame}\n[mempool]\nmax_tx_bytes = 1024\n"
        f"[sync]\nsnapshot_chunk_bytes = {frame - SNAPSHOT_FRAME_HEADROOM + 1}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path, env={})
    message = str(err.value)
    assert "sync.snapshot_chunk_bytes" in message and "p2p.max_frame_bytes" in message
    assert str(tmp_path / "config.toml") in message
    ok = {"HYGEIA_SYNC_SNAPSHOT_CHUNK_BYTES": str(frame - SNAPSHOT_FRAME_HEADROOM)}
    assert load_config(tmp_path, env=ok).sync.snapshot_chunk_bytes == frame - (64 << 10)


def test_config_check_refuses_a_chunk_too_large_for_the_frame(tmp_path: Path) -> None:
    home = tmp_path / "n"
    assert run("init", "--home", str(home)).exit_code == 0
    result = run(
        "config",
        "check",
        "--home",
        str(home),
        env={"HYGEIA_SYNC_SNAPSHOT_CHUNK_BYTES": str(4 << 20)},
    )
    assert result.exit_code == 1
    assert "Error: environment variable HYGEIA_SYNC_SNAPSHOT_CHUNK_BYTES" in result.output
    assert "sync.snapshot_chunk_bytes (4194304) must be at most p2p.max_frame_bytes" in (
        result.output
    )


# ------------------------------------------------------------------ init --join
def test_init_join_writes_peer_state_sync_and_genesis(tmp_path: Path, genesis: Path) -> None:
    home = tmp_path / "joiner"
    result = run("init", "--home", str(home), "--join", PEER.upper(), "--genesis", str(genesis))
    assert result.exit_code == 0, result.output
    assert (home / "genesis.json").read_bytes() == genesis.read_bytes()
    doc = tomllib.loads((home / "config.toml").read_text())
    assert doc["p2p"]["peers"] == [PEER]  # the id as the config spells it (lower case)
    assert doc["sync"]["state_sync"] is True
    cfg = load_config(home, env={})
    assert cfg.p2p.peers == (Peer(PEER_ID, "10.0.0.7:26656"),)
    assert cfg.sync.state_sync is True
    report = check_home(cfg, start=False)  # the database has genesis.json's hash already
    assert report.warnings == [] and report.height == 0
    node_id = load_public_key(home / "node_key.json")
    genesis_hash = load_genesis(genesis).genesis_hash_hex()
    assert f"copied from {genesis}; chain hygeia-join, genesis hash {genesis_hash}" in (
        result.output
    )
    assert f"join peer    {PEER}" in result.output
    next_line = result.output.splitlines()[-1]
    assert next_line.startswith("next: register this node's key on chain")
    assert f"hygeia client node register --node-key {node_id} --p2p HOST:26656" in next_line
    assert f"hygeia start --home {home}" in next_line
    assert f"hygeia status --home {home} --wait-synced" in next_line


def test_init_genesis_alone_copies_it_without_joining(tmp_path: Path, genesis: Path) -> None:
    home = tmp_path / "n"
    result = run("init", "--home", str(home), "--genesis", str(genesis))
    assert result.exit_code == 0, result.output
    assert (home / "genesis.json").read_bytes() == genesis.read_bytes()
    cfg = load_config(home, env={})
    assert cfg.p2p.peers == () and cfg.sync.state_sync is False
    assert result.output.splitlines()[-1] == f"next: `hygeia config check --home {home}`"


@pytest.mark.parametrize(
    "bad",
    [
        "10.0.0.7:26656",  # no id
        f"{PEER_ID[:-2]}@10.0.0.7:26656",  # id too short
        f"{PEER_ID}@10.0.0.7",  # no port
        f"{PEER_ID}@10.0.0.7:70000",
        f"{PEER_ID}@::1:26656",  # IPv6 without brackets
    ],
)
def test_init_join_refuses_a_bad_peer(tmp_path: Path, genesis: Path, bad: str) -> None:
    home = tmp_path / "n"
    result = run("init", "--home", str(home), "--join", bad, "--genesis", str(genesis))
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--join'" in result.output
    assert not home.exists()


def test_init_join_needs_genesis_and_not_adopt(tmp_path: Path, genesis: Path) -> None:
    home = tmp_path / "n"
    result = run("init", "--home", str(home), "--join", PEER)
    assert result.exit_code == 2
    assert "--join needs --genesis" in result.output
    result = run("init", "--home", str(home), "--adopt-database", "--genesis", str(genesis))
    assert result.exit_code == 2
    assert "--adopt-database goes with none of" in result.output
    assert not home.exists()


def test_init_join_refuses_a_bad_genesis(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"chain_id": "x"}')
    home = tmp_path / "n"
    result = run("init", "--home", str(home), "--join", PEER, "--genesis", str(bad))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {bad}")
    assert not (home / "node_key.json").exists()


def test_init_join_refuses_a_different_genesis_in_the_home(tmp_path: Path, genesis: Path) -> None:
    home = tmp_path / "n"
    home.mkdir()
    other = make_genesis(home / "genesis.json", chain_id="another-chain")
    before = other.read_bytes()
    result = run("init", "--home", str(home), "--join", PEER, "--genesis", str(genesis))
    assert result.exit_code == 1
    assert f"Error: {home / 'genesis.json'} already exists and differs from {genesis}" in (
        result.output
    )
    assert "refusing to replace it" in result.output
    assert (home / "genesis.json").read_bytes() == before
    assert not (home / "node_key.json").exists()
    assert not (home / "config.toml").exists()


def test_init_join_keeps_an_identical_genesis(tmp_path: Path, genesis: Path) -> None:
    home = tmp_path / "n"
    home.mkdir()
    (home / "genesis.json").write_bytes(genesis.read_bytes())
    result = run("init", "--home", str(home), "--join", PEER, "--genesis", str(genesis))
    assert result.exit_code == 0, result.output
    assert "(already there, identical;" in result.output
    assert (home / "genesis.json").read_bytes() == genesis.read_bytes()


def test_init_join_with_an_existing_config(tmp_path: Path, genesis: Path) -> None:
    home = tmp_path / "n"
    home.mkdir()
    config = home / "config.toml"
    config.write_text('[node]\nname = "mine"\n')
    result = run("init", "--home", str(home), "--join", PEER, "--genesis", str(genesis))
    assert result.exit_code == 1
    assert f"Error: {config} exists and init keeps it" in result.output
    assert f'add "{PEER}" to peers under [p2p] and set state_sync = true under [sync]' in (
        result.output
    )
    assert not (home / "node_key.json").exists()
    assert not (home / "genesis.json").exists()
    config.write_text(
        f'[node]\nname = "mine"\n[p2p]\npeers = ["{PEER}"]\n[sync]\nstate_sync = true\n'
    )
    result = run("init", "--home", str(home), "--join", PEER, "--genesis", str(genesis))
    assert result.exit_code == 0, result.output
    assert config.read_text().startswith('[node]\nname = "mine"')  # kept as it was
    assert load_config(home, env={}).node.name == "mine"


# ------------------------------------------------------------------ --wait-synced
def _status(height: int = 0, state_sync: Any = ..., **over: Any) -> dict[str, Any]:
    st: dict[str, Any] = {
        "name": "joiner",
        "height": height,
        "validator_index": None,
        "validators": 4,
        "peers": 2,
        "syncing": False,
        "sync": {"best_peer_height": 1030},
    }
    if state_sync is not ...:
        st["state_sync"] = state_sync
    st.update(over)
    return st


def _restore(phase: str, **over: Any) -> dict[str, Any]:
    doc = {
        "phase": phase,
        "height": None,
        "chunks_done": 0,
        "chunks_total": 0,
        "peers": 0,
        "error": None,
    }
    doc.update(over)
    return doc


def _state(st: dict[str, Any], peers: list[int] | None = None) -> cli_status.SyncState:
    linked = None if peers is None else [{"connected": True, "height": h} for h in peers]
    got = cli_status.sync_state(cli_status.Report("joiner", "u", status=st, peers=linked))
    assert got is not None
    return got


def test_wait_synced_without_state_sync_is_block_sync_alone() -> None:
    assert _state(_status(1030)).caught_up  # an older node: no state_sync field
    assert _state(_status(1030, state_sync=None)).caught_up  # no state sync on this node
    assert not _state(_status(10, state_sync=None)).caught_up
    assert _state(_status(10)).restore is None


@pytest.mark.parametrize("phase", ["discovering", "fetching", "verifying", "failed", "whatever"])
def test_wait_synced_is_not_done_before_the_snapshot_is_restored(phase: str) -> None:
    # even at the peers' height (a node that has blocks but is restoring) it is not synced
    state = _state(_status(1030, state_sync=_restore(phase)), peers=[1030])
    assert state.restoring and not state.caught_up
    assert state.describe().startswith("state sync: ")


def test_wait_synced_after_restore_waits_for_block_sync() -> None:
    restored = _restore("restored", height=1024, chunks_done=40, chunks_total=40, peers=3)
    behind = _state(_status(1024, state_sync=restored, syncing=True), peers=[1040])
    assert not behind.restoring and not behind.caught_up
    assert behind.describe() == "height 1024 of 1040 (syncing, 2 peers linked)"
    done = _state(_status(1040, state_sync=restored), peers=[1041])
    assert done.caught_up


def test_state_sync_progress_lines() -> None:
    def line(**doc: Any) -> str:
        progress = cli_status.state_sync_progress({"state_sync": _restore(**doc)})
        assert progress is not None
        return progress.describe()

    assert (
        line(phase="discovering", peers=2) == "state sync: discovering snapshots (2 offers so far)"
    )
    assert (
        line(phase="fetching", height=1024, chunks_done=12, chunks_total=40, peers=3)
        == "state sync: fetching 12/40 chunks of height 1024 (from 3 peers)"
    )
    assert (
        line(phase="verifying", height=1024, chunks_done=40, chunks_total=40, peers=3)
        == "state sync: verifying 40/40 chunks of height 1024 (from 3 peers)"
    )
    failed = line(phase="failed", error="every source of the snapshot failed; starting over")
    assert failed == (
        "state sync: failed, retrying (every source of the snapshot failed; starting over)"
    )
    assert line(phase="restored", height=1024) == "state sync: restored at height 1024"
    assert cli_status.state_sync_progress({"state_sync": None}) is None
    assert cli_status.state_sync_progress({}) is None
    odd = cli_status.state_sync_progress({"state_sync": {"phase": "fetching", "height": "x"}})
    assert odd is not None and odd.height is None and odd.chunks_total == 0


def test_status_row_shows_state_sync() -> None:
    st = _status(0, state_sync=_restore("fetching", height=64, chunks_done=1, chunks_total=2))
    report = cli_status.Report("joiner", "u", status=st, healthy=True, peers=[])
    rows = dict(cli_status.node_rows(report))
    assert rows["syncing"] == "state sync: fetching 1/2 chunks of height 64 (from 0 peers)"
