"""``hygeia testnet init``: N validator homes on loopback sharing one genesis.

Layout of ``OUT``::

    OUT/testnet.json            the network, for tools (shape below; written last)
    OUT/node<i>/                a full node home (``node.setup.home.init_home``) plus
        genesis.json            the same bytes in every home
        member_key.json         the signing key (0600) of member institution i

Ports (``base_port`` P, node i): p2p ``P + 10*i``, client API ``P + 10*i + 1``,
admin API ``P + 10*i + 2``, all on 127.0.0.1. Each validator brings one member
institution to genesis, its role taken in turn from ``MEMBER_ROLES`` so that a
small testnet covers records, supply chain, claims and trials; validator i is
member i's (its genesis ``member``).

``testnet.json`` is exactly ``{"chain_id": str, "nodes": [{"name", "home",
"node_id", "p2p": "host:port", "api": "http://...", "admin": "http://...",
"admin_token_file": path}]}`` with absolute paths. An existing testnet in
``OUT`` (a ``testnet.json`` or a ``node<i>`` directory) is never overwritten
without ``force``; with it, those (and only those) are deleted first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec

from node.core import strict
from node.core.strict import Problem, StrictError, dotted
from node.setup.config import ConfigError, load_config
from node.setup.genesis import (
    Genesis,
    Member,
    Validator,
    default_consensus_params,
    parse_genesis,
    write_genesis,
)
from node.setup.home import HomeError, generate_key_file, init_home
from storage.files import replace_atomically

__all__ = [
    "DEFAULT_BASE_PORT",
    "DEFAULT_CHAIN_ID",
    "MAX_VALIDATORS",
    "MEMBER_KEY_FILE",
    "MEMBER_ROLES",
    "TESTNET_FILE",
    "TestnetError",
    "node_ports",
    "read_testnet",
    "render_reference",
    "testnet_init",
]

TESTNET_FILE: Final = "testnet.json"
MEMBER_KEY_FILE: Final = "member_key.json"
DEFAULT_BASE_PORT: Final = 26656
DEFAULT_CHAIN_ID: Final = "hygeia-testnet"
LOOPBACK: Final = "127.0.0.1"
PORT_STRIDE: Final = 10
MAX_VALIDATORS: Final = 1000
MEMBER_ROLES: Final = (
    "hospital",
    "manufacturer",
    "pharmacy",
    "insurer",
    "sponsor",
    "distributor",
    "regulator",
    "clinic",
    "auditor",
)
_NODE_DIR = re.compile(r"node[0-9]+")


class TestnetError(Exception):
    """A testnet that cannot be created as asked; the message says why."""

    __test__ = False  # not a pytest test class


class _Node(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """An entry of ``nodes``: the fields ``testnet_init`` writes (a reader names those it
    needs; the others may be absent)."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    home: str | msgspec.UnsetType = msgspec.UNSET
    node_id: str | msgspec.UnsetType = msgspec.UNSET
    p2p: str | msgspec.UnsetType = msgspec.UNSET
    api: str | msgspec.UnsetType = msgspec.UNSET
    admin: str | msgspec.UnsetType = msgspec.UNSET
    admin_token_file: str | msgspec.UnsetType = msgspec.UNSET


