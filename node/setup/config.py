"""Node configuration: the schema of ``<home>/config.toml``, its loader, its reference.

The schema is the set of frozen section dataclasses below. Every key carries,
in its field metadata, a description, a kind (how it is parsed from TOML and
from environment/flag text) and an optional check. The same metadata renders
``docs/configuration.md`` (``node.setup.reference``; a test keeps the file
equal to it), the commented
``config.toml`` that ``hygeia init`` writes (``render_default_toml``) and the
effective configuration that ``hygeia config show`` prints — so none of them
can drift from what the loader accepts.

Precedence, highest first (``load_config``):

1. command-line flags (``overrides``: ``{"section.key": value}``; a string is
   parsed like an environment variable, anything else must have the key's type);
2. environment variables ``HYGEIA_<SECTION>_<KEY>`` (upper-case), parsed by type;
3. ``<home>/config.toml`` (read with ``tomllib``);
4. the defaults of the schema.

Unknown sections and keys in the file are errors naming the file, the key and
the closest known spelling; a value of the wrong type is an error naming
``section.key``, the expected type and the value. An environment variable that
looks like ``HYGEIA_<SECTION>_<KEY>`` for a known section but names no key is
a warning (``NodeConfig.warnings``): other ``HYGEIA_*`` variables belong to
other tools. Every error is a ``ConfigError`` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from node.mempool import MempoolLimits
from node.net.addr import WILDCARD_HOSTS, Peer, is_loopback_host, parse_host_port, parse_peer

__all__ = [
    "CONFIG_FILE",
    "ENV_PREFIX",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "REDACTED",
    "SECTIONS",
    "AdminSection",
    "ApiSection",
    "ConfigError",
    "LogSection",
    "MempoolSection",
    "NodeConfig",
    "NodeSection",
    "P2PSection",
    "ShutdownSection",
    "SyncSection",
    "default_config",
    "env_var_name",
    "load_config",
    "parse_overrides",
    "redacted",
    "render_default_toml",
    "render_toml",
    "schema",
    "toml_value",
]

CONFIG_FILE: Final = "config.toml"
ENV_PREFIX: Final = "HYGEIA_"
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS: Final = ("auto", "json", "console")
REDACTED: Final = "<redacted>"


class ConfigError(ValueError):
    """A configuration that cannot be used as written; the message says where and why."""


class _Mismatch(Exception):
    """A value of the wrong type (internal): the argument is the expected type."""


class _Invalid(Exception):
    """A value of the right type that is not acceptable (internal): the argument says why."""


# ------------------------------------------------------------------ kinds
def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    try:
        return toml_value(value)
    except TypeError:
        return repr(value)


@dataclass(frozen=True)
class Kind:
    """How one key's value is read (from TOML, from text) and written (plain JSON/TOML data)."""

    label: str  # in the reference: "integer", "host:port", ...
    expected: str  # in errors: "an integer", ...
    from_toml: Callable[[Any], Any]
    from_text: Callable[[str], Any]
    to_plain: Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _toml_str(value: Any) -> str:
    if not isinstance(value, str):
        raise _Mismatch
    return value


def _toml_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Mismatch
    return value


def _toml_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Mismatch
    return value


def _toml_str_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Mismatch
    return tuple(value)


