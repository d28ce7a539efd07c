"""Node homes: ``hygeia init`` and the checks of the files it makes.

A home holds ``config.toml``, the node key (Ed25519, mode 0600), the admin API
token (mode 0600), ``genesis.json`` (copied in, by the operator or by
``init_home(genesis_source=...)``, never made here) and the data
directory with its database; ``docs/configuration.md`` lists them.
``init_home`` never overwrites a key without ``force``: an existing key is an
error and nothing is written. An existing ``config.toml`` is always kept (it is
the operator's; its paths are honoured) and an existing admin token is kept
unless ``force``.

``init_home`` is what creates the node's database (``hygeia start`` only opens
an existing one): in a missing or empty data directory, recording the genesis
hash when genesis.json is already there; a data directory that holds anything
is left as it is. ``check_home`` (run by ``hygeia start`` and ``hygeia config
check``) checks the database against genesis.json: another genesis hash is an
error, a damaged directory or latest block too; a database with no genesis hash
yet (made before genesis.json was copied in) gets it at the first start.
``adopt_database`` marks a database made by a hygeia older than the marker.

Secret files are created with ``O_CREAT | O_EXCL`` and mode 0600 whatever the
umask, fsynced, then linked into place (or renamed over the old file with
``force``), so a crash leaves either no file or a complete one. Secret files
that other users may read or write (the node key, the admin token) are refused
by ``load_public_key``, ``check_home`` and ``read_admin_token``: ``chmod 600``
fixes them, if the secret cannot have leaked.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from node.core import keys
from node.core.block import Block, BlockError
from node.core.secretfile import SecretFileError, write_secret
from node.setup.config import ConfigError, NodeConfig, load_config, render_default_toml
from node.setup.genesis import Genesis, GenesisError, load_genesis
from storage.db import Database, open_database
from storage.errors import StorageError, StorageWriteError
from storage.files import replace_atomically
from storage.layout import Namespace
from storage.marker import RECOVER, DatabaseInUseError, GenesisMismatchError, is_vacant
from storage.reader import LevelReader

__all__ = [
    "FRAME_HEADROOM",
    "HomeCheck",
    "HomeError",
    "adopt_database",
    "check_home",
    "create_database",
    "file_mode_warning",
    "generate_key_file",
    "init_home",
    "load_public_key",
    "read_admin_token",
    "write_admin_token",
]

# bytes a block needs in a frame beyond its transactions (header, certificate, framing)
FRAME_HEADROOM: Final = 64 << 10


class HomeError(Exception):
    """A home that cannot be initialised or used as it is; the message says why."""


# ------------------------------------------------------------------ secret files
def file_mode_warning(path: Path, what: str) -> str | None:
    """The refusal for a secret file ``path`` that other users may read or write
    (mode looser than 0600), or None. Callers refuse the file with it."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    return keys.loose_mode_error(path, mode, what)


def _write_secret(path: Path, data: bytes, *, force: bool, what: str) -> None:
    """Write a 0600 file; ``HomeError`` if it exists and not ``force``."""
    try:
        write_secret(path, data, force=force, what=what)
    except SecretFileError as exc:
        raise HomeError(str(exc)) from None


# ------------------------------------------------------------------ keys
# The key file format is node/core/keys.py's: {"type": "ed25519", "seed_hex", "public_key_hex"}.
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
    """The admin bearer token stored at ``path``; ``HomeError`` if other users may read
    or write the file. ``on_warning`` is accepted for compatibility, no longer called."""
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
    if warning is not None:
        raise HomeError(warning)
    return token