class _Testnet(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``testnet.json``."""

    chain_id: str | msgspec.UnsetType = msgspec.UNSET
    nodes: Annotated[tuple[_Node, ...], msgspec.Meta(min_length=1)]


def read_testnet(path: Path, need: tuple[str, ...] = ("name", "home")) -> dict[str, Any]:
    """The ``testnet.json`` of a testnet directory (or that file given directly),
    with a non-empty ``nodes`` list whose entries have the string fields ``need``.

    The file is checked against its format (the module's docstring) through
    ``node.core.strict``: an unknown field or a value that is not a string is an
    error too. ``TestnetError`` says what is wrong and where."""
    file = path / TESTNET_FILE if path.is_dir() else path
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TestnetError(
            f"{file} not found (`hygeia testnet init --out DIR` writes DIR/{TESTNET_FILE})"
        ) from None
    except OSError as exc:
        raise TestnetError(f"cannot read {file}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise TestnetError(f"{file} is not valid JSON ({exc})") from None
    names = ", ".join(f'"{k}"' for k in need[:-1]) + f' and "{need[-1]}"'
    try:
        testnet = strict.convert(doc, _Testnet)
    except StrictError as exc:
        raise TestnetError(f"{file}: {_why(exc.problem, need, names)}") from None
    for i, node in enumerate(testnet.nodes):
        if any(getattr(node, k) is msgspec.UNSET for k in need):
            raise TestnetError(f"{file}: nodes[{i}] needs the strings {names}")
    return dict(doc)


def _why(p: Problem, need: tuple[str, ...], names: str) -> str:
    if p.path in ((), ("nodes",)):
        return '"nodes" must be a non-empty list'
    if len(p.path) == 2 or p.path[2:] in [(k,) for k in need]:
        return f"nodes[{p.path[1]}] needs the strings {names}"
    if p.what == "unknown":
        return f"{dotted(p.path)}: unknown field (expected {', '.join(p.fields)})"
    return f"{dotted(p.path)}: expected a string, got {p.value!r}"


def node_ports(base_port: int, index: int) -> tuple[int, int, int]:
    """(p2p, api, admin) ports of node ``index``."""
    p2p = base_port + PORT_STRIDE * index
    return p2p, p2p + 1, p2p + 2


def _existing(out: Path) -> list[Path]:
    found = []
    if (out / TESTNET_FILE).exists():
        found.append(out / TESTNET_FILE)
    if out.is_dir():
        found += sorted(p for p in out.iterdir() if _NODE_DIR.fullmatch(p.name))
    return found


def _remove(paths: list[Path]) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def testnet_init(
    out_dir: str | os.PathLike[str],
    *,
    validators: int,
    base_port: int = DEFAULT_BASE_PORT,
    chain_id: str = DEFAULT_CHAIN_ID,
    force: bool = False,
    genesis_time: int | None = None,
) -> dict[str, Any]:
    """Create the testnet in ``out_dir`` and return the content of its ``testnet.json``.

    ``genesis_time`` is ms since the epoch (default: now). ``TestnetError`` for
    bad arguments or an existing testnet without ``force``.
    """
    if not 1 <= validators <= MAX_VALIDATORS:
        raise TestnetError(f"--validators must be in 1..{MAX_VALIDATORS}, got {validators}")
    last_port = node_ports(base_port, validators - 1)[2]
    if base_port < 1 or last_port > 65535:
        raise TestnetError(
            f"--base-port {base_port} with {validators} validators needs ports "
            f"{base_port}..{last_port}; they must lie in 1..65535"
        )
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise TestnetError(f"{out} exists and is not a directory")
    existing = _existing(out)
    if existing and not force:
        names = ", ".join(p.name for p in existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise TestnetError(
            f"{out} already holds a testnet ({names}); refusing to overwrite it (use --force)"
        )
    if genesis_time is None:
        genesis_time = time.time_ns() // 1_000_000
    _remove(existing)
    out.mkdir(parents=True, exist_ok=True)

    nodes: list[dict[str, Any]] = []
    vals: list[Validator] = []
    members: list[Member] = []
    genesis_paths: list[Path] = []
    for i in range(validators):
        name = f"node{i}"
        home = out / name
        p2p, api, admin = node_ports(base_port, i)
        settings = {
            "p2p.listen": f"{LOOPBACK}:{p2p}",
            "api.listen": f"{LOOPBACK}:{api}",
            "admin.listen": f"{LOOPBACK}:{admin}",
        }
        try:
            node_id = init_home(home, name=name, settings=settings, env={})
            cfg = load_config(home, env={})
        except (HomeError, ConfigError) as e:
            raise TestnetError(str(e)) from None
        member_key = generate_key_file(home / MEMBER_KEY_FILE)
        role = MEMBER_ROLES[i % len(MEMBER_ROLES)]
        member = Member(f"{role}-{i}", f"{role.title()} {i}", (role,), (member_key,))
        members.append(member)
        vals.append(Validator(name, member.id, node_id, f"{LOOPBACK}:{p2p}"))
        genesis_paths.append(cfg.genesis_path)
        nodes.append(
            {
                "name": name,
                "home": str(home),
                "node_id": node_id,
                "p2p": f"{LOOPBACK}:{p2p}",
                "api": f"http://{LOOPBACK}:{api}",
                "admin": f"http://{LOOPBACK}:{admin}",
                "admin_token_file": str(cfg.admin_token_path),
            }
        )
    draft = Genesis(chain_id, genesis_time, default_consensus_params(), tuple(vals), tuple(members))
    try:
        genesis = parse_genesis(draft.to_json(), source="genesis")  # every check of a load
    except ValueError as e:
        raise TestnetError(str(e)) from None
    for genesis_path in genesis_paths:
        write_genesis(genesis_path, genesis)
    doc = {"chain_id": chain_id, "nodes": nodes}
    replace_atomically(out / TESTNET_FILE, (json.dumps(doc, indent=2) + "\n").encode("utf-8"))
    return doc


def render_reference() -> str:
    """The testnet section of ``docs/configuration.md``."""
    p2p, api, admin = node_ports(DEFAULT_BASE_PORT, 0)
    roles = ", ".join(f"{i}: {r}" for i, r in enumerate(MEMBER_ROLES))
    return "\n".join(
        [
            "## Local testnets",
            "",
            "`hygeia testnet init --validators N --out DIR [--base-port P] [--chain-id ID]"
            " [--force]`",
            f"makes `DIR/node0` ... `DIR/node<N-1>`, full node homes, and `DIR/{TESTNET_FILE}`.",
            "Every home gets the same `genesis.json` (consensus knobs at their defaults) and a",
            f"`{MEMBER_KEY_FILE}` (mode 0600): the signing key of the member institution that",
            "node brings to genesis, id `<role>-<i>`, its role by the node's index modulo "
            f"{len(MEMBER_ROLES)} ({roles}); validator i is member i's (its `member`).",
            "",
            f"Node i listens on 127.0.0.1: p2p `P + {PORT_STRIDE}*i`, client API "
            f"`P + {PORT_STRIDE}*i + 1`,",
            f"admin API `P + {PORT_STRIDE}*i + 2` (default P = {DEFAULT_BASE_PORT}: node0 "
            f"uses {p2p}, {api}, {admin}).",
            f"An existing testnet (`{TESTNET_FILE}` or a `node<i>` directory) is never replaced",
            "without `--force`; with it, exactly those are deleted first.",
            "",
            f"`{TESTNET_FILE}` (paths absolute):",
            "",
            "```json",
            '{"chain_id": "hygeia-testnet",',
            ' "nodes": [{"name": "node0", "home": "/abs/DIR/node0", "node_id": "<64 hex>",',
            f'            "p2p": "127.0.0.1:{p2p}", "api": "http://127.0.0.1:{api}",',
            f'            "admin": "http://127.0.0.1:{admin}",',
            '            "admin_token_file": "/abs/DIR/node0/admin_token"}]}',
            "```",
            "",
        ]
    )
