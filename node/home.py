"""Node homes: ``hygeia init`` and the checks of the files it makes.

A home holds ``config.toml``, the node key (Ed25519, mode 0600), the admin API
token (mode 0600), ``genesis.json`` (copied in, never made here) and the data
directory; ``docs/configuration.md`` lists them. ``init_home`` never
overwrites a key without ``force``: an existing key is an error and nothing is
written. An existing ``config.toml`` is always kept (it is the operator's; its
paths are honoured) and an existing admin token is kept unless ``force``.

Secret files are created with ``O_CREAT | O_EXCL`` and mode 0600 whatever the
umask, fsynced, then linked into place (or renamed over the old file with
``force``), so a crash leaves either no file or a complete one. Files that other
users may read or write are reported by ``check_home`` and ``read_admin_token``
(as warnings: the node still starts; ``chmod 600`` fixes them).
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from node import keys
from node.config import ConfigError, NodeConfig, load_config, render_default_toml
from node.genesis import Genesis, GenesisError, load_genesis
from node.secretfile import SecretFileError, write_secret

__all__ = [
    "FRAME_HEADROOM",
    "HomeCheck",
    "HomeError",
    "check_home",
    "file_mode_warning",
    "generate_key_file",
    "init_home",
    "load_public_key",
    "read_admin_token",
    "write_admin_token",
]

# bytes a block needs in a frame beyond its transactions (header, certificate, framing)
FRAME_HEADROOM: Final = 64 << 10
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class HomeError(Exception):
    """A home that cannot be initialised or used as it is; the message says why."""


# ------------------------------------------------------------------ secret files
def file_mode_warning(path: Path, what: str) -> str | None:
    """A warning when ``path`` may be read or written by other users (mode looser than 0600)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if mode & 0o077:
        return f"{what} {path} has mode {mode:04o}; it should be 0600 (chmod 600 {path})"
    return None


def _write_secret(path: Path, data: bytes, *, force: bool, what: str) -> None:
    """Write a 0600 file; ``HomeError`` if it exists and not ``force``."""
    try:
        write_secret(path, data, force=force, what=what)
    except SecretFileError as exc:
        raise HomeError(str(exc)) from None


# ------------------------------------------------------------------ keys
# The key file format is node/keys.py's: {"type": "ed25519", "seed_hex", "public_key_hex"}.
def generate_key_file(path: str | os.PathLike[str], *, force: bool = False) -> str:
    """Make a new Ed25519 key, save it to ``path`` (mode 0600) and return its public key hex.

    ``HomeError`` if ``path`` exists and not ``force``.
    """
    key = keys.generate_key()
    try:
        keys.save_key(path, key, force=force)
    except keys.KeyFileError as exc:
        raise HomeError(str(exc)) from None
    return keys.public_key_hex(key)


def load_public_key(path: str | os.PathLike[str]) -> str:
    """The public key hex of the key file at ``path``; ``HomeError`` saying what is wrong."""
    try:
        return keys.public_key_hex(keys.load_key(path, on_warning=lambda _msg: None))
    except keys.KeyFileError as exc:
        raise HomeError(str(exc)) from None


# ------------------------------------------------------------------ admin token
def write_admin_token(path: str | os.PathLike[str], *, force: bool = False) -> None:
    """A fresh random bearer token (``secrets.token_urlsafe(32)``) in a 0600 file."""
    token = secrets.token_urlsafe(32)
    _write_secret(Path(path), (token + "\n").encode(), force=force, what="admin token file")


