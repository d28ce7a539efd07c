"""Issue 11: a home whose database or genesis.json does not fit is refused by
``check_home`` (``hygeia start``, ``hygeia config check``) with one clear message,
and nothing is created, deleted or rewritten implicitly.

- only ``hygeia init`` (and restore) creates a database; ``start`` refuses a
  missing one and a damaged one (no ``CURRENT``) without touching it;
- the genesis hash is recorded in the database (at init when genesis.json is
  there, else at the first start) and another genesis is refused, also by
  ``hygeia config check``, even while the node runs;
- a corrupt or missing latest block is one clear error, not a traceback;
- ``hygeia init --adopt-database`` marks a database made before the marker.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import click
import plyvel
import pytest
from click.testing import CliRunner

from node.cli import node as cli_node
from node.cli.registry import add_commands
from node.ops import backup as bk
from node.setup.config import NodeConfig, load_config
from node.setup.genesis import default_consensus_params, load_genesis, parse_genesis, write_genesis
from node.setup.home import HomeError, adopt_database, check_home, init_home
from storage import ChainStore, StorageError, open_database
from storage.layout import Namespace, encode_u64


def _genesis(home: Path, node_id: str, chain_id: str = "c", **consensus: int) -> Path:
    doc = {
        "chain_id": chain_id,
        "genesis_time": 0,
        "consensus": {**default_consensus_params(), **consensus},
        "validators": [{"name": "v", "member": "m", "node_key": node_id, "p2p": "127.0.0.1:1"}],
        "members": [{"id": "m", "name": "M", "roles": ["hospital"], "keys": ["11" * 32]}],
    }
    write_genesis(home / "genesis.json", parse_genesis(doc))
    return home / "genesis.json"


def _home(tmp_path: Path) -> tuple[NodeConfig, str]:
    home = tmp_path / "home"
    node_id = init_home(home, name="n", env={})
    return load_config(home, env={}), node_id


def _tree(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _commit(cfg: NodeConfig, chain_id: str, heights: int) -> None:
    """Real blocks (node.core.block) at 1..heights, as the node would store them."""
    from consensus.merkle import merkle_root
    from node.core.block import Block, BlockHeader

    with ChainStore.open(cfg.data_dir) as store:
        parent = "00" * 32
        for h in range(1, heights + 1):
            header = BlockHeader(
                chain_id=chain_id,
                height=h,
                view=0,
                parent_hash=parent,
                tx_root=merkle_root(()).hex(),
                state_root="11" * 32,
                timestamp=h,
                proposer=0,
            )
            block = Block(header, (), (), ())
            store.commit_block(h, bytes.fromhex(block.hash), block.to_bytes(), [], [])
            parent = block.hash


# ------------------------------------------------------------------ creation
def test_init_creates_the_database_and_start_never_does(tmp_path: Path) -> None:
    cfg, node_id = _home(tmp_path)
    assert (cfg.data_dir / "CURRENT").is_file() and (cfg.data_dir / "HYGEIA").is_file()
    _genesis(cfg.home, node_id)
    report = check_home(cfg)
    assert report.height == 0
    # a data directory emptied by hand: start refuses, creates nothing
    for p in cfg.data_dir.iterdir():
        p.unlink()
    with pytest.raises(HomeError, match=r"no database in .*data: `hygeia init` creates"):
        check_home(cfg)
    assert list(cfg.data_dir.iterdir()) == []


def test_init_keeps_a_data_directory_that_holds_anything(tmp_path: Path) -> None:
    cfg, node_id = _home(tmp_path)
    _genesis(cfg.home, node_id)
    check_home(cfg)
    _commit(cfg, "c", 2)
    before = _tree(cfg.data_dir)
    init_home(cfg.home, force=True, env={})  # a new identity; the database stays
    assert _tree(cfg.data_dir) == before


def test_missing_current_is_refused_by_start_and_config_check(tmp_path: Path) -> None:
    cfg, node_id = _home(tmp_path)
    _genesis(cfg.home, node_id)
    check_home(cfg)
    _commit(cfg, "c", 3)
    (cfg.data_dir / "CURRENT").unlink()
    before = _tree(cfg.data_dir)
    for start in (True, False):
        with pytest.raises(HomeError) as err:
            check_home(cfg, start=start)
        assert "CURRENT file is missing" in str(err.value)
        assert "restore the data directory from a backup" in str(err.value)
    assert _tree(cfg.data_dir) == before


# ------------------------------------------------------------------ genesis
def test_genesis_hash_recorded_at_init_when_genesis_is_there(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    node_id = "ab" * 32
    _genesis(home, node_id)
    init_home(home, name="n", env={})
    cfg = load_config(home, env={})
    with open_database(cfg.data_dir) as db:
        assert db.genesis_hash == load_genesis(cfg.genesis_path).genesis_hash()


@pytest.mark.parametrize(
    "change", [{"chain_id": "other"}, {"batch_timeout_ms": 7}], ids=["chain", "knob"]
)
def test_another_genesis_is_refused(tmp_path: Path, change: dict[str, object]) -> None:
    """Issue 11: the node served the old chain under the new genesis."""
    cfg, node_id = _home(tmp_path)
    _genesis(cfg.home, node_id)
    check_home(cfg)  # the first start records the genesis hash
    _commit(cfg, "c", 2)
    recorded = load_genesis(cfg.genesis_path).genesis_hash_hex()
    chain_id = str(change.pop("chain_id", "c"))
    _genesis(cfg.home, node_id, chain_id, **change)  # type: ignore[arg-type]
    before = _tree(cfg.data_dir)
    for start in (True, False):
        with pytest.raises(HomeError) as err:
            check_home(cfg, start=start)
        msg = str(err.value)
        assert f"{cfg.genesis_path} has genesis hash " in msg
        assert f"belongs to the chain whose genesis hash is {recorded}" in msg
        assert "wrong genesis.json for this home" in msg
    assert _tree(cfg.data_dir) == before


def test_config_check_of_a_running_node_checks_the_marker(tmp_path: Path) -> None:
    cfg, node_id = _home(tmp_path)
    _genesis(cfg.home, node_id)
    check_home(cfg)
    with ChainStore.open(cfg.data_dir):  # the node runs
        report = check_home(cfg, start=False)
        assert any("in use" in w and "only its marker" in w for w in report.warnings)
        with pytest.raises(HomeError, match=r"LOCK held.*already running"):
            check_home(cfg)
        _genesis(cfg.home, node_id, "other")
        with pytest.raises(HomeError, match=r"wrong genesis\.json"):
            check_home(cfg, start=False)


def test_empty_database_gets_the_genesis_at_first_start_only(tmp_path: Path) -> None:
    cfg, node_id = _home(tmp_path)
    _genesis(cfg.home, node_id)
    report = check_home(cfg, start=False)  # config check: writes nothing
    assert any("the first `hygeia start` records" in w for w in report.warnings)
    with open_database(cfg.data_dir) as db:
        assert db.genesis_hash is None
    check_home(cfg)
    with open_database(cfg.data_dir) as db:
        assert db.genesis_hash == load_genesis(cfg.genesis_path).genesis_hash()


def test_a_chain_without_genesis_hash_needs_adopting(tmp_path: Path) -> None:
    cfg, node_id = _home(tmp_path)
    _genesis(cfg.home, node_id)
    _commit(cfg, "c", 2)  # written without a start (e.g. by a program of its own)
    with pytest.raises(HomeError, match=r"holds a chain but no recorded genesis hash.*adopt"):
        check_home(cfg)
    assert adopt_database(cfg) == 2
    assert check_home(cfg).height == 2


# ------------------------------------------------------------------ latest block
def test_corrupt_or_missing_latest_block_is_one_clear_error(tmp_path: Path) -> None:
    cfg, node_id = _home(tmp_path)
    _genesis(cfg.home, node_id)
    check_home(cfg)
    _commit(cfg, "c", 3)
    assert check_home(cfg).height == 3
    with open_database(cfg.data_dir) as db:
        good = db.get(Namespace.BLOCKS, encode_u64(3))
        db.write([(Namespace.BLOCKS, encode_u64(3), b"\x93garbage")], sync=True)
    with pytest.raises(HomeError) as err:
        check_home(cfg)
    assert "its latest block (height 3) cannot be read (stored block is corrupt" in str(err.value)
    with open_database(cfg.data_dir) as db:
        db.write([(Namespace.BLOCKS, encode_u64(3), None)], sync=True)
    with pytest.raises(HomeError, match=r"its latest block \(height 3\) is missing"):
        check_home(cfg)
    with pytest.raises(StorageError, match=r"latest block \(height 3\) is missing"):
        ChainStore.open(cfg.data_dir)  # what the daemon opens: a StorageError, one line
    raw = plyvel.DB(str(cfg.data_dir))  # the damage undone
    raw.put(Namespace.BLOCKS.value + encode_u64(3), good, sync=True)
    raw.close()
    assert check_home(cfg).height == 3


# ------------------------------------------------------------------ adopting
def test_adopt_a_database_made_before_the_marker(tmp_path: Path) -> None:
    cfg, node_id = _home(tmp_path)
    _genesis(cfg.home, node_id)
    check_home(cfg)
    _commit(cfg, "c", 2)
    # as an older hygeia left it: no marker, no genesis hash
    raw = plyvel.DB(str(cfg.data_dir))
    raw.delete(Namespace.META.value + b"genesis", sync=True)
    raw.close()
    (cfg.data_dir / "HYGEIA").unlink()
    with pytest.raises(HomeError, match=f"`hygeia init --home {cfg.home} --adopt-database`"):
        check_home(cfg)
    _genesis(cfg.home, node_id, "other")  # its blocks are of chain "c"
    with pytest.raises(HomeError, match="belongs to chain 'c', not to 'other'"):
        adopt_database(cfg)
    assert not (cfg.data_dir / "HYGEIA").exists()
    _genesis(cfg.home, node_id)
    assert adopt_database(cfg) == 2
    assert check_home(cfg).height == 2


@pytest.fixture
def cli() -> click.Group:
    @click.group()
    def main() -> None:
        pass

    add_commands(main, cli_node.COMMANDS)
    return main


def test_cli_adopt_and_config_check(cli: click.Group, tmp_path: Path) -> None:
    cfg, node_id = _home(tmp_path)
    home = str(cfg.home)
    for p in cfg.data_dir.iterdir():  # a home an older hygeia made, never started
        p.unlink()
    _genesis(cfg.home, node_id)
    runner = CliRunner()
    result = runner.invoke(cli, ["config", "check", "--home", home], env={"HYGEIA_HOME": None})
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "--adopt-database` creates it" in result.stderr
    result = runner.invoke(cli, ["init", "--home", home, "--adopt-database"])
    assert result.exit_code == 0, result.output
    assert "(height 0) is marked as this home's" in result.stdout
    result = runner.invoke(cli, ["config", "check", "--home", home])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: ") and "database at height 0" in result.stdout
    _genesis(cfg.home, node_id, "other")
    result = runner.invoke(cli, ["config", "check", "--home", home])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "wrong genesis.json" in result.stderr


# ------------------------------------------------------------------ backup / restore
def test_backup_refuses_another_genesis_and_restore_records_it(tmp_path: Path) -> None:
    cfg, node_id = _home(tmp_path)
    _genesis(cfg.home, node_id)
    check_home(cfg)
    _commit(cfg, "c", 2)
    out = tmp_path / "b.hbk"
    manifest = bk.backup_home(cfg.data_dir, cfg.genesis_path, out)
    new = tmp_path / "new"
    bk.restore_backup(out, new)
    restored = load_config(new, env={})
    with open_database(restored.data_dir) as db:
        assert db.genesis_hash is not None and db.genesis_hash.hex() == manifest.genesis_hash
    assert check_home(restored).height == 2
    genesis = json.loads(cfg.genesis_path.read_text())
    (tmp_path / "other.json").write_text(json.dumps({**genesis, "chain_id": "other"}))
    with pytest.raises(StorageError, match="belongs to the chain with genesis hash"):
        bk.backup_home(cfg.data_dir, tmp_path / "other.json", tmp_path / "c.hbk")
    assert not (tmp_path / "c.hbk").exists()
