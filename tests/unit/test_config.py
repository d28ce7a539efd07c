"""node/setup/config.py (with config_schema, config_render): precedence, strictness, typed
parsing, checks, redaction, reference."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest

from node.mempool import MempoolLimits
from node.net.addr import Peer
from node.setup import config_schema
from node.setup.config import (
    ConfigError,
    default_config,
    load_config,
    parse_overrides,
    redacted,
    render_default_toml,
    render_toml,
    schema,
)
from node.setup.reference import render_reference

ROOT = Path(__file__).resolve().parents[2]
PEER_ID = "ab" * 32


def write(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ defaults
def test_defaults_are_valid_and_follow_the_mempool_limits(tmp_path: Path) -> None:
    cfg = default_config(tmp_path)
    limits = MempoolLimits()
    assert cfg.mempool_limits() == limits
    assert cfg.p2p.listen == "0.0.0.0:26656"
    assert cfg.api.listen == "127.0.0.1:26657"
    assert cfg.admin.listen == "127.0.0.1:26658"
    assert cfg.admin.enable_mutations is False
    assert cfg.log.format == "auto"
    assert cfg.warnings == ()
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.node_key_path == tmp_path / "node_key.json"
    assert cfg.log_file_path is None


def test_every_key_is_documented() -> None:
    for section, keys in schema().items():
        assert keys, section
        for key in keys.values():
            assert len(key.doc) > 20, key.dotted
            assert key.env_var == f"HYGEIA_{section.upper()}_{key.name.upper()}"


def test_missing_file_is_an_error_unless_not_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.toml: not found .*hygeia init"):
        load_config(tmp_path, env={})
    assert load_config(tmp_path, env={}, require_file=False) == default_config(tmp_path)


# ------------------------------------------------------------------ precedence
def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    write(
        tmp_path,
        "[p2p]\nmax_frame_bytes = 1000000\n[log]\nlevel = 'warning'\n"
        "[sync]\nsnapshot_chunk_bytes = 65536\n",  # a chunk within the smaller frame
    )
    env = {"HYGEIA_P2P_MAX_FRAME_BYTES": "2_000_000", "HYGEIA_LOG_LEVEL": "error"}
    flags = {"p2p.max_frame_bytes": 3_000_000}

    cfg = load_config(tmp_path, env=env, overrides=flags)
    assert cfg.p2p.max_frame_bytes == 3_000_000
    assert cfg.log.level == "error"
    assert cfg.origins["p2p.max_frame_bytes"] == "command line"
    assert cfg.origins["log.level"] == "environment HYGEIA_LOG_LEVEL"

    cfg = load_config(tmp_path, env=env)
    assert cfg.p2p.max_frame_bytes == 2_000_000

    cfg = load_config(tmp_path, env={})
    assert cfg.p2p.max_frame_bytes == 1_000_000
    assert cfg.log.level == "warning"
    assert cfg.origins["p2p.max_frame_bytes"].startswith("file ")

    write(tmp_path, "")
    cfg = load_config(tmp_path, env={})
    assert cfg.p2p.max_frame_bytes == 4 << 20
    assert "p2p.max_frame_bytes" not in cfg.origins


def test_flag_text_is_parsed_like_the_environment(tmp_path: Path) -> None:
    write(tmp_path, "")
    flags = parse_overrides(["admin.enable_mutations=yes", "sync.batch_size=32", "node.name=a=b"])
    cfg = load_config(tmp_path, env={}, overrides=flags)
    assert cfg.admin.enable_mutations is True
    assert cfg.sync.batch_size == 32
    assert cfg.node.name == "a=b"
    with pytest.raises(ConfigError, match=r"SECTION.KEY=VALUE"):
        parse_overrides(["loglevel"])


@pytest.mark.parametrize(
    ("name", "text", "dotted", "expected"),
    [
        ("HYGEIA_ADMIN_ENABLE_MUTATIONS", "On", "admin.enable_mutations", True),
        ("HYGEIA_ADMIN_ENABLE_MUTATIONS", "0", "admin.enable_mutations", False),
        ("HYGEIA_MEMPOOL_MAX_TXS", " 123 ", "mempool.max_txs", 123),
        ("HYGEIA_P2P_PEERS", "", "p2p.peers", ()),
        (
            "HYGEIA_P2P_PEERS",
            f"{PEER_ID}@10.0.0.1:26656, {PEER_ID.upper()}@[::1]:1,",
            "p2p.peers",
            (Peer(PEER_ID, "10.0.0.1:26656"), Peer(PEER_ID, "[::1]:1")),
        ),
        (
            "HYGEIA_LOG_MODULES",
            "node.net=debug, aiohttp.access=warning",
            "log.modules",
            {"node.net": "debug", "aiohttp.access": "warning"},
        ),
        ("HYGEIA_LOG_FILE", "logs/node.log", "log.file", "logs/node.log"),
    ],
)
def test_environment_values_are_parsed_by_type(
    tmp_path: Path, name: str, text: str, dotted: str, expected: object
) -> None:
    write(tmp_path, "")
    cfg = load_config(tmp_path, env={name: text})
    assert cfg.value(dotted) == expected


def test_lists_and_tables_are_replaced_not_merged(tmp_path: Path) -> None:
    write(tmp_path, f'[p2p]\npeers = ["{PEER_ID}@10.0.0.1:1"]\n[log.modules]\n"a" = "debug"\n')
    cfg = load_config(tmp_path, env={"HYGEIA_LOG_MODULES": "b=error"})
    assert cfg.p2p.peers == (Peer(PEER_ID, "10.0.0.1:1"),)
    assert cfg.log.modules == {"b": "error"}


# ------------------------------------------------------------------ unknown keys
def test_unknown_key_names_file_section_key_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, '[p2p]\nlistn = "0.0.0.0:1"\n')
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path, env={})
    assert str(e.value) == f"{path}: unknown key [p2p] listn (did you mean listen?)"


def test_unknown_key_without_close_match_lists_the_keys(tmp_path: Path) -> None:
    write(tmp_path, "[sync]\nzzz = 1\n")
    with pytest.raises(ConfigError, match=r"unknown key \[sync\] zzz \(known: parallel_peers"):
        load_config(tmp_path, env={})


def test_unknown_section(tmp_path: Path) -> None:
    write(tmp_path, "[mempol]\nmax_txs = 1\n")
    with pytest.raises(
        ConfigError,
        match=r"config\.toml: unknown section \[mempol\] \(did you mean \[mempool\]\?\)",
    ):
        load_config(tmp_path, env={})


def test_key_outside_a_section(tmp_path: Path) -> None:
    write(tmp_path, 'listen = "0.0.0.0:1"\n')
    with pytest.raises(ConfigError, match=r"key listen is outside any section"):
        load_config(tmp_path, env={})


def test_unknown_flag_key_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "")
    with pytest.raises(ConfigError, match=r"command line: unknown key \[p2p\] listn"):
        load_config(tmp_path, env={}, overrides={"p2p.listn": "x"})


def test_unknown_env_key_of_a_known_section_is_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "")
    env = {"HYGEIA_P2P_LISTN": "0.0.0.0:1", "HYGEIA_SIM_SEEDS": "10", "HYGEIA_HOME": "/x"}
    cfg = load_config(tmp_path, env=env)
    assert cfg.warnings == (
        "environment variable HYGEIA_P2P_LISTN ignored: [p2p] has no such key "
        "(did you mean HYGEIA_P2P_LISTEN?)",
    )
    assert cfg.p2p.listen == "0.0.0.0:26656"


def test_invalid_toml(tmp_path: Path) -> None:
    write(tmp_path, "[p2p\n")
    with pytest.raises(ConfigError, match=r"config\.toml: invalid TOML"):
        load_config(tmp_path, env={})


# ------------------------------------------------------------------ types
@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[p2p]\nmax_frame_bytes = "4MB"',
            "p2p.max_frame_bytes: expected an integer, got '4MB' (a string)",
        ),
        ("[p2p]\nmax_frame_bytes = 1.5", "p2p.max_frame_bytes: expected an integer, got 1.5"),
        ("[p2p]\nmax_frame_bytes = true", "p2p.max_frame_bytes: expected an integer, got true"),
        ('[admin]\nenable_mutations = "yes"', "admin.enable_mutations: expected a boolean"),
        ("[admin]\nenable_mutations = 1", "admin.enable_mutations: expected a boolean"),
        ("[p2p]\nlisten = 26656", "p2p.listen: expected a string host:port, got 26656"),
        ('[p2p]\npeers = "x"', "p2p.peers: expected an array of strings"),
        ("[log]\nmodules = { a = 1 }", "log.modules: expected a table of strings"),
        ("[node]\nname = []", "node.name: expected a string, got [] (an array)"),
        ("p2p = 1", "[p2p] must be a table, got 1"),
    ],
)
def test_wrong_types_name_key_expected_type_and_value(
    tmp_path: Path, toml: str, message: str
) -> None:
    path = write(tmp_path, toml + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path, env={})
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "HYGEIA_P2P_MAX_FRAME_BYTES",
            "4MB",
            "p2p.max_frame_bytes: expected an integer, got '4MB'",
        ),
        ("HYGEIA_P2P_MAX_FRAME_BYTES", "", "expected an integer, got ''"),
        ("HYGEIA_ADMIN_ENABLE_MUTATIONS", "maybe", "admin.enable_mutations: expected a boolean"),
        ("HYGEIA_LOG_MODULES", "a=debug,b", "log.modules: expected a table"),
        ("HYGEIA_P2P_PEERS", "nobody", "p2p.peers: 'nobody' is not ID@HOST:PORT"),
    ],
)
def test_wrong_environment_values_name_the_variable(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    write(tmp_path, "")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path, env={name: text})
    assert str(e.value).startswith(f"environment variable {name}: ")
    assert message in str(e.value)


def test_typed_flag_of_the_wrong_type(tmp_path: Path) -> None:
    write(tmp_path, "")
    with pytest.raises(ConfigError, match=r"command line: p2p.listen: expected a string host:port"):
        load_config(tmp_path, env={}, overrides={"p2p.listen": 26656})


# ------------------------------------------------------------------ checks
def test_listen_port_zero_is_allowed(tmp_path: Path) -> None:
    write(tmp_path, '[p2p]\nlisten = "127.0.0.1:0"\n[api]\nlisten = "127.0.0.1:0"\n')
    assert load_config(tmp_path, env={}).p2p.listen == "127.0.0.1:0"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[p2p]\nlisten = "nowhere"', "p2p.listen: expected host:port, got 'nowhere'"),
        ("[mempool]\nmax_txs = 0", "mempool.max_txs: must be a positive integer, got 0"),
        ("[sync]\nbatch_size = -1", "sync.batch_size: must be a positive integer, got -1"),
        ("[shutdown]\ntimeout_ms = 0", "shutdown.timeout_ms: must be a positive integer"),
        ('[log]\nlevel = "verbose"', "log.level: must be one of debug, info"),
        ('[log]\nformat = "xml"', "log.format: must be one of auto, json, console"),
        ('[log.modules]\n"node.net" = "loud"', "log.modules: node.net: level must be one of"),
        ('[node]\nname = ""', "node.name: must not be empty"),
        ('[node]\ndata_dir = " "', "node.data_dir: must not be empty"),
        (
            '[p2p]\npeers = ["abc@10.0.0.1:1"]',
            "p2p.peers: 'abc@10.0.0.1:1': the peer id must be 64 hex digits",
        ),
        (
            "[p2p]\ndial_backoff_min_ms = 5000\ndial_backoff_max_ms = 1000",
            "p2p.dial_backoff_min_ms (5000) must not exceed p2p.dial_backoff_max_ms (1000)",
        ),
        (
            "[mempool]\nmax_tx_bytes = 2000\nmax_bytes = 1000",
            "mempool.max_tx_bytes (2000) must not exceed mempool.max_bytes (1000)",
        ),
        (
            "[mempool]\nmax_tx_bytes = 2000\n[p2p]\nmax_frame_bytes = 1000",
            "must not exceed p2p.max_frame_bytes (1000)",
        ),
        (
            '[api]\nlisten = "0.0.0.0:26656"',
            "api.listen (0.0.0.0:26656) and p2p.listen (0.0.0.0:26656) use the same port",
        ),
    ],
)
def test_invalid_values(tmp_path: Path, toml: str, message: str) -> None:
    path = write(tmp_path, toml + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path, env={})
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)


def test_the_file_is_checked_whole_even_where_the_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "[mempool]\nmax_txs = 0\n")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path, env={"HYGEIA_MEMPOOL_MAX_TXS": "5"})
    assert str(e.value) == f"{path}: mempool.max_txs: must be a positive integer, got 0"


def test_cross_check_names_every_origin(tmp_path: Path) -> None:
    write(tmp_path, "[p2p]\ndial_backoff_max_ms = 1000\n")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path, env={"HYGEIA_P2P_DIAL_BACKOFF_MIN_MS": "5000"})
    assert str(e.value).startswith(
        "environment variable HYGEIA_P2P_DIAL_BACKOFF_MIN_MS, " + str(tmp_path / "config.toml")
    )


def test_public_admin_listener_is_a_warning(tmp_path: Path) -> None:
    write(tmp_path, '[admin]\nlisten = "0.0.0.0:9000"\n')
    cfg = load_config(tmp_path, env={})
    assert len(cfg.warnings) == 1
    assert "admin.listen 0.0.0.0:9000 is not a loopback address" in cfg.warnings[0]
    write(tmp_path, '[admin]\nlisten = "[::1]:9000"\n')
    assert load_config(tmp_path, env={}).warnings == ()


def test_paths_are_relative_to_the_home(tmp_path: Path) -> None:
    write(tmp_path, '[node]\ndata_dir = "/var/lib/hygeia"\n[log]\nfile = "logs/node.log"\n')
    cfg = load_config(tmp_path, env={})
    assert cfg.data_dir == Path("/var/lib/hygeia")
    assert cfg.log_file_path == tmp_path / "logs" / "node.log"


# ------------------------------------------------------------------ redaction and output
def test_redacted_config_never_holds_the_admin_token(tmp_path: Path) -> None:
    from node.setup.home import init_home

    init_home(tmp_path, name="n0", env={})
    token = (tmp_path / "admin_token").read_text().strip()
    cfg = load_config(tmp_path, env={})
    data = cfg.effective_config_redacted()
    assert data["admin"]["token_file"] == "admin_token"
    assert data["home"] == str(tmp_path)
    assert token not in json.dumps(data)
    assert token not in render_toml(cfg)


def test_secret_keys_are_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = dict(config_schema._SCHEMA["admin"])
    admin["token_file"] = dataclasses.replace(admin["token_file"], secret=True)
    monkeypatch.setitem(config_schema._SCHEMA, "admin", admin)
    data = redacted(default_config(tmp_path))
    assert data["admin"]["token_file"] == "<redacted>"
    assert data["admin"]["listen"] == "127.0.0.1:26658"


def test_render_toml_round_trips(tmp_path: Path) -> None:
    write(
        tmp_path,
        f'[p2p]\npeers = ["{PEER_ID}@10.0.0.1:1"]\n[log.modules]\n"node.net" = "debug"\n'
        '[node]\nname = "Hôpital \\"Saint\\""\n[log]\nfile = "a\\u007fb.log"\n',
    )
    cfg = load_config(tmp_path, env={"HYGEIA_SYNC_BATCH_SIZE": "7"})
    text = render_toml(cfg)
    assert "batch_size = 7  # environment HYGEIA_SYNC_BATCH_SIZE" in text
    parsed = tomllib.loads(text)
    expected = redacted(cfg)
    del expected["home"]
    assert parsed == expected


def test_default_toml_is_commented_and_loads_as_the_defaults(tmp_path: Path) -> None:
    text = render_default_toml()
    for keys in schema().values():
        for key in keys.values():
            assert f"# {key.name} = " in text
            assert key.env_var in text
    write(tmp_path, text)
    assert load_config(tmp_path, env={}) == default_config(tmp_path)


def test_default_toml_with_settings(tmp_path: Path) -> None:
    settings = {"node.name": "node3", "p2p.listen": "127.0.0.1:26686", "p2p.peers": ()}
    write(tmp_path, render_default_toml(settings))
    cfg = load_config(tmp_path, env={})
    assert cfg.node.name == "node3"
    assert cfg.p2p.listen == "127.0.0.1:26686"
    with pytest.raises(ConfigError, match=r"no configuration key p2p.listn"):
        render_default_toml({"p2p.listn": "x"})


# ------------------------------------------------------------------ the reference
def test_docs_configuration_md_is_generated_from_the_schema() -> None:
    doc = ROOT / "docs" / "configuration.md"
    assert doc.read_text(encoding="utf-8") == render_reference(), (
        "docs/configuration.md is stale: regenerate it with "
        "`.venv/bin/python -m node.setup.reference > docs/configuration.md`"
    )


def test_reference_documents_every_key() -> None:
    text = render_reference()
    for keys in schema().values():
        for key in keys.values():
            assert f"| `{key.name}` |" in text
            assert f"`{key.env_var}`" in text
