"""The schema of ``<home>/config.toml``: one frozen dataclass per section, every key typed.

A key is a dataclass field whose type is ``Annotated`` with its description
(``Meta(description=...)``), its kind (below) and its constraints
(``Meta(ge=1)``, string rules of ``node.core.strict``), and whose default is the
field's default. That one declaration is what the loader checks a value against
(``node.setup.config``, through ``node.core.strict``), what ``docs/configuration.md``
documents (``node.setup.reference``; a test keeps the file equal to it) and what
the commented ``config.toml`` of ``hygeia init`` and ``hygeia config show`` write
(``node.setup.config_render``), so none of them can drift from the others.

A kind says how a key is named in the reference (``integer``, ``host:port``),
what an error says it expects (``an integer``) and how its value is read from
the text of an environment variable or a flag (docs/configuration.md, "Precedence").
The checks a type cannot say (a listen address that parses, the levels of
``log.modules``) and those across keys are the loader's.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final

from msgspec import Meta

from node.core.strict import NON_BLANK, ParsedBy, one_of, printable, text
from node.mempool import MempoolLimits
from node.net.addr import Peer, parse_peer

__all__ = [
    "CONFIG_FILE",
    "ENV_PREFIX",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "REDACTED",
    "SECTIONS",
    "SNAPSHOT_FRAME_HEADROOM",
    "AdminSection",
    "ApiSection",
    "ConfigError",
    "Key",
    "Kind",
    "LogSection",
    "MempoolSection",
    "Mismatch",
    "NodeConfig",
    "NodeSection",
    "P2PSection",
    "ShutdownSection",
    "SyncSection",
    "env_var_name",
    "plain",
    "redacted",
    "schema",
]

CONFIG_FILE: Final = "config.toml"
ENV_PREFIX: Final = "HYGEIA_"
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS: Final = ("auto", "json", "console")
REDACTED: Final = "<redacted>"
# bytes a snapshot chunk frame needs beyond the chunk (its proof, header, framing)
SNAPSHOT_FRAME_HEADROOM: Final = 64 << 10


class ConfigError(ValueError):
    """A configuration that cannot be used as written; the message says where and why."""


class Mismatch(Exception):
    """Text that is not of a key's kind (an environment variable, a flag)."""


# ------------------------------------------------------------------ kinds
@dataclass(frozen=True)
class Kind:
    """How a key is named in the reference, what errors say it expects, how text is read."""

    label: str  # in the reference: "integer", "host:port", ...
    expected: str  # in errors: "an integer", ...
    from_text: Callable[[str], Any]  # environment/flag text -> a value as TOML would give it


_INT_TEXT = re.compile(r"[+-]?[0-9](?:_?[0-9])*")
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


def _text_int(value: str) -> int:
    if not _INT_TEXT.fullmatch(value.strip()):
        raise Mismatch
    return int(value.strip().replace("_", ""))


def _text_bool(value: str) -> bool:
    word = value.strip().lower()
    if word in _TRUE | _FALSE:
        return word in _TRUE
    raise Mismatch