def read_admin_token(
    path: str | os.PathLike[str], *, on_warning: Callable[[str], None] | None = None
) -> str:
    """The admin bearer token stored at ``path``; a loose file mode goes to ``on_warning``."""
    source = Path(path)
    try:
        token = source.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise HomeError(
            f"admin token file {source} not found (`hygeia init` creates one)"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8"
        raise HomeError(f"cannot read admin token file {source}: {reason}") from None
    if not token or any(c.isspace() for c in token):
        raise HomeError(f"admin token file {source} must hold one token on one line")
    warning = file_mode_warning(source, "admin token file")
    if warning and on_warning is not None:
        on_warning(warning)
    return token


# ------------------------------------------------------------------ init
def init_home(
    home: str | os.PathLike[str],
    *,
    name: str | None = None,
    force: bool = False,
    settings: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Create (or complete) a node home and return the node's public key (64 hex).

    Writes ``config.toml`` when missing (commented; ``name`` and ``settings``,
    ``{"section.key": value}``, as active lines), a new node key (``HomeError``
    if one exists, unless ``force``), the admin token when missing (replaced
    with ``force``) and the data directory. ``name`` defaults to the home
    directory's name. Paths come from the effective configuration (``env``,
    default ``os.environ``, included), exactly as ``hygeia start`` will see them.
    """
    home_path = Path(home).expanduser().absolute()
    if home_path.exists() and not home_path.is_dir():
        raise HomeError(f"{home_path} exists and is not a directory")
    values = {"node.name": name or home_path.name or "hygeia-node", **(settings or {})}
    config_path = home_path / "config.toml"
    write_config = not config_path.exists()
    text = ""
    try:
        if write_config:
            text = render_default_toml(values)
            cfg = load_config(home_path, overrides=values, env=env, require_file=False)
        else:
            cfg = load_config(home_path, env=env)
    except ConfigError as e:
        raise HomeError(str(e)) from None
    key_path = cfg.node_key_path
    if not force and (key_path.exists() or key_path.is_symlink()):
        raise HomeError(
            f"{home_path} already has a node key ({key_path}); refusing to overwrite it "
            "(--force replaces it, which gives this node a new identity)"
        )
    home_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if write_config:
        tmp = config_path.with_name(f".config.toml.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, config_path)
    public = generate_key_file(key_path, force=force)
    token_path = cfg.admin_token_path
    if force or not token_path.exists():
        write_admin_token(token_path, force=force)
    cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return public


# ------------------------------------------------------------------ checks
@dataclass
class HomeCheck:
    """What ``check_home`` found: the node id, the genesis, the validator index, warnings."""

    node_id: str
    genesis: Genesis | None = None
    validator_index: int | None = None
    warnings: list[str] = field(default_factory=list)


def check_home(cfg: NodeConfig, *, genesis: bool = True) -> HomeCheck:
    """Everything ``hygeia start`` needs from a home, checked without starting anything.

    Raises ``HomeError`` for what would stop the node (missing or malformed key,
    token or genesis, frame limit below the block size); returns the loose
    file modes and other doubtful settings as warnings (with ``cfg.warnings``).
    """
    warnings = list(cfg.warnings)
    node_id = load_public_key(cfg.node_key_path)
    for path, what in ((cfg.node_key_path, "key file"),):
        warning = file_mode_warning(path, what)
        if warning:
            warnings.append(warning)
    read_admin_token(cfg.admin_token_path, on_warning=warnings.append)
    if cfg.data_dir.exists() and not cfg.data_dir.is_dir():
        raise HomeError(f"data directory {cfg.data_dir} exists and is not a directory")
    log_file = cfg.log_file_path
    if log_file is not None and not log_file.parent.is_dir():
        raise HomeError(f"log.file: directory {log_file.parent} does not exist")
    report = HomeCheck(node_id=node_id, warnings=warnings)
    if not genesis:
        return report
    try:
        gen = load_genesis(cfg.genesis_path)
    except GenesisError as e:
        raise HomeError(str(e)) from None
    report.genesis = gen
    report.validator_index = gen.validator_index(node_id)
    batch_bytes = gen.consensus["batch_max_bytes"]
    frame = cfg.p2p.max_frame_bytes
    if frame < batch_bytes:
        raise HomeError(
            f"p2p.max_frame_bytes ({frame}) is below the genesis consensus.batch_max_bytes "
            f"({batch_bytes}): full blocks could not be sent to peers"
        )
    if frame < batch_bytes + FRAME_HEADROOM:
        warnings.append(
            f"p2p.max_frame_bytes ({frame}) leaves less than {FRAME_HEADROOM} bytes above the "
            f"genesis consensus.batch_max_bytes ({batch_bytes}) for a block's header and "
            "certificate"
        )
    if cfg.mempool.max_tx_bytes > batch_bytes:
        raise HomeError(
            f"mempool.max_tx_bytes ({cfg.mempool.max_tx_bytes}) exceeds the genesis "
            f"consensus.batch_max_bytes ({batch_bytes}): such a transaction fits in no block"
        )
    return report
