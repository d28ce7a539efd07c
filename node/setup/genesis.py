"""genesis.json: the chain id, genesis time, consensus parameters, validators and members.

Every node of a consortium holds the same genesis.json; its hash (SHA-256 of
the canonical JSON: keys sorted, separators ``,`` and ``:``, UTF-8 with
``ensure_ascii`` off, integers only) names the chain's starting point::

    {"chain_id": "hygeia-testnet",
     "genesis_time": 1767225600000,              # integer ms since the Unix epoch
     "consensus": {"batch_max_count": 500, ...},  # every ConsensusConfig knob but chain_id, n
     "validators": [{"name": "node0", "member": "hospital-0", "node_key": "<64 hex>",
                     "p2p": "10.0.0.1:26656"}],
     "members": [{"id": "hospital-0", "name": "Hospital 0", "roles": ["hospital"],
                  "keys": ["<64 hex>"]}]}

The validator index used by consensus is the position in ``validators``; the
replica count ``n`` is its length. Each validator names the member institution
that runs it (``member``, an ``id`` of ``members``); the ledger writes this list
as epoch 0 of the validator set, which governance changes from then on
(docs/governance.md, "Validators"). Loading is strict: unknown or missing
fields, floats, duplicate object keys, malformed keys and addresses, unknown
roles, a validator ``member`` that is no member's id and duplicates are
``GenesisError`` naming the file and the field path
(``genesis.json: validators[2].node_key: ...``). Every consensus knob must be
present, so a change of a default in the code can never make two nodes of one
chain run with different parameters. The shape of the document (fields, types,
lengths, patterns, ranges) is the typed dataclasses below, checked through
``node.core.strict``; what spans fields (duplicates, addresses, the consensus
knobs together) is plain code after it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from consensus.config import EPOCH_FIELDS, NODE_LOCAL_FIELDS, ConsensusConfig
from node.core import strict
from node.core.codec import canonical_json
from node.core.strict import (
    NON_BLANK,
    CheckedAs,
    Problem,
    Rule,
    StrictError,
    dotted,
    one_of,
    printable,
    text,
)
from node.ledger.members import ROLES
from node.ledger.validators import EpochRule
from node.net.addr import parse_host_port
from node.net.wire import CONSENSUS_FRAME_OVERHEAD
from node.setup.config_schema import ConfigError
from storage.files import replace_atomically

__all__ = [
    "CONSENSUS_KNOBS",
    "MAX_GENESIS_BYTES",
    "ROLES",
    "Genesis",
    "GenesisError",
    "Member",
    "Validator",
    "default_consensus_params",
    "genesis_hash",
    "load_genesis",
    "loads_genesis",
    "parse_genesis",
    "render_reference",
    "write_genesis",
]

CONSENSUS_KNOBS: Final = tuple(
    f.name
    for f in dataclasses.fields(ConsensusConfig)
    if f.name not in ("chain_id", "n", *NODE_LOCAL_FIELDS, *EPOCH_FIELDS)
)
MAX_GENESIS_BYTES: Final = 16 << 20
MAX_CHAIN_ID_LEN: Final = 128
MAX_INT: Final = 2**63 - 1

_CONSENSUS_DOCS: Final = {
    "batch_max_count": "Most transactions in one batch; the primary proposes a full batch at once.",
    "batch_max_bytes": "Most bytes of transactions in one batch.",
    "batch_timeout_ms": "The primary proposes a batch that is not full once its oldest "
    "transaction has waited this long.",
    "pipeline_window": "Most proposed-but-uncommitted heights at once.",
    "checkpoint_interval": "A checkpoint every this many heights.",
    "watermark_window": "Heights accepted above the last stable checkpoint; "
    "at least 2 * checkpoint_interval.",
    "view_change_timeout_ms": "Time an in-flight proposal may take before a view change; "
    "doubles with each consecutive view change.",
    "view_change_timeout_max_ms": "Cap of the doubling view-change timeout.",
    "request_timeout_ms": "Time a pending request may wait for a proposal before a view change.",
    "max_clock_drift_ms": "How far in the future a proposal's timestamp may be.",
    "future_buffer_limit": "Pre-prepares above the high watermark kept for later, per replica.",
    "resend_interval_ms": "Minimum spacing of NEW-VIEW pushes and requests to one peer.",
}

# ------------------------------------------------------------------ the field types
_NAME = Rule(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z", "{value} is not [A-Za-z0-9][A-Za-z0-9._-]*")
_KEY = "64 lower-case hex digits (an Ed25519 public key)"

Text = Annotated[str, text(NON_BLANK, printable(256))]
MemberId = Annotated[str, text(NON_BLANK, printable(64), _NAME)]
ShortText = Annotated[str, text(NON_BLANK, printable(64))]
_HEX_KEY = Rule(r"[0-9a-f]{64}\Z", f"expected {_KEY}, got {{value}}")
PublicKey = Annotated[str, text(_HEX_KEY), Meta(extra={"expected": _KEY})]
Role = Annotated[str, text(one_of(ROLES, f"unknown role {{value}} (roles: {', '.join(ROLES)})"))]
Knob = Annotated[int, Meta(ge=1, le=MAX_INT)]
# genesis.json's "consensus": exactly the knobs, each present
_KNOBS: Final = msgspec.defstruct(
    "consensus", [(k, Knob) for k in CONSENSUS_KNOBS], forbid_unknown_fields=True, frozen=True
)


class GenesisError(ValueError):
    """A genesis file that cannot be used; the message names the file and the field."""


def default_consensus_params() -> dict[str, int]:
    """The consensus knobs of a new genesis: ``ConsensusConfig``'s defaults."""
    defaults = ConsensusConfig(chain_id="-", n=1)
    return {knob: int(getattr(defaults, knob)) for knob in CONSENSUS_KNOBS}