def _text_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _text_table(value: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for part in _text_list(value):
        name, sep, level = part.partition("=")
        if not sep:
            raise Mismatch
        table[name.strip()] = level.strip()
    return table


def _as_is(value: str) -> str:
    return value


def _kind(label: str, expected: str, from_text: Callable[[str], Any]) -> Meta:
    return Meta(extra={"kind": Kind(label, expected, from_text), "expected": expected})


def _doc(description: str) -> Meta:
    return Meta(description=description)


String = Annotated[str, _kind("string", "a string", _as_is)]
OptionalPath = Annotated[str, _kind("path", "a string (a path)", _as_is)]
FilePath = Annotated[OptionalPath, text(NON_BLANK)]
HostPort = Annotated[str, _kind("host:port", "a string host:port", str.strip)]
Integer = Annotated[int, _kind("integer", "an integer", _text_int)]
Positive = Annotated[Integer, Meta(ge=1)]
NonNegative = Annotated[Integer, Meta(ge=0)]
Boolean = Annotated[bool, _kind("boolean", "a boolean (true or false)", _text_bool)]
Peers = Annotated[
    tuple[Annotated[Peer, ParsedBy(parse_peer)], ...],
    _kind("array of ID@HOST:PORT strings", "an array of strings ID@HOST:PORT", _text_list),
]
LevelTable = Annotated[
    Mapping[str, str],
    _kind("table of module = level", "a table of strings (module = level)", _text_table),
]

# the keys both HTTP listeners ([api], [admin]) have, with their own defaults
# (node.api.listener applies them; docs/operator.md, "HTTP listeners")
MaxConnections = Annotated[
    Positive,
    _doc(
        "Most open connections of this listener; a connection beyond it is answered "
        "503 `too-many-connections` and closed at once. Each one is a file handle: "
        "the node checks its file-handle limit at start against the sum."
    ),
]
MaxConnectionsPerSource = Annotated[
    Positive,
    _doc(
        "Most open connections of this listener from one IP address (a gateway in "
        "front of the node is one address: raise it to match), so that one client "
        "cannot take them all; beyond it 503 `too-many-connections`."
    ),
]
ReadTimeoutMs = Annotated[
    Positive,
    _doc(
        "A request's head must arrive within this many milliseconds (from the "
        "connection's opening, or from the first byte of a later request on it), "
        "and its body within as long again; a slower client is disconnected "
        "(the body: 408 `request-timeout`)."
    ),
]
KeepaliveTimeoutMs = Annotated[
    Positive,
    _doc(
        "An idle keep-alive connection (no request in progress) is closed after this "
        "many milliseconds."
    ),
]


# ------------------------------------------------------------------ the sections
@dataclass(frozen=True)
class NodeSection:
    """Identity and the files of the home directory."""

    name: Annotated[
        String,
        text(NON_BLANK, printable(64)),
        _doc(
            "A human-readable name for this node, shown in logs and in the admin `/status`. "
            "It identifies nothing: the node's identity is its node key. "
            "`hygeia init` sets it to `--name` (default: the home directory's name)."
        ),
    ] = "hygeia-node"
    data_dir: Annotated[
        FilePath,
        _doc("Directory of the node's LevelDB database. Relative paths are relative to the home."),
    ] = "data"
    node_key_file: Annotated[
        FilePath,
        _doc(
            "The node's Ed25519 key file (mode 0600). Its public key is the node id and, "
            "for a validator, the `node_key` of its entry in genesis.json. Relative to the home."
        ),
    ] = "node_key.json"
    genesis_file: Annotated[
        FilePath,
        _doc("The consortium's genesis.json, byte-identical on every node. Relative to the home."),
    ] = "genesis.json"


@dataclass(frozen=True)
class P2PSection:
    """The peer-to-peer network: validators dial each other at their genesis addresses."""

    listen: Annotated[
        HostPort,
        _doc(
            "host:port the peer listener binds (`[::]:26656` for IPv6). Port 0 picks a free port."
        ),
    ] = "0.0.0.0:26656"
    peers: Annotated[
        Peers,
        _doc(
            "Non-validator peers to dial, as `ID@HOST:PORT` (ID: the peer's 64-hex node key). "
            "Validators are dialled at the `p2p` addresses of genesis.json and need not be listed."
        ),
    ] = ()
    max_frame_bytes: Annotated[
        Positive,
        _doc(
            "Largest frame sent to or accepted from a peer, in bytes. At least "
            "`mempool.max_tx_bytes`; `hygeia config check` also wants it above the genesis "
            "`consensus.batch_max_bytes`, so that a full block fits in one frame."
        ),
    ] = 4 << 20
    send_queue_limit: Annotated[
        Positive,
        _doc(
            "Frames queued for one peer (one bounded queue and one writer per peer), so that "
            "a slow peer cannot make the node buffer without limit."
        ),
    ] = 1024
    dial_backoff_min_ms: Annotated[
        Positive,
        _doc(
            "Delay before redialling a peer after a failed dial or a lost link; it doubles "
            "with each consecutive failure up to `dial_backoff_max_ms`."
        ),
    ] = 500
    dial_backoff_max_ms: Annotated[
        Positive, _doc("Longest delay between two dials of the same peer.")
    ] = 30_000


@dataclass(frozen=True)
class ApiSection:
    """The client API used by institutions' applications (`/v1/...`)."""

    listen: Annotated[
        HostPort,
        _doc(
            "host:port the client API binds. Loopback by default: put it behind your own "
            "gateway, or bind `0.0.0.0:26657` deliberately."
        ),
    ] = "127.0.0.1:26657"
    max_connections: MaxConnections = 512
    max_connections_per_source: MaxConnectionsPerSource = 64
    read_timeout_ms: ReadTimeoutMs = 10_000
    keepalive_timeout_ms: KeepaliveTimeoutMs = 30_000


@dataclass(frozen=True)
class AdminSection:
    """The operator API (`/health`, `/status`, `/peers`, `/consensus`, `/metrics`)."""

    listen: Annotated[
        HostPort,
        _doc(
            "host:port the admin API binds. Loading a config that binds it to a "
            "non-loopback address gives a warning."
        ),
    ] = "127.0.0.1:26658"
    token_file: Annotated[
        FilePath,
        _doc(
            "File (mode 0600) holding the bearer token the admin API requires "
            "(`Authorization: Bearer <token>`). Relative to the home. The token itself is "
            "never part of the configuration and never logged."
        ),
    ] = "admin_token"
    enable_mutations: Annotated[
        Boolean,
        _doc(
            "Enable the admin endpoints that change the running node; the read-only "
            "endpoints are always on."
        ),
    ] = False
    health_min_free_disk_mib: Annotated[
        NonNegative,
        _doc(
            "`GET /health` answers 503 `disk low` when the filesystem of `node.data_dir` has "
            "less than this many MiB free (a full disk stops the node's writes). 0: no check."
        ),
    ] = 512
    max_connections: MaxConnections = 64
    max_connections_per_source: MaxConnectionsPerSource = 16
    read_timeout_ms: ReadTimeoutMs = 10_000
    keepalive_timeout_ms: KeepaliveTimeoutMs = 30_000


_MEMPOOL: Final = MempoolLimits()


@dataclass(frozen=True)
class MempoolSection:
    """Bounds of the pool of admitted, not yet committed transactions."""

    max_txs: Annotated[
        Positive,
        _doc("Most transactions held; beyond it submissions get `mempool-full` (HTTP 503)."),
    ] = _MEMPOOL.max_txs
    max_bytes: Annotated[
        Positive,
        _doc("Most bytes of transactions held; beyond it submissions get `mempool-full`."),
    ] = _MEMPOOL.max_bytes
    max_tx_bytes: Annotated[
        Positive,
        _doc(
            "Largest transaction accepted, in wire bytes. At most `max_bytes` and "
            "`p2p.max_frame_bytes`."
        ),
    ] = _MEMPOOL.max_tx_bytes
    per_signer_max: Annotated[
        Positive,
        _doc(
            "Most pending transactions of one signer, so that one busy or hostile signer "
            "cannot crowd out the others."
        ),
    ] = _MEMPOOL.per_signer_max


@dataclass(frozen=True)
class SyncSection:
    """Block sync and state sync: catching up with the chain from peers; snapshots."""

    parallel_peers: Annotated[
        Positive, _doc("Peers asked for blocks at the same time while catching up.")
    ] = 4
    batch_size: Annotated[Positive, _doc("Blocks asked for in one sync request.")] = 64
    state_sync: Annotated[
        Boolean,
        _doc(
            "On first start with an empty database, fetch the newest verified snapshot of the "
            "app state from peers and block-sync from its height, instead of replaying every "
            "block from genesis (docs/state-sync.md). `hygeia init --join` sets it."
        ),
    ] = False
    snapshot_interval: Annotated[
        NonNegative,
        _doc(
            "Take a snapshot of the app state every this many stable checkpoints "
            "(validators; 0: none). Snapshots are served to joining nodes."
        ),
    ] = 64
    snapshot_keep: Annotated[
        Positive,
        _doc(
            "Snapshots kept on disk (`<home>/snapshots/`); the oldest beyond this is deleted "
            "when a new one is complete."
        ),
    ] = 3
    snapshot_chunk_bytes: Annotated[
        Positive,
        _doc(
            "Size of one snapshot chunk sent over a peer link; must leave room in "
            f"`p2p.max_frame_bytes`: at most `p2p.max_frame_bytes` - {SNAPSHOT_FRAME_HEADROOM}."
        ),
    ] = 1 << 20


@dataclass(frozen=True)
class LogSection:
    """Structured logs (structlog)."""

    level: Annotated[
        String, text(one_of(LOG_LEVELS)), _doc(f"Lowest level logged: {', '.join(LOG_LEVELS)}.")
    ] = "info"
    format: Annotated[
        String,
        text(one_of(LOG_FORMATS)),
        _doc(
            "`json` (one JSON object per line), `console` (readable, for people) or `auto`: "
            "console when the output is a terminal, JSON otherwise."
        ),
    ] = "auto"
    modules: Annotated[
        LevelTable,
        _doc(
            "Levels per module, overriding `level` for that logger and its children, e.g. "
            '`{ "node.net" = "debug", "aiohttp.access" = "warning" }`.'
        ),
    ] = field(default_factory=dict)
    file: Annotated[
        OptionalPath,
        _doc(
            "Also write the logs to this file (format as for a non-terminal), reopened on "
            "SIGHUP for log rotation. Empty: no file. Relative to the home."
        ),
    ] = ""


@dataclass(frozen=True)
class ShutdownSection:
    """Clean shutdown on SIGTERM/SIGINT."""

    timeout_ms: Annotated[
        Positive,
        _doc(
            "How long to wait for in-flight work (writes, peer links, HTTP requests) to "
            "finish on SIGTERM/SIGINT before exiting anyway."
        ),
    ] = 10_000


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


# ------------------------------------------------------------------ the keys
@dataclass(frozen=True)
class Key:
    """One configuration key of the schema."""

    section: str
    name: str
    kind: Kind
    default: Any
    doc: str
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
    hints = typing.get_type_hints(cls, include_extras=True)
    keys = {}
    for f in dataclasses.fields(cls):
        metas = [m for m in typing.get_args(hints[f.name])[1:] if isinstance(m, Meta)]
        extra = {k: v for m in metas for k, v in (m.extra or {}).items()}
        doc = next(m.description for m in reversed(metas) if m.description)
        factory: Any = f.default_factory
        default = f.default if factory is dataclasses.MISSING else factory()
        keys[f.name] = Key(
            section, f.name, extra["kind"], default, doc, bool(extra.get("secret", False))
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


def plain(value: Any) -> Any:
    """A key's value as plain TOML/JSON data: arrays as lists, peers as ``ID@HOST:PORT``."""
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, Peer):
        return str(value)
    return dict(value) if isinstance(value, Mapping) else value


def redacted(cfg: NodeConfig) -> dict[str, Any]:
    """``{"home": str, "<section>": {"<key>": plain value}}`` with secrets redacted."""
    out: dict[str, Any] = {"home": str(cfg.home)}
    for section, keys in _SCHEMA.items():
        sec = getattr(cfg, section)
        out[section] = {
            k.name: REDACTED if k.secret else plain(getattr(sec, k.name)) for k in keys.values()
        }
    return out
