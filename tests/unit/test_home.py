"""node/setup/home.py, node/setup/testnet.py, node/cli/node.py: homes, key safety, testnets."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from node.cli import node as cli_node
from node.cli.registry import add_commands
from node.setup.config import load_config
from node.setup.genesis import load_genesis, parse_genesis, write_genesis
from node.setup.home import (
    HomeError,
    check_home,
    generate_key_file,
    init_home,
    load_public_key,
    read_admin_token,
)
from node.setup.testnet import MEMBER_KEY_FILE, MEMBER_ROLES, TestnetError
from node.setup.testnet import testnet_init as make_testnet


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# ------------------------------------------------------------------ init_home
def test_init_creates_the_home(tmp_path: Path, loose_umask: None) -> None:
    home = tmp_path / "alpha"
    node_id = init_home(home, env={})
    cfg = load_config(home, env={})
    assert cfg.node.name == "alpha"
    assert node_id == load_public_key(home / "node_key.json")
    assert len(node_id) == 64
    assert mode(home / "node_key.json") == 0o600
    assert mode(home / "admin_token") == 0o600
    assert (home / "data").is_dir()
    assert mode(home) == 0o700
    token = read_admin_token(home / "admin_token")
    assert len(token) >= 40
    assert token not in (home / "config.toml").read_text()
    assert not (home / "genesis.json").exists()


def test_init_never_overwrites_a_key_without_force(tmp_path: Path) -> None:
    node_id = init_home(tmp_path, name="a", env={})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(HomeError, match=r"already has a node key .* refusing to overwrite it"):
        init_home(tmp_path, name="b", env={})
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before
    assert load_public_key(tmp_path / "node_key.json") == node_id


def test_init_force_replaces_key_and_token_but_keeps_config(tmp_path: Path) -> None:
    old_id = init_home(tmp_path, name="a", env={})
    old_token = read_admin_token(tmp_path / "admin_token")
    config = tmp_path / "config.toml"
    config.write_text(config.read_text().replace("# batch_size = 64", "batch_size = 9"))
    new_id = init_home(tmp_path, name="b", force=True, env={})
    assert new_id != old_id
    assert load_public_key(tmp_path / "node_key.json") == new_id
    assert read_admin_token(tmp_path / "admin_token") != old_token
    assert mode(tmp_path / "node_key.json") == 0o600
    cfg = load_config(tmp_path, env={})
    assert cfg.node.name == "a"
    assert cfg.sync.batch_size == 9


def test_init_honours_an_existing_config(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[node]\nnode_key_file = "keys/node.json"\n[admin]\ntoken_file = "secret/token"\n'
    )
    node_id = init_home(tmp_path, name="x", env={})
    assert load_public_key(tmp_path / "keys" / "node.json") == node_id
    assert mode(tmp_path / "secret" / "token") == 0o600
    assert not (tmp_path / "node_key.json").exists()


def test_init_rejects_a_broken_existing_config(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[p2p]\nlistn = 1\n")
    with pytest.raises(HomeError, match=r"unknown key \[p2p\] listn"):
        init_home(tmp_path, name="x", env={})
    assert not (tmp_path / "node_key.json").exists()


def test_init_on_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(HomeError, match=r"is not a directory"):
        init_home(tmp_path / "f", env={})


def test_key_files_are_0600_and_never_overwritten(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "sub" / "k.json"
    public = generate_key_file(path)
    assert mode(path) == 0o600
    doc = json.loads(path.read_text())
    assert doc["type"] == "ed25519"
    assert doc["public_key_hex"] == public
    with pytest.raises(HomeError, match=r"already exists; refusing to overwrite"):
        generate_key_file(path)
    assert load_public_key(path) == public
    assert generate_key_file(path, force=True) != public
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_key_file_format_matches_node_keys(tmp_path: Path) -> None:
    keys = pytest.importorskip("node.core.keys")
    path = tmp_path / "k.json"
    public = generate_key_file(path)
    assert keys.public_key_hex(keys.load_key(path)) == public


def test_load_public_key_errors(tmp_path: Path) -> None:
    with pytest.raises(HomeError, match=r"no key file at"):
        load_public_key(tmp_path / "none")
    bad = tmp_path / "bad"
    bad.write_text("{}")
    bad.chmod(0o600)
    with pytest.raises(HomeError, match=r"unsupported key type"):
        load_public_key(bad)
    bad.write_text("11" * 32)  # a bare seed is accepted
    assert len(load_public_key(bad)) == 64


# ------------------------------------------------------------------ check_home
def _genesis_for(home: Path, node_id: str, **consensus: int) -> None:
    from node.setup.genesis import default_consensus_params

    doc = {
        "chain_id": "c",
        "genesis_time": 0,
        "consensus": {**default_consensus_params(), **consensus},
        "validators": [{"name": "v", "member": "m", "node_key": node_id, "p2p": "127.0.0.1:1"}],
        "members": [{"id": "m", "name": "M", "roles": ["hospital"], "keys": ["11" * 32]}],
    }
    write_genesis(home / "genesis.json", parse_genesis(doc))


def test_check_home_refuses_loose_modes(tmp_path: Path) -> None:
    """Issue 11: a world-readable key file or token was only warned about."""
    node_id = init_home(tmp_path, name="a", env={})
    _genesis_for(tmp_path, node_id)
    cfg = load_config(tmp_path, env={})
    report = check_home(cfg)
    assert report.warnings == []
    assert report.node_id == node_id
    assert report.validator_index == 0
    key, token = tmp_path / "node_key.json", tmp_path / "admin_token"
    for path, loose in ((key, 0o644), (key, 0o604), (token, 0o640), (token, 0o666)):
        path.chmod(loose)
        with pytest.raises(HomeError) as err:
            check_home(cfg)
        msg = str(err.value)
        assert f"{path} has mode {loose:04o}" in msg, msg
        assert "refusing to use it" in msg and f"chmod 600 {path}" in msg
        path.chmod(0o600)
    token.chmod(0o644)
    with pytest.raises(HomeError, match="admin_token has mode 0644"):
        read_admin_token(token)
    key.chmod(0o640)
    with pytest.raises(HomeError, match=r"node_key\.json has mode 0640"):
        load_public_key(key)
    key.chmod(0o400)  # stricter than 0600 is fine
    token.chmod(0o600)
    assert check_home(cfg).node_id == node_id


def test_check_home_errors(tmp_path: Path) -> None:
    node_id = init_home(tmp_path, name="a", env={})
    cfg = load_config(tmp_path, env={})
    with pytest.raises(HomeError, match=r"genesis\.json: not found"):
        check_home(cfg)
    assert check_home(cfg, genesis=False).genesis is None
    _genesis_for(tmp_path, "ab" * 32)
    assert check_home(cfg).validator_index is None  # a full node
    _genesis_for(tmp_path, node_id, batch_max_bytes=8 << 20)
    with pytest.raises(HomeError, match=r"p2p.max_frame_bytes .* is below the genesis"):
        check_home(cfg)
    (tmp_path / "admin_token").unlink()
    with pytest.raises(HomeError, match=r"admin token file .* not found"):
        check_home(cfg)


# ------------------------------------------------------------------ testnet
def test_testnet_shape(tmp_path: Path) -> None:
    out = tmp_path / "tn"
    doc = make_testnet(out, validators=4, base_port=30000, chain_id="tn-1", genesis_time=123)
    on_disk = json.loads((out / "testnet.json").read_text())
    assert on_disk == doc
    assert set(doc) == {"chain_id", "nodes"}
    assert doc["chain_id"] == "tn-1"
    assert len(doc["nodes"]) == 4
    genesis_bytes = {(out / f"node{i}" / "genesis.json").read_bytes() for i in range(4)}
    assert len(genesis_bytes) == 1
    genesis = load_genesis(out / "node0" / "genesis.json")
    assert genesis.chain_id == "tn-1"
    assert genesis.genesis_time == 123
    for i, node in enumerate(doc["nodes"]):
        assert set(node) == {"name", "home", "node_id", "p2p", "api", "admin", "admin_token_file"}
        home = Path(node["home"])
        assert home == out / f"node{i}"
        assert home.is_absolute()
        assert node["name"] == f"node{i}"
        port = 30000 + 10 * i
        assert node["p2p"] == f"127.0.0.1:{port}"
        assert node["api"] == f"http://127.0.0.1:{port + 1}"
        assert node["admin"] == f"http://127.0.0.1:{port + 2}"
        assert node["node_id"] == load_public_key(home / "node_key.json")
        assert Path(node["admin_token_file"]) == home / "admin_token"
        assert mode(Path(node["admin_token_file"])) == 0o600
        assert mode(home / MEMBER_KEY_FILE) == 0o600
        cfg = load_config(home, env={})
        assert cfg.p2p.listen == node["p2p"]
        assert cfg.api.listen == f"127.0.0.1:{port + 1}"
        assert cfg.admin.listen == f"127.0.0.1:{port + 2}"
        report = check_home(cfg)
        assert report.validator_index == i
        assert report.warnings == []
        v = genesis.validators[i]
        assert (v.name, v.node_key, v.p2p) == (node["name"], node["node_id"], node["p2p"])
        m = genesis.members[i]
        assert m.roles == (MEMBER_ROLES[i],)
        assert m.keys == (load_public_key(home / MEMBER_KEY_FILE),)
        assert v.member == m.id == f"{MEMBER_ROLES[i]}-{i}"  # validator i is member i's


def test_testnet_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "tn"
    first = make_testnet(out, validators=2)
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(TestnetError, match=r"already holds a testnet .*use --force"):
        make_testnet(out, validators=3)
    assert json.loads((out / "testnet.json").read_text()) == first
    second = make_testnet(out, validators=1, force=True)
    assert [n["name"] for n in second["nodes"]] == ["node0"]
    assert second["nodes"][0]["node_id"] != first["nodes"][0]["node_id"]
    assert not (out / "node1").exists()
    assert (out / "notes.txt").read_text() == "keep me"


def test_testnet_refuses_a_leftover_node_dir(tmp_path: Path) -> None:
    (tmp_path / "node0").mkdir()
    with pytest.raises(TestnetError, match=r"already holds a testnet \(node0\)"):
        make_testnet(tmp_path, validators=1)


@pytest.mark.parametrize(
    ("validators", "base_port", "message"),
    [(0, 26656, "--validators must be in"), (10, 65500, "ports 65500..65592")],
)
def test_testnet_bad_arguments(
    tmp_path: Path, validators: int, base_port: int, message: str
) -> None:
    with pytest.raises(TestnetError, match=message):
        make_testnet(tmp_path, validators=validators, base_port=base_port)


# ------------------------------------------------------------------ CLI
@pytest.fixture
def cli() -> click.Group:
    @click.group()
    def main() -> None:
        pass

    add_commands(main, cli_node.COMMANDS)
    return main


def run(cli: click.Group, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={"HYGEIA_HOME": None})
    return result.exit_code, result.stdout, result.stderr


def test_cli_init_and_key_safety(cli: click.Group, tmp_path: Path) -> None:
    home = str(tmp_path / "h")
    code, out, err = run(cli, "init", "--home", home, "--name", "n0")
    assert code == 0, err
    assert "node id" in out
    node_id = load_public_key(tmp_path / "h" / "node_key.json")
    assert node_id in out
    code, out, err = run(cli, "init", "--home", home)
    assert code == 1
    assert err.startswith("Error: ") and err.count("\n") == 1
    assert "refusing to overwrite" in err
    assert "Traceback" not in err
    assert load_public_key(tmp_path / "h" / "node_key.json") == node_id
    code, _, _ = run(cli, "init", "--home", home, "--force")
    assert code == 0
    assert load_public_key(tmp_path / "h" / "node_key.json") != node_id


def test_cli_keys_new(cli: click.Group, tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    code, out, _ = run(cli, "keys", "new", "--out", str(path))
    assert code == 0
    assert out.strip() == load_public_key(path)
    assert mode(path) == 0o600
    code, _, err = run(cli, "keys", "new", "--out", str(path))
    assert code == 1
    assert "already exists" in err


def test_cli_config_check_and_show(cli: click.Group, tmp_path: Path) -> None:
    out_dir = tmp_path / "tn"
    code, out, err = run(cli, "testnet", "init", "--validators", "2", "--out", str(out_dir))
    assert code == 0, err
    assert "testnet.json" in out
    home = str(out_dir / "node1")

    code, out, err = run(cli, "config", "check", "--home", home)
    assert code == 0, err
    assert out.startswith("ok: ") and "validator 1 of 2" in out

    code, out, err = run(cli, "config", "show", "--home", home, "--format", "json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["p2p"]["listen"] == "127.0.0.1:26666"
    token = (out_dir / "node1" / "admin_token").read_text().strip()
    assert token not in out

    code, out, _ = run(cli, "config", "show", "--home", home, "--set", "log.level=debug")
    assert code == 0
    assert 'level = "debug"  # command line' in out

    (out_dir / "node1" / "config.toml").write_text("[p2p]\nlistn = 1\n")
    code, out, err = run(cli, "config", "check", "--home", home)
    assert code == 1
    config_path = out_dir / "node1" / "config.toml"
    assert err == f"Error: {config_path}: unknown key [p2p] listn (did you mean listen?)\n"

    code, out, err = run(cli, "config", "check", "--home", str(tmp_path / "nothing"))
    assert code == 1
    assert "not found" in err


def test_cli_config_show_defaults_needs_no_home(cli: click.Group) -> None:
    code, out, _ = run(cli, "config", "show", "--defaults")
    assert code == 0
    assert 'listen = "0.0.0.0:26656"' in out


def test_cli_usage_errors_exit_2(cli: click.Group, tmp_path: Path) -> None:
    code, _, err = run(cli, "testnet", "init", "--validators", "0", "--out", str(tmp_path))
    assert code == 2
    assert "Traceback" not in err
    code, _, _ = run(cli, "config", "show")
    assert code == 2