@dataclass(frozen=True)
class Validator:
    """One validator: its consensus index is its position in ``Genesis.validators``."""

    name: ShortText
    member: MemberId  # the id of the member (in ``Genesis.members``) that runs it
    node_key: PublicKey  # the Ed25519 public key (the node id)
    p2p: Text  # host:port other validators dial

    @property
    def public_key(self) -> bytes:
        return bytes.fromhex(self.node_key)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "member": self.member,
            "node_key": self.node_key,
            "p2p": self.p2p,
        }


@dataclass(frozen=True)
class Member:
    """A founding member institution: its roles and signing keys (64 lower-case hex)."""

    id: MemberId
    name: Text
    roles: Annotated[tuple[Role, ...], Meta(min_length=1)]
    keys: Annotated[tuple[PublicKey, ...], Meta(min_length=1)]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "roles": list(self.roles),
            "keys": list(self.keys),
        }


@dataclass(frozen=True)
class Genesis:
    """A loaded, checked genesis. Build one with ``parse_genesis`` (it checks everything)."""

    chain_id: Annotated[str, text(NON_BLANK, printable(MAX_CHAIN_ID_LEN), _NAME)]
    genesis_time: Annotated[int, Meta(ge=0, le=MAX_INT)]
    consensus: Annotated[Mapping[str, int], CheckedAs(_KNOBS)]
    validators: Annotated[tuple[Validator, ...], Meta(min_length=1)]
    members: tuple[Member, ...]

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {v.node_key: i for i, v in enumerate(self.validators)}

    @property
    def n(self) -> int:
        return len(self.validators)

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time": self.genesis_time,
            "consensus": dict(self.consensus),
            "validators": [v.to_json() for v in self.validators],
            "members": [m.to_json() for m in self.members],
        }

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    def genesis_hash(self) -> bytes:
        """SHA-256 of the canonical JSON of the whole document (32 bytes)."""
        return hashlib.sha256(self.canonical_bytes()).digest()

    def genesis_hash_hex(self) -> str:
        return self.genesis_hash().hex()

    def dumps(self) -> bytes:
        """The document as written to disk: indented, fields in documentation order."""
        return (json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    def consensus_config(self) -> ConsensusConfig:
        return ConsensusConfig(chain_id=self.chain_id, n=self.n, **self.consensus)

    def validator_index(self, node_key: str | bytes) -> int | None:
        """The consensus index of the validator with this public key (hex or bytes), or None."""
        key = node_key.hex() if isinstance(node_key, bytes) else node_key.lower()
        return self._index.get(key)

    def validator_index_by_name(self, name: str) -> int | None:
        for i, v in enumerate(self.validators):
            if v.name == name:
                return i
        return None

    def validator_public_keys(self) -> list[bytes]:
        """Public keys by consensus index (for ``node.core.keys.ValidatorVerifier``)."""
        return [v.public_key for v in self.validators]

    def members_json(self) -> list[dict[str, Any]]:
        """The founding members as plain dicts (for the ledger's genesis state)."""
        return [m.to_json() for m in self.members]

    def validators_json(self) -> list[dict[str, Any]]:
        """The validators as plain dicts, in index order (the ledger's epoch 0)."""
        return [v.to_json() for v in self.validators]

    def epoch_rule(self) -> EpochRule:
        """Where the ledger places a validator change (checkpoint interval, watermark window)."""
        return EpochRule.of(self.consensus)


# ------------------------------------------------------------------ strict parsing
def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, str):
        return f"a string ({_short(value)})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _message(p: Problem) -> tuple[str, str]:
    """(field path, what is wrong there) of a problem of the document's shape."""
    if p.what == "unknown":
        return dotted(p.path), f"unknown field (expected {', '.join(p.fields)})"
    if p.what == "missing":
        return dotted(p.path), f"missing from {dotted(p.path[:-1]) or 'the document'}"
    if p.what == "type":
        return dotted(p.path), f"expected {p.expected}, got {_kind(p.value)}"
    return dotted(p.path), p.why(_short)