# ------------------------------------------------------------------ init
def init_home(
    home: str | os.PathLike[str],
    *,
    name: str | None = None,
    force: bool = False,
    settings: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    database: bool = True,
    genesis_source: str | os.PathLike[str] | None = None,
) -> str:
    """Create (or complete) a node home and return the node's public key (64 hex).

    Writes ``config.toml`` when missing (commented; ``name`` and ``settings``,
    ``{"section.key": value}``, as active lines), a new node key (``HomeError``
    if one exists, unless ``force``), the admin token when missing (replaced
    with ``force``) and, with ``database``, a new database in the data directory
    when it is missing or empty (``create_database``; one that holds anything is
    kept as it is). ``name`` defaults to the home directory's name. Paths come
    from the effective configuration (``env``, default ``os.environ``, included),
    exactly as ``hygeia start`` will see them.

    ``genesis_source``, a genesis.json to copy to the home's genesis path
    (``hygeia init --genesis``), must load; a genesis.json already in the home
    must be byte-identical to it (kept as it is) or nothing is written
    (``HomeError``). The new database then records its genesis hash.
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
    copy: bytes | None = None
    genesis: Genesis | None
    if genesis_source is not None:
        genesis, copy = _genesis_to_copy(cfg, Path(genesis_source))
    else:
        genesis = _genesis_if_present(cfg) if database else None
    home_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if write_config:
        replace_atomically(config_path, text.encode("utf-8"))
    public = generate_key_file(key_path, force=force)
    token_path = cfg.admin_token_path
    if force or not token_path.exists():
        write_admin_token(token_path, force=force)
    if copy is not None:
        cfg.genesis_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        replace_atomically(cfg.genesis_path, copy)
    if database:
        create_database(cfg, genesis)
    else:
        cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return public


def _genesis_to_copy(cfg: NodeConfig, source: Path) -> tuple[Genesis, bytes | None]:
    """The genesis of ``source`` and its bytes to write at ``cfg.genesis_path`` (None:
    that file is already the same); ``HomeError`` if ``source`` does not load or the
    home has another genesis.json."""
    try:
        genesis = load_genesis(source)
        data = source.read_bytes()
    except GenesisError as e:
        raise HomeError(str(e)) from None
    except OSError as e:
        raise HomeError(f"{source}: cannot read: {e.strerror}") from None
    target = cfg.genesis_path
    if not (target.exists() or target.is_symlink()):
        return genesis, data
    try:
        present = target.read_bytes()
    except OSError as e:
        raise HomeError(f"{target}: cannot read: {e.strerror}") from None
    if present == data:
        return genesis, None
    try:
        theirs = f"genesis hash {load_genesis(target).genesis_hash_hex()}"
    except GenesisError:
        theirs = "not a valid genesis"
    raise HomeError(
        f"{target} already exists and differs from {source} ({theirs}; the given one has "
        f"genesis hash {genesis.genesis_hash_hex()}): refusing to replace it, a home belongs "
        "to one chain. Remove it if it is a leftover, or give the new chain a new home"
    )


def _genesis_if_present(cfg: NodeConfig) -> Genesis | None:
    if not cfg.genesis_path.exists():
        return None
    try:
        return load_genesis(cfg.genesis_path)
    except GenesisError as e:
        raise HomeError(str(e)) from None


# ------------------------------------------------------------------ database
def create_database(cfg: NodeConfig, genesis: Genesis | None) -> bool:
    """Create the node's database in ``cfg.data_dir`` if that is missing or empty,
    recording ``genesis``'s hash when given; return whether one was created. A data
    directory that holds anything is left untouched (``check_home`` judges it)."""
    try:
        if not is_vacant(cfg.data_dir):
            return False
        genesis_hash = genesis.genesis_hash() if genesis is not None else None
        open_database(cfg.data_dir, create=True, genesis_hash=genesis_hash).close()
    except StorageError as exc:
        raise HomeError(str(exc)) from None
    return True


def _wrong_genesis(cfg: NodeConfig, exc: GenesisMismatchError) -> HomeError:
    return HomeError(
        f"{cfg.genesis_path} has genesis hash {exc.expected}, but the database "
        f"{cfg.data_dir} belongs to the chain whose genesis hash is {exc.recorded}: "
        "wrong genesis.json for this home (another chain, or changed parameters); "
        "refusing to use them together. Put back the genesis.json this node ran with, "
        "or give the new genesis a new home"
    )


def _pristine(db: Database) -> bool:
    """No block, app state or consensus record: nothing a genesis could contradict."""
    return all(
        next(iter(db.iterate(ns)), None) is None
        for ns in (Namespace.BLOCKS, Namespace.STATE, Namespace.CONSENSUS)
    )


def _check_latest_block(cfg: NodeConfig, db: Database, genesis: Genesis) -> int:
    """The tip height, after checking the block there decodes and belongs to this chain."""
    reader = LevelReader(db)
    height = reader.tip_height()
    if height == 0:
        return 0
    raw = reader.block_by_height(height)
    problem = ""
    if raw is None:  # storage checks this when opening; kept for a store opened otherwise
        problem = "is missing"
    else:
        try:
            block = Block.from_bytes(raw)
        except BlockError as e:
            problem = f"cannot be read ({e})"
        else:
            if block.height != height:
                problem = f"holds the block of height {block.height}"
            elif block.header.chain_id != genesis.chain_id:
                problem = (
                    f"belongs to chain {block.header.chain_id!r}, not to "
                    f"{genesis.chain_id!r} of {cfg.genesis_path}"
                )
    if problem:
        raise HomeError(
            f"database {cfg.data_dir} is damaged: its latest block (height {height}) "
            f"{problem}; refusing to start. Nothing was repaired: {RECOVER}"
        )
    return height


def _adopt_hint(cfg: NodeConfig) -> str:
    return f"`hygeia init --home {cfg.home} --adopt-database`"


def _check_database(cfg: NodeConfig, genesis: Genesis, report: HomeCheck, *, start: bool) -> None:
    expected = genesis.genesis_hash()
    try:
        db = open_database(cfg.data_dir, genesis_hash=expected)
    except GenesisMismatchError as exc:
        raise _wrong_genesis(cfg, exc) from None
    except DatabaseInUseError as exc:
        if start:
            raise HomeError(f"{exc}: is this node already running?") from None
        # its marker (and so its genesis hash) was checked before LevelDB was asked
        report.warnings.append(
            f"{exc}: the node is running; only its marker (genesis hash) was checked"
        )
        return
    except StorageWriteError as exc:  # opening writes too (LevelDB's recovery, the marker)
        if not exc.disk_full:
            raise HomeError(str(exc)) from None
        raise HomeError(
            f"{exc}: the disk is full; free space on the filesystem holding {cfg.data_dir} "
            "(or grow it), then start the node again"
        ) from None
    except StorageError as exc:
        message = str(exc).replace("`hygeia init --home HOME --adopt-database`", _adopt_hint(cfg))
        if is_vacant(cfg.data_dir):
            message += f" (a home made by an older hygeia: {_adopt_hint(cfg)} creates it)"
        raise HomeError(message) from None
    try:
        with db:
            report.height = _check_latest_block(cfg, db, genesis)
            if db.genesis_hash is not None:
                return
            if not _pristine(db):
                raise HomeError(
                    f"database {cfg.data_dir} holds a chain but no recorded genesis hash; "
                    f"{_adopt_hint(cfg)} checks it against {cfg.genesis_path} and records it"
                )
            if start:
                db.record_genesis(expected)
            else:
                report.warnings.append(
                    f"database {cfg.data_dir} is empty and has no genesis hash yet; the first "
                    f"`hygeia start` records the hash of {cfg.genesis_path}"
                )
    except StorageError as exc:
        raise HomeError(str(exc)) from None


def adopt_database(cfg: NodeConfig) -> int:
    """Mark a database made by a hygeia older than the ``HYGEIA`` marker, and record the
    hash of the home's genesis.json in it, after checking that its latest block decodes
    and belongs to genesis.json's chain; in a missing or empty data directory, create
    the database. Returns its height. A database that is already marked is only
    checked (another genesis hash is refused)."""
    try:
        genesis = load_genesis(cfg.genesis_path)
    except GenesisError as e:
        raise HomeError(str(e)) from None
    if create_database(cfg, genesis):  # a home made before init created the database
        return 0
    try:
        db = open_database(cfg.data_dir, genesis_hash=genesis.genesis_hash(), adopt=True)
    except GenesisMismatchError as exc:
        raise _wrong_genesis(cfg, exc) from None
    except StorageError as exc:
        raise HomeError(str(exc)) from None
    try:
        with db:
            height = _check_latest_block(cfg, db, genesis)
            db.record_genesis(genesis.genesis_hash())
    except GenesisMismatchError as exc:
        raise _wrong_genesis(cfg, exc) from None
    except StorageError as exc:
        raise HomeError(str(exc)) from None
    return height


# ------------------------------------------------------------------ checks
@dataclass
class HomeCheck:
    """What ``check_home`` found: the node id, the genesis, the validator index, warnings."""

    node_id: str
    genesis: Genesis | None = None
    validator_index: int | None = None
    warnings: list[str] = field(default_factory=list)
    height: int | None = None  # the database's tip height (None: not opened)


def check_home(cfg: NodeConfig, *, genesis: bool = True, start: bool = True) -> HomeCheck:
    """Everything ``hygeia start`` needs from a home, checked without starting the node.

    Raises ``HomeError`` for what would stop the node (missing, malformed or
    world-readable key or token, malformed genesis, frame limit below the block
    size) and, with ``genesis``, for a database that is missing, damaged (no
    ``CURRENT``, a latest block missing or unreadable) or of another genesis.
    Returns doubtful settings as warnings (with ``cfg.warnings``).

    ``start`` (``hygeia start``) records genesis.json's hash in a database that has
    none yet and is still empty; without it (``hygeia config check``) nothing is
    written, and a database held by the running node is only checked through its
    marker (a warning says so) instead of being an error.
    """
    warnings = list(cfg.warnings)
    node_id = load_public_key(cfg.node_key_path)
    read_admin_token(cfg.admin_token_path)
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
    _check_database(cfg, gen, report, start=start)
    return report