def _toml_table(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _Mismatch
    return dict(value)


_INT_TEXT = re.compile(r"[+-]?[0-9](?:_?[0-9])*")
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


def _text_int(text: str) -> int:
    if not _INT_TEXT.fullmatch(text.strip()):
        raise _Mismatch
    return int(text.strip().replace("_", ""))


def _text_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise _Mismatch


def _text_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _text_table(text: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for part in _text_list(text):
        name, sep, value = part.partition("=")
        if not sep:
            raise _Mismatch
        table[name.strip()] = value.strip()
    return table


def _peers_from_strings(items: tuple[str, ...]) -> tuple[Peer, ...]:
    peers = []
    for item in items:
        try:
            peers.append(parse_peer(item))
        except ValueError as e:
            raise _Invalid(str(e)) from None
    return tuple(peers)


STRING: Final = Kind("string", "a string", _toml_str, _identity, _identity)
PATH: Final = Kind("path", "a string (a path)", _toml_str, _identity, _identity)
HOST_PORT: Final = Kind("host:port", "a string host:port", _toml_str, str.strip, _identity)
INTEGER: Final = Kind("integer", "an integer", _toml_int, _text_int, _identity)
BOOLEAN: Final = Kind("boolean", "a boolean (true or false)", _toml_bool, _text_bool, _identity)
PEERS: Final = Kind(
    "array of ID@HOST:PORT strings",
    "an array of strings ID@HOST:PORT",
    lambda v: _peers_from_strings(_toml_str_list(v)),
    lambda t: _peers_from_strings(_text_list(t)),
    lambda peers: [str(p) for p in peers],
)
LEVEL_TABLE: Final = Kind(
    "table of module = level",
    "a table of strings (module = level)",
    _toml_table,
    _text_table,
    dict,
)


# ------------------------------------------------------------------ checks
def _positive(value: int) -> None:
    if value < 1:
        raise _Invalid(f"must be a positive integer, got {value}")


def _non_negative(value: int) -> None:
    if value < 0:
        raise _Invalid(f"must be 0 or a positive integer, got {value}")


def _non_empty(value: str) -> None:
    if not value.strip():
        raise _Invalid("must not be empty")


def _listen_address(value: str) -> None:
    try:
        parse_host_port(value, allow_zero_port=True)
    except ValueError as e:
        raise _Invalid(str(e)) from None


def _one_of(*choices: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value not in choices:
            raise _Invalid(f"must be one of {', '.join(choices)}; got {value!r}")

    return check


def _name(value: str) -> None:
    _non_empty(value)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or len(value) > 64:
        raise _Invalid("must be at most 64 printable characters")


def _module_levels(value: Mapping[str, str]) -> None:
    for module, level in value.items():
        if not module or any(not part for part in module.split(".")):
            raise _Invalid(f"{module!r} is not a module name like node.net")
        if level not in LOG_LEVELS:
            raise _Invalid(f"{module}: level must be one of {', '.join(LOG_LEVELS)}; got {level!r}")


def _opt(
    default: Any,
    doc: str,
    kind: Kind,
    check: Callable[[Any], None] | None = None,
    *,
    factory: bool = False,
    secret: bool = False,
) -> Any:
    meta = {"doc": doc, "kind": kind, "check": check, "secret": secret}
    if factory:
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


# ------------------------------------------------------------------ the schema
# the keys both HTTP listeners ([api], [admin]) have, with their own defaults
# (node.api.listener applies them; docs/operator.md, "HTTP listeners")
def _max_connections(default: int) -> Any:
    return _opt(
        default,
        "Most open connections of this listener; a connection beyond it is answered "
        "503 `too-many-connections` and closed at once. Each one is a file handle: "
        "the node checks its file-handle limit at start against the sum.",
        INTEGER,
        _positive,
    )


def _max_connections_per_source(default: int) -> Any:
    return _opt(
        default,
        "Most open connections of this listener from one IP address (a gateway in "
        "front of the node is one address: raise it to match), so that one client "
        "cannot take them all; beyond it 503 `too-many-connections`.",
        INTEGER,
        _positive,
    )


def _read_timeout_ms(default: int) -> Any:
    return _opt(
        default,
        "A request's head must arrive within this many milliseconds (from the "
        "connection's opening, or from the first byte of a later request on it), "
        "and its body within as long again; a slower client is disconnected "
        "(the body: 408 `request-timeout`).",
        INTEGER,
        _positive,
    )


def _keepalive_timeout_ms(default: int) -> Any:
    return _opt(
        default,
        "An idle keep-alive connection (no request in progress) is closed after this "
        "many milliseconds.",
        INTEGER,
        _positive,
    )


@dataclass(frozen=True)
class NodeSection:
    """Identity and the files of the home directory."""

    name: str = _opt(
        "hygeia-node",
        "A human-readable name for this node, shown in logs and in the admin `/status`. "
        "It identifies nothing: the node's identity is its node key. "
        "`hygeia init` sets it to `--name` (default: the home directory's name).",
        STRING,
        _name,
    )
    data_dir: str = _opt(
        "data",
        "Directory of the node's LevelDB database. Relative paths are relative to the home.",
        PATH,
        _non_empty,
    )
    node_key_file: str = _opt(
        "node_key.json",
        "The node's Ed25519 key file (mode 0600). Its public key is the node id and, "
        "for a validator, the `node_key` of its entry in genesis.json. Relative to the home.",
        PATH,
        _non_empty,
    )
    genesis_file: str = _opt(
        "genesis.json",
        "The consortium's genesis.json, byte-identical on every node. Relative to the home.",
        PATH,
        _non_empty,
    )


@dataclass(frozen=True)
class P2PSection:
    """The peer-to-peer network: validators dial each other at their genesis addresses."""

    listen: str = _opt(
        "0.0.0.0:26656",
        "host:port the peer listener binds (`[::]:26656` for IPv6). Port 0 picks a free port.",
        HOST_PORT,
        _listen_address,
    )
    peers: tuple[Peer, ...] = _opt(
        (),
        "Non-validator peers to dial, as `ID@HOST:PORT` (ID: the peer's 64-hex node key). "
        "Validators are dialled at the `p2p` addresses of genesis.json and need not be listed.",
        PEERS,
    )
    max_frame_bytes: int = _opt(
        4 << 20,
        "Largest frame sent to or accepted from a peer, in bytes. At least "
        "`mempool.max_tx_bytes`; `hygeia config check` also wants it above the genesis "
        "`consensus.batch_max_bytes`, so that a full block fits in one frame.",
        INTEGER,
        _positive,
    )
    send_queue_limit: int = _opt(
        1024,
        "Frames queued for one peer (one bounded queue and one writer per peer), so that "
        "a slow peer cannot make the node buffer without limit.",
        INTEGER,
        _positive,
    )
    dial_backoff_min_ms: int = _opt(
        500,
        "Delay before redialling a peer after a failed dial or a lost link; it doubles "
        "with each consecutive failure up to `dial_backoff_max_ms`.",
        INTEGER,
        _positive,
    )
    dial_backoff_max_ms: int = _opt(
        30_000,
        "Longest delay between two dials of the same peer.",
        INTEGER,
        _positive,
    )


@dataclass(frozen=True)
class ApiSection:
    """The client API used by institutions' applications (`/v1/...`)."""

    listen: str = _opt(
        "127.0.0.1:26657",
        "host:port the client API binds. Loopback by default: put it behind your own "
        "gateway, or bind `0.0.0.0:26657` deliberately.",
        HOST_PORT,
        _listen_address,
    )
    max_connections: int = _max_connections(512)
    max_connections_per_source: int = _max_connections_per_source(64)
    read_timeout_ms: int = _read_timeout_ms(10_000)
    keepalive_timeout_ms: int = _keepalive_timeout_ms(30_000)


@dataclass(frozen=True)
class AdminSection:
    """The operator API (`/health`, `/status`, `/peers`, `/consensus`, `/metrics`)."""

    listen: str = _opt(
        "127.0.0.1:26658",
        "host:port the admin API binds. Loading a config that binds it to a "
        "non-loopback address gives a warning.",
        HOST_PORT,
        _listen_address,
    )
    token_file: str = _opt(
        "admin_token",
        "File (mode 0600) holding the bearer token the admin API requires "
        "(`Authorization: Bearer <token>`). Relative to the home. The token itself is "
        "never part of the configuration and never logged.",
        PATH,
        _non_empty,
    )
    enable_mutations: bool = _opt(
        False,
        "Enable the admin endpoints that change the running node; the read-only "
        "endpoints are always on.",
        BOOLEAN,
    )
    health_min_free_disk_mib: int = _opt(
        512,
        "`GET /health` answers 503 `disk low` when the filesystem of `node.data_dir` has "
        "less than this many MiB free (a full disk stops the node's writes). 0: no check.",
        INTEGER,
        _non_negative,
    )
    max_connections: int = _max_connections(64)
    max_connections_per_source: int = _max_connections_per_source(16)
    read_timeout_ms: int = _read_timeout_ms(10_000)
    keepalive_timeout_ms: int = _keepalive_timeout_ms(30_000)


_MEMPOOL: Final = MempoolLimits()


@dataclass(frozen=True)
class MempoolSection:
    """Bounds of the pool of admitted, not yet committed transactions."""

    max_txs: int = _opt(
        _MEMPOOL.max_txs,
        "Most transactions held; beyond it submissions get `mempool-full` (HTTP 503).",
        INTEGER,
        _positive,
    )
    max_bytes: int = _opt(
        _MEMPOOL.max_bytes,
        "Most bytes of transactions held; beyond it submissions get `mempool-full`.",
        INTEGER,
        _positive,
    )
    max_tx_bytes: int = _opt(
        _MEMPOOL.max_tx_bytes,
        "Largest transaction accepted, in wire bytes. At most `max_bytes` and "
        "`p2p.max_frame_bytes`.",
        INTEGER,
        _positive,
    )
    per_signer_max: int = _opt(
        _MEMPOOL.per_signer_max,
        "Most pending transactions of one signer, so that one busy or hostile signer "
        "cannot crowd out the others.",
        INTEGER,
        _positive,
    )


@dataclass(frozen=True)
class SyncSection:
    """Block sync: catching up with the chain from peers."""

    parallel_peers: int = _opt(
        4,
        "Peers asked for blocks at the same time while catching up.",
        INTEGER,
        _positive,
    )
    batch_size: int = _opt(
        64,
        "Blocks asked for in one sync request.",
        INTEGER,
        _positive,
    )


@dataclass(frozen=True)
class LogSection:
    """Structured logs (structlog)."""

    level: str = _opt(
        "info",
        f"Lowest level logged: {', '.join(LOG_LEVELS)}.",
        STRING,
        _one_of(*LOG_LEVELS),
    )
    format: str = _opt(
        "auto",
        "`json` (one JSON object per line), `console` (readable, for people) or `auto`: "
        "console when the output is a terminal, JSON otherwise.",
        STRING,
        _one_of(*LOG_FORMATS),
    )
    modules: Mapping[str, str] = _opt(
        dict,
        "Levels per module, overriding `level` for that logger and its children, e.g. "
        '`{ "node.net" = "debug", "aiohttp.access" = "warning" }`.',
        LEVEL_TABLE,
        _module_levels,
        factory=True,
    )
    file: str = _opt(
        "",
        "Also write the logs to this file (format as for a non-terminal), reopened on "
        "SIGHUP for log rotation. Empty: no file. Relative to the home.",
        PATH,
    )


@dataclass(frozen=True)
class ShutdownSection:
    """Clean shutdown on SIGTERM/SIGINT."""

    timeout_ms: int = _opt(
        10_000,
        "How long to wait for in-flight work (writes, peer links, HTTP requests) to "
        "finish on SIGTERM/SIGINT before exiting anyway.",
        INTEGER,
        _positive,
    )


SECTIONS: Final[dict[str, type[Any]]] = {
    "node": NodeSection,
    "p2p": P2PSection,
    "api": ApiSection,
    "admin": AdminSection,
    "mempool": MempoolSection,
    "sync": SyncSection,
    "log": LogSection,
    "shutdown": ShutdownSection,
}


@dataclass(frozen=True)
class Key:
    """One configuration key of the schema."""

    section: str
    name: str
    kind: Kind
    default: Any
    doc: str
    check: Callable[[Any], None] | None
    secret: bool

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def env_var(self) -> str:
        return env_var_name(self.section, self.name)


def env_var_name(section: str, key: str) -> str:
    """``HYGEIA_<SECTION>_<KEY>``, upper-case."""
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def _keys_of(section: str, cls: type[Any]) -> dict[str, Key]:
    keys = {}
    for f in dataclasses.fields(cls):
        factory: Callable[[], Any] | None = None
        if not isinstance(f.default_factory, dataclasses._MISSING_TYPE):
            factory = f.default_factory
        default = factory() if factory is not None else f.default
        keys[f.name] = Key(
            section,
            f.name,
            f.metadata["kind"],
            default,
            f.metadata["doc"],
            f.metadata["check"],
            f.metadata["secret"],
        )
    return keys


_SCHEMA: Final = {name: _keys_of(name, cls) for name, cls in SECTIONS.items()}


def schema() -> dict[str, dict[str, Key]]:
    """Section -> key -> ``Key``, in file order."""
    return {section: dict(keys) for section, keys in _SCHEMA.items()}


# ------------------------------------------------------------------ the loaded config
@dataclass(frozen=True)
class NodeConfig:
    """The effective configuration of one node home."""

    home: Path
    node: NodeSection = field(default_factory=NodeSection)
    p2p: P2PSection = field(default_factory=P2PSection)
    api: ApiSection = field(default_factory=ApiSection)
    admin: AdminSection = field(default_factory=AdminSection)
    mempool: MempoolSection = field(default_factory=MempoolSection)
    sync: SyncSection = field(default_factory=SyncSection)
    log: LogSection = field(default_factory=LogSection)
    shutdown: ShutdownSection = field(default_factory=ShutdownSection)
    # "section.key" -> where a non-default value came from: "file <path>",
    # "environment HYGEIA_...", "command line"
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)
    # non-fatal findings of loading (stray HYGEIA_* variables, a public admin listener)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    # -- paths, resolved against the home
    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.home / p

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    @property
    def data_dir(self) -> Path:
        return self.path(self.node.data_dir)

    @property
    def node_key_path(self) -> Path:
        return self.path(self.node.node_key_file)

    @property
    def genesis_path(self) -> Path:
        return self.path(self.node.genesis_file)

    @property
    def admin_token_path(self) -> Path:
        return self.path(self.admin.token_file)

    @property
    def log_file_path(self) -> Path | None:
        return self.path(self.log.file) if self.log.file else None

    def mempool_limits(self) -> MempoolLimits:
        m = self.mempool
        return MempoolLimits(
            max_txs=m.max_txs,
            max_bytes=m.max_bytes,
            max_tx_bytes=m.max_tx_bytes,
            per_signer_max=m.per_signer_max,
        )

    def value(self, dotted: str) -> Any:
        section, _, key = dotted.partition(".")
        return getattr(getattr(self, section), key)

    def effective_config_redacted(self) -> dict[str, Any]:
        """The effective configuration as plain JSON data, for logs and ``config show``.

        Secret keys read ``"<redacted>"``; the admin token is not part of the
        configuration at all (only the path of its file is).
        """
        return redacted(self)


def redacted(cfg: NodeConfig) -> dict[str, Any]:
    """``{"home": str, "<section>": {"<key>": plain value}}`` with secrets redacted."""
    out: dict[str, Any] = {"home": str(cfg.home)}
    for section, keys in _SCHEMA.items():
        sec = getattr(cfg, section)
        out[section] = {
            k.name: REDACTED if k.secret else k.kind.to_plain(getattr(sec, k.name))
            for k in keys.values()
        }
    return out


# ------------------------------------------------------------------ loading
def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else ""


def _unknown_key(where: str, section: str, key: str) -> ConfigError:
    hint = _suggest(key, _SCHEMA[section])
    tail = f" (did you mean {hint}?)" if hint else f" (known: {', '.join(_SCHEMA[section])})"
    return ConfigError(f"{where}: unknown key [{section}] {key}{tail}")


def _unknown_section(where: str, section: str) -> ConfigError:
    hint = _suggest(section, _SCHEMA)
    tail = f" (did you mean [{hint}]?)" if hint else f" (sections: {', '.join(_SCHEMA)})"
    return ConfigError(f"{where}: unknown section [{section}]{tail}")


def _convert(key: Key, raw: Any, where: str, *, text: bool) -> Any:
    try:
        return key.kind.from_text(raw) if text else key.kind.from_toml(raw)
    except _Mismatch:
        raise ConfigError(
            f"{where}: {key.dotted}: expected {key.kind.expected}, got {_show(raw)}"
            + ("" if text else f" ({_type_name(raw)})")
        ) from None
    except _Invalid as e:
        raise ConfigError(f"{where}: {key.dotted}: {e}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None


def _from_file(path: Path, values: dict[str, Any], origins: dict[str, str]) -> None:
    where = str(path)
    for section, table in _read_toml(path).items():
        if section not in _SCHEMA:
            if not isinstance(table, dict):
                hint = ""
                for sec, keys in _SCHEMA.items():
                    if section in keys:
                        hint = f" (put it under [{sec}])"
                        break
                raise ConfigError(f"{where}: key {section} is outside any section{hint}")
            raise _unknown_section(where, section)
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{section}] must be a table, got {_show(table)}")
        for name, raw in table.items():
            key = _SCHEMA[section].get(name)
            if key is None:
                raise _unknown_key(where, section, name)
            values[key.dotted] = _convert(key, raw, where, text=False)
            origins[key.dotted] = f"file {path}"


def _from_env(
    env: Mapping[str, str], values: dict[str, Any], origins: dict[str, str], warnings: list[str]
) -> None:
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        for section, keys in _SCHEMA.items():
            prefix = section.upper() + "_"
            if not rest.startswith(prefix):
                continue
            key = keys.get(rest[len(prefix) :].lower())
            if key is None:
                hint = _suggest(rest[len(prefix) :].lower(), keys)
                note = f" (did you mean {env_var_name(section, hint)}?)" if hint else ""
                warnings.append(
                    f"environment variable {name} ignored: [{section}] has no such key{note}"
                )
                break
            where = f"environment variable {name}"
            values[key.dotted] = _convert(key, env[name], where, text=True)
            origins[key.dotted] = f"environment {name}"
            break


def _from_overrides(
    overrides: Mapping[str, Any], values: dict[str, Any], origins: dict[str, str]
) -> None:
    for dotted, raw in overrides.items():
        section, _, name = dotted.partition(".")
        if section not in _SCHEMA:
            raise _unknown_section("command line", section)
        key = _SCHEMA[section].get(name)
        if key is None:
            raise _unknown_key("command line", section, name)
        text = isinstance(raw, str) and key.kind.from_text is not _identity
        if isinstance(raw, list | tuple):
            raw = [str(p) if isinstance(p, Peer) else p for p in raw]
        values[key.dotted] = _convert(key, raw, "command line", text=text)
        origins[key.dotted] = "command line"


def _origin_where(origin: str) -> str:
    if origin.startswith("file "):
        return origin[len("file ") :]
    if origin.startswith("environment "):
        return "environment variable " + origin[len("environment ") :]
    return origin or "default"


def _cross_checks(cfg: NodeConfig, warnings: list[str]) -> None:
    def where(*dotted: str) -> str:
        places = []
        for d in dotted:
            origin = cfg.origins.get(d)
            if origin and _origin_where(origin) not in places:
                places.append(_origin_where(origin))
        return ", ".join(places) or "defaults"

    def fail(message: str, *dotted: str) -> ConfigError:
        return ConfigError(f"{where(*dotted)}: {message}")

    p2p, mem = cfg.p2p, cfg.mempool
    if p2p.dial_backoff_min_ms > p2p.dial_backoff_max_ms:
        raise fail(
            f"p2p.dial_backoff_min_ms ({p2p.dial_backoff_min_ms}) must not exceed "
            f"p2p.dial_backoff_max_ms ({p2p.dial_backoff_max_ms})",
            "p2p.dial_backoff_min_ms",
            "p2p.dial_backoff_max_ms",
        )
    if mem.max_tx_bytes > mem.max_bytes:
        raise fail(
            f"mempool.max_tx_bytes ({mem.max_tx_bytes}) must not exceed "
            f"mempool.max_bytes ({mem.max_bytes})",
            "mempool.max_tx_bytes",
            "mempool.max_bytes",
        )
    if mem.max_tx_bytes > p2p.max_frame_bytes:
        raise fail(
            f"mempool.max_tx_bytes ({mem.max_tx_bytes}) must not exceed "
            f"p2p.max_frame_bytes ({p2p.max_frame_bytes}): a transaction must fit in a frame",
            "mempool.max_tx_bytes",
            "p2p.max_frame_bytes",
        )
    for name, http in (("api", cfg.api), ("admin", cfg.admin)):
        if http.max_connections_per_source > http.max_connections:
            raise fail(
                f"{name}.max_connections_per_source ({http.max_connections_per_source}) must "
                f"not exceed {name}.max_connections ({http.max_connections})",
                f"{name}.max_connections_per_source",
                f"{name}.max_connections",
            )
    listeners = {"p2p.listen": p2p.listen, "api.listen": cfg.api.listen}
    listeners["admin.listen"] = cfg.admin.listen
    bound: list[tuple[str, str, int]] = []
    for dotted, address in listeners.items():
        host, port = parse_host_port(address, allow_zero_port=True)
        for other, other_host, other_port in bound:
            if (
                port
                and port == other_port
                and (host == other_host or host in WILDCARD_HOSTS or other_host in WILDCARD_HOSTS)
            ):
                raise fail(
                    f"{dotted} ({address}) and {other} ({listeners[other]}) use the same port",
                    dotted,
                    other,
                )
        bound.append((dotted, host, port))
    admin_host, _ = parse_host_port(cfg.admin.listen, allow_zero_port=True)
    if not is_loopback_host(admin_host):
        warnings.append(
            f"admin.listen {cfg.admin.listen} is not a loopback address: the admin API is "
            "reachable from the network (only its bearer token protects it)"
        )


def _build(
    home: Path,
    values: Mapping[str, Any],
    origins: Mapping[str, str],
    warnings: list[str],
) -> NodeConfig:
    sections: dict[str, Any] = {}
    for section, keys in _SCHEMA.items():
        kwargs = {}
        for key in keys.values():
            value = values.get(key.dotted, key.default)
            if key.check is not None:
                try:
                    key.check(value)
                except _Invalid as e:
                    where = _origin_where(origins.get(key.dotted, ""))
                    raise ConfigError(f"{where}: {key.dotted}: {e}") from None
            kwargs[key.name] = value
        sections[section] = SECTIONS[section](**kwargs)
    cfg = NodeConfig(home=home, **sections, origins=dict(origins))
    _cross_checks(cfg, warnings)
    return dataclasses.replace(cfg, warnings=tuple(warnings))


def load_config(
    home: str | os.PathLike[str],
    *,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    require_file: bool = True,
) -> NodeConfig:
    """The effective configuration of ``home``: flags > environment > config.toml > defaults.

    ``overrides`` maps ``"section.key"`` to a value from the command line (text
    is parsed like an environment variable). ``env`` defaults to ``os.environ``.
    Without ``<home>/config.toml`` this is an error unless ``require_file`` is
    false. Raises ``ConfigError`` with a one-line message.
    """
    home_path = Path(home).expanduser().absolute()
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    warnings: list[str] = []
    path = home_path / CONFIG_FILE
    if path.is_file():
        _from_file(path, values, origins)
    elif path.exists():
        raise ConfigError(f"{path}: not a regular file")
    elif require_file:
        raise ConfigError(
            f"{path}: not found (is {home_path} a node home? create one with "
            f"`hygeia init --home {home}`)"
        )
    _from_env(os.environ if env is None else env, values, origins, warnings)
    _from_overrides(overrides or {}, values, origins)
    return _build(home_path, values, origins, warnings)


def default_config(home: str | os.PathLike[str] = ".") -> NodeConfig:
    """The schema's defaults for ``home``: no file, no environment, no flags."""
    return _build(Path(home).expanduser().absolute(), {}, {}, [])


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["p2p.listen=0.0.0.0:1", ...]`` (``--set`` options) -> ``{"p2p.listen": "0.0.0.0:1"}``."""
    out: dict[str, str] = {}
    for item in items:
        dotted, sep, value = item.partition("=")
        dotted = dotted.strip()
        if not sep or "." not in dotted:
            raise ConfigError(f"command line: {item!r} is not SECTION.KEY=VALUE")
        out[dotted] = value
    return out


# ------------------------------------------------------------------ TOML output
def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = ", ".join(f"{_toml_string(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def render_toml(cfg: NodeConfig, *, origins: bool = True) -> str:
    """The effective configuration (secrets redacted) as TOML, each non-default value
    followed by where it came from when ``origins``."""
    data = redacted(cfg)
    lines = [f"# effective configuration of {data.pop('home')}"]
    for section, table in data.items():
        lines += ["", f"[{section}]"]
        for name, value in table.items():
            line = f"{name} = {toml_value(value)}"
            origin = cfg.origins.get(f"{section}.{name}")
            if origins and origin:
                line += f"  # {origin}"
            lines.append(line)
    return "\n".join(lines) + "\n"


def _comment(text: str, width: int = 78) -> list[str]:
    lines: list[str] = []
    line = "#"
    for word in text.split():
        if len(line) + 1 + len(word) > width and line != "#":
            lines.append(line)
            line = "#"
        line += " " + word
    lines.append(line)
    return lines


def render_default_toml(settings: Mapping[str, Any] | None = None) -> str:
    """A commented ``config.toml``: every key with its description.

    Keys in ``settings`` (``"section.key"`` -> typed value, checked) are written
    as active lines; every other key as a commented-out default, so that later
    changes of a default apply to this home unless the operator pins the key.
    """
    settings = dict(settings or {})
    for dotted in settings:
        section, _, name = dotted.partition(".")
        if name not in _SCHEMA.get(section, {}):
            raise ConfigError(f"no configuration key {dotted}")
    lines = [
        "# Hygeia node configuration.",
        "#",
        "# Every key is shown with its description; commented-out keys have their default.",
        "# Precedence: command-line flag > HYGEIA_<SECTION>_<KEY> environment variable >",
        "# this file > default. Relative paths are relative to the home directory.",
        "# Reference: docs/configuration.md. Check this file: hygeia config check --home DIR",
    ]
    for section, keys in _SCHEMA.items():
        lines += ["", "#" * 78, f"[{section}]"]
        lines += _comment(SECTIONS[section].__doc__ or "")
        for key in keys.values():
            lines.append("")
            lines += _comment(key.doc)
            lines.append(f"# ({key.kind.label}; environment: {key.env_var})")
            if key.dotted in settings:
                value = key.kind.to_plain(settings[key.dotted])
                lines.append(f"{key.name} = {toml_value(value)}")
            else:
                lines.append(f"# {key.name} = {toml_value(key.kind.to_plain(key.default))}")
    return "\n".join(lines) + "\n"