def _unique(items: Sequence[str], path: str, what: str) -> tuple[str, str] | None:
    """The first item of ``items`` equal to an earlier one, as (field path, message)."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item in seen:
            return f"{path}[{i}].{what}", f"same as {path}[{seen[item]}].{what}"
        seen[item] = i
    return None


def _problem(g: Genesis) -> tuple[str, str] | None:
    """What is wrong across the fields of a genesis of the right shape, or None."""
    knobs = g.consensus
    if knobs["view_change_timeout_ms"] > knobs["view_change_timeout_max_ms"]:
        return "consensus.view_change_timeout_ms", (
            f"must not exceed consensus.view_change_timeout_max_ms "
            f"({knobs['view_change_timeout_ms']} > {knobs['view_change_timeout_max_ms']})"
        )
    for i, v in enumerate(g.validators):
        try:
            parse_host_port(v.p2p)
        except ValueError as e:
            return f"validators[{i}].p2p", str(e)
    for what in ("name", "node_key", "p2p"):
        if found := _unique([getattr(v, what) for v in g.validators], "validators", what):
            return found
    if found := _unique([m.id for m in g.members], "members", "id"):
        return found
    member_ids = {m.id for m in g.members}
    for i, v in enumerate(g.validators):
        if v.member not in member_ids:
            return f"validators[{i}].member", f"{_short(v.member)} is not the id of a member"
    owners: dict[str, str] = {}
    for i, m in enumerate(g.members):
        for j, role in enumerate(m.roles):
            if role in m.roles[:j]:
                return f"members[{i}].roles[{j}]", f"role {role} listed twice"
        for j, key in enumerate(m.keys):
            if key in owners:
                return f"members[{i}].keys[{j}]", f"key already belongs to member {owners[key]}"
            owners[key] = m.id
    try:
        g.consensus_config()
    except ValueError as e:
        return "consensus", str(e).removeprefix("consensus: ")
    return None


def parse_genesis(obj: Any, *, source: str = "genesis.json") -> Genesis:
    """Check a decoded genesis document and build a ``Genesis``; ``GenesisError`` if invalid."""
    try:
        genesis = strict.convert(obj, Genesis)
        knobs = {k: genesis.consensus[k] for k in CONSENSUS_KNOBS}  # in documentation order
        genesis = dataclasses.replace(genesis, consensus=knobs)
        found = _problem(genesis)
    except StrictError as e:
        found = _message(e.problem)
    if found is None:
        return genesis
    path, message = found
    raise GenesisError(f"{source}: {path}: {message}" if path else f"{source}: {message}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {json.dumps(k, ensure_ascii=False)} in an object")
        out[k] = v
    return out


def _no_float(text: str) -> Any:
    raise ValueError(f"floats are not allowed ({text}); use integers")


def loads_genesis(data: bytes | str, *, source: str = "genesis.json") -> Genesis:
    """Parse genesis JSON text strictly (no floats, NaN or duplicate keys) and check it."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        obj = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_float,
        )
    except UnicodeDecodeError:
        raise GenesisError(f"{source}: not UTF-8") from None
    except json.JSONDecodeError as e:
        raise GenesisError(f"{source}: invalid JSON: {e}") from None
    except ValueError as e:
        raise GenesisError(f"{source}: {e}") from None
    return parse_genesis(obj, source=source)


def load_genesis(path: str | os.PathLike[str]) -> Genesis:
    """Read and check a genesis.json file."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_GENESIS_BYTES:
            raise GenesisError(f"{p}: {size} bytes; a genesis file is at most {MAX_GENESIS_BYTES}")
        data = p.read_bytes()
    except FileNotFoundError:
        raise GenesisError(
            f"{p}: not found (every node needs the consortium's genesis.json)"
        ) from None
    except IsADirectoryError:
        raise GenesisError(f"{p}: is a directory, not a genesis file") from None
    except OSError as e:
        raise GenesisError(f"{p}: cannot read: {e.strerror}") from None
    return loads_genesis(data, source=str(p))


def genesis_hash(genesis: Genesis | Mapping[str, Any] | bytes | str) -> bytes:
    """The genesis hash (32 bytes) that names a chain: SHA-256 of the canonical JSON.

    The one function for it, whatever form the genesis is in: a loaded ``Genesis``,
    a decoded document (checked with ``parse_genesis`` first) or JSON text
    (``loads_genesis``). It is what a node's database records (``meta/genesis``,
    checked at start), what backups carry in their manifest, and what peers
    should compare in their handshake. ``GenesisError`` if the document is invalid.
    """
    if isinstance(genesis, bytes | str):
        genesis = loads_genesis(genesis)
    elif not isinstance(genesis, Genesis):
        genesis = parse_genesis(genesis)
    return genesis.genesis_hash()


def replica_config(genesis: Genesis, max_frame_bytes: int) -> ConsensusConfig:
    """Genesis's consensus knobs, with every replica message limited to what a peer
    frame of ``max_frame_bytes`` (this node's ``p2p.max_frame_bytes``) carries;
    ``ConfigError`` when the largest message of that configuration (a full
    PRE-PREPARE, a worst-case NEW-VIEW) would not fit."""
    try:
        return dataclasses.replace(
            genesis.consensus_config(),
            max_message_bytes=max_frame_bytes - CONSENSUS_FRAME_OVERHEAD,
        )
    except ValueError as exc:
        raise ConfigError(f"p2p.max_frame_bytes ({max_frame_bytes}) is too small: {exc}") from None


def write_genesis(path: str | os.PathLike[str], genesis: Genesis) -> None:
    """Write ``genesis`` (``Genesis.dumps``) through a temporary file and a rename."""
    target = Path(path)
    replace_atomically(target, genesis.dumps())


# ------------------------------------------------------------------ reference
def render_reference() -> str:
    """The genesis.json section of ``docs/configuration.md``."""
    defaults = default_consensus_params()
    lines = [
        "## genesis.json",
        "",
        "One file, byte-identical on every node of a chain (`hygeia testnet init` writes",
        "one for a local network). Loading is strict: unknown or missing fields, floats,",
        "duplicate object keys, malformed keys or addresses, unknown roles, a validator",
        "`member` that is no member's id, and duplicate names, keys, addresses or member ids",
        "are errors naming the field, e.g.",
        "`genesis.json: validators[2].node_key: expected 64 lower-case hex digits ...` or",
        '`genesis.json: validators[2].member: "clinic-9" is not the id of a member`.',
        "",
        "| field | type | meaning |",
        "|---|---|---|",
        "| `chain_id` | string `[A-Za-z0-9][A-Za-z0-9._-]*`, at most "
        f"{MAX_CHAIN_ID_LEN} | the chain; every transaction names it |",
        "| `genesis_time` | integer | milliseconds since the Unix epoch |",
        "| `consensus` | object | every knob below, each a positive integer |",
        '| `validators` | array, not empty | `{"name", "member", "node_key", "p2p"}`; a '
        "validator's consensus index is its position, `n` is the array's length; the "
        "ledger's epoch 0 of the validator set (governance changes it later: "
        "docs/governance.md) |",
        "| `validators[i].name` | string | unique, for people |",
        "| `validators[i].member` | string | the `id` of the member (in `members`) that runs "
        "this validator |",
        "| `validators[i].node_key` | 64 lower-case hex | Ed25519 public key (the node id); "
        "unique |",
        "| `validators[i].p2p` | host:port | where the other validators dial it; unique |",
        '| `members` | array | founding member institutions `{"id", "name", "roles", "keys"}` |',
        "| `members[i].id` | string `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 64 | unique |",
        "| `members[i].name` | string | the institution's name |",
        f"| `members[i].roles` | array of roles, not empty | among {', '.join(ROLES)} |",
        "| `members[i].keys` | array of 64 lower-case hex, not empty | the member's Ed25519 "
        "signing keys; a key belongs to one member only |",
        "",
        "Consensus knobs (`f` and the quorums follow from `n`; durations in ms):",
        "",
        "| knob | default in new genesis files | meaning |",
        "|---|---|---|",
    ]
    for knob in CONSENSUS_KNOBS:
        lines.append(f"| `{knob}` | `{defaults[knob]}` | {_CONSENSUS_DOCS[knob]} |")
    lines += [
        "",
        "The genesis hash is the SHA-256 of the canonical JSON of the document (keys sorted,",
        "separators `,` and `:`, UTF-8 with non-ASCII characters as themselves, integers",
        "only), so the file's indentation and key order do not change it.",
        "",
    ]
    return "\n".join(lines)
