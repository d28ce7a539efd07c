"""node.register / node.unregister: the on-chain registry of members' non-validator nodes.

Driven through the real ``Ledger`` on a memory store (``execute_and_commit``), as
the other domains' tests are; ``registered_nodes`` is also read from a bare
dict-backed state reader, without any block applier; the CLI runs against a fake
client API.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from node.api.openapi import openapi_document
from node.api.remote import ClientError
from node.cli.client import client
from node.core.codec import canonical_json, parse_json
from node.core.keys import key_from_seed, public_key_hex, save_key
from node.core.tx import Tx, build_tx
from node.ledger.context import BlockInfo
from node.ledger.domains import nodes
from node.ledger.executor import BlockOutcome, Ledger, result_key
from node.ledger.result import Rejection
from node.ledger.state import BlockState
from storage.memory import MemoryChainStore
from tests.unit.ledger_helpers import execute_and_commit, run_query

CHAIN = "test-chain"
HOSP_A = key_from_seed(b"\x21" * 32)  # two keys of member "hosp"
HOSP_B = key_from_seed(b"\x22" * 32)
CLINIC = key_from_seed(b"\x23" * 32)
STRANGER = key_from_seed(b"\x24" * 32)
MEMBERS = [
    {
        "id": "hosp",
        "name": "Hospital",
        "roles": ["hospital"],
        "keys": [public_key_hex(HOSP_A), public_key_hex(HOSP_B)],
    },
    {"id": "clinic-9", "name": "Clinic", "roles": ["clinic"], "keys": [public_key_hex(CLINIC)]},
]
ROOT = Path(__file__).resolve().parents[2]
_nonce = itertools.count(1)


def nk(i: int) -> str:
    """A node key (any 64 hex: the ledger does not check it is a curve point)."""
    return f"{i:064x}"


def register(key_hex: str, signer: Any = HOSP_A, p2p: str = "10.0.0.5:26656", **kw: Any) -> Tx:
    body = {"node_key": key_hex, "p2p": p2p, "role": "observer", **kw}
    return build_tx(CHAIN, "node.register", body, signer, next(_nonce))


def unregister(key_hex: str, signer: Any = HOSP_A) -> Tx:
    return build_tx(CHAIN, "node.unregister", {"node_key": key_hex}, signer, next(_nonce))


class Chain:
    """A memory store and the blocks executed on it, one after the other."""

    def __init__(self) -> None:
        self.store = MemoryChainStore()
        self.height = 0
        self.root = b"\0" * 32

    def block(self, *txs: Tx) -> BlockOutcome:
        self.height += 1
        info = BlockInfo(CHAIN, self.height, 1_000 * self.height, 0)
        out = execute_and_commit(self.store, Ledger(), info, txs, self.root, MEMBERS)
        self.root = out.state_root
        return out

    def codes(self, *txs: Tx) -> list[str]:
        return [r.code for r in self.block(*txs).results]

    def get(self, key: bytes) -> Any:
        raw = self.store.state_get(key)
        return None if raw is None else parse_json(raw)

    def query(self, path: str, match: dict[str, str], params: dict[str, str] | None = None) -> Any:
        return run_query(nodes.DOMAIN, BlockState(self.store), path, match, params)


# ------------------------------------------------------------------ node.register
def test_register_stores_the_entry_and_the_member_index() -> None:
    c = Chain()
    tx = register(nk(1), p2p="observer-1.hosp.example:26656")
    out = c.block(tx)
    assert [r.code for r in out.results] == ["ok"]
    entry = {
        "node_key": nk(1),
        "member": "hosp",
        "p2p": "observer-1.hosp.example:26656",
        "role": "observer",
        "registered_height": 1,
    }
    assert out.results[0].data == entry
    assert c.store.state_get(b"node/" + nk(1).encode()) == canonical_json(entry)
    assert c.get(b"nodeby/hosp/" + nk(1).encode()) == 1
    # written in sorted key order, with the result: deterministic writes
    keys = [k for k, _ in out.writes]
    assert keys == sorted(keys)
    assert b"node/" + nk(1).encode() in keys and result_key(tx.hash) in keys


@pytest.mark.parametrize("role", ["validator", "Observer", "observer ", "x"])
def test_a_role_other_than_observer_is_bad_role_and_writes_nothing(role: str) -> None:
    c = Chain()
    out = c.block(register(nk(2), role=role))
    assert (out.results[0].status, out.results[0].code) == ("rejected", "bad-role")
    assert "observer" in out.results[0].message
    assert c.get(b"node/" + nk(2).encode()) is None
    assert list(c.store.state_iter(b"nodeby/")) == []


def test_a_registered_key_is_taken_for_every_member() -> None:
    c = Chain()
    assert c.codes(register(nk(3)), register(nk(3), p2p="10.0.0.6:1")) == ["ok", "key-taken"]
    out = c.block(register(nk(3), signer=CLINIC))
    assert out.results[0].code == "key-taken"
    assert "member hosp at height 1" in out.results[0].message
    assert c.get(b"node/" + nk(3).encode())["p2p"] == "10.0.0.5:26656"  # the first stays
    assert list(c.store.state_iter(b"nodeby/clinic-9/")) == []


def test_node_keys_and_member_signing_keys_are_separate_namespaces() -> None:
    """A member's own signing key (or another member's) may be registered as a node key."""
    c = Chain()
    own, other = public_key_hex(HOSP_A), public_key_hex(CLINIC)
    assert c.codes(register(own), register(other)) == ["ok", "ok"]
    assert [n["node_key"] for n in nodes.registered_nodes(c.store, "hosp")] == sorted([own, other])


def test_the_cap_is_per_member_and_frees_on_unregister() -> None:
    c = Chain()
    cap = nodes.MAX_NODES_PER_MEMBER
    assert c.codes(*(register(nk(100 + i)) for i in range(cap))) == ["ok"] * cap
    out = c.block(register(nk(200)))
    assert out.results[0].code == "too-many-nodes"
    assert f"({cap})" in out.results[0].message
    assert c.get(b"node/" + nk(200).encode()) is None
    # another member is not limited by hosp's nodes; either key of hosp counts for hosp
    assert c.codes(register(nk(201), signer=CLINIC), register(nk(202), signer=HOSP_B)) == [
        "ok",
        "too-many-nodes",
    ]
    assert c.codes(unregister(nk(100)), register(nk(200))) == ["ok", "ok"]
    assert len(nodes.registered_nodes(c.store, "hosp")) == cap


@pytest.mark.parametrize(
    "p2p",
    [
        "10.0.0.5",
        "10.0.0.5:0",
        "10.0.0.5:65536",
        "host:port",
        ":26656",
        "::1:26656",
        "[nothost]:1",
        "bad_host:1",
        "999.1.1.1:1",
        "a" * 254 + ":1",
        "",
    ],
)
def test_a_p2p_address_the_address_parser_refuses_is_malformed(p2p: str) -> None:
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(register(nk(4), p2p=p2p))
    assert err.value.code == "malformed" and err.value.message.startswith("body.p2p: ")
    # committed, it is rejected the same way and changes nothing
    c = Chain()
    assert c.codes(register(nk(4), p2p=p2p)) == ["malformed"]
    assert c.get(b"node/" + nk(4).encode()) is None


@pytest.mark.parametrize(
    "p2p", ["127.0.0.1:26656", "[2001:db8::7]:80", "node-1.example.org:65535", "localhost:1"]
)
def test_p2p_addresses_of_every_kind_are_accepted(p2p: str) -> None:
    Ledger().check_tx(register(nk(5), p2p=p2p))
    assert Chain().codes(register(nk(5), p2p=p2p)) == ["ok"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"node_key": "AB" * 32, "p2p": "h:1", "role": "observer"}, "body.node_key"),
        ({"node_key": "ab" * 31, "p2p": "h:1", "role": "observer"}, "body.node_key"),
        ({"node_key": "ab" * 32, "p2p": "h:1"}, "body.role"),
        ({"node_key": "ab" * 32, "p2p": "h:1", "role": 1}, "body.role"),
        ({"node_key": "ab" * 32, "p2p": "h:1", "role": "observer", "x": 1}, "body.x"),
    ],
)
def test_malformed_register_bodies_name_the_field(body: dict[str, Any], where: str) -> None:
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(build_tx(CHAIN, "node.register", body, HOSP_A, 1))
    assert err.value.code == "malformed" and where in err.value.message


def test_only_a_key_of_an_active_member_may_register_or_unregister() -> None:
    c = Chain()
    assert c.codes(register(nk(6)), register(nk(7), signer=STRANGER)) == ["ok", "unauthorized"]
    assert c.codes(unregister(nk(6), signer=STRANGER)) == ["unauthorized"]
    # a suspended member's key signs nothing (its nodes stay registered)
    state = BlockState(c.store)
    member = state.get(b"member/hosp")
    state.put(b"member/hosp", {**member, "status": "suspended"})
    c.store.commit_block(c.height + 1, b"\1" * 32, b"block", [], state.writes())
    c.height += 1
    assert c.codes(register(nk(8)), unregister(nk(6), signer=HOSP_B)) == [
        "unauthorized",
        "unauthorized",
    ]
    assert [n["node_key"] for n in nodes.registered_nodes(c.store)] == [nk(6)]
    for tx_type in ("node.register", "node.unregister"):
        with pytest.raises(Rejection) as err:
            Ledger().check_signer(c.store, build_tx(CHAIN, tx_type, {}, STRANGER, 1))
        assert err.value.code == "signer-not-allowed"


# ------------------------------------------------------------------ node.unregister
def test_the_owner_unregisters_with_any_of_its_keys_and_the_result_keeps_the_entry() -> None:
    c = Chain()
    c.block(register(nk(9), p2p="[::1]:26656"))
    tx = unregister(nk(9), signer=HOSP_B)
    out = c.block(tx)
    assert out.results[0].code == "ok"
    assert out.results[0].data == {
        "node_key": nk(9),
        "member": "hosp",
        "p2p": "[::1]:26656",
        "role": "observer",
        "registered_height": 1,
        "unregistered_height": 2,
    }
    assert c.get(b"node/" + nk(9).encode()) is None
    assert c.get(b"nodeby/hosp/" + nk(9).encode()) is None
    assert (b"node/" + nk(9).encode(), None) in out.writes  # a deletion, in the state root
    # the fact stays on the chain in the transaction's result
    assert c.get(result_key(tx.hash))["data"]["unregistered_height"] == 2
    # the key is free again, for any member
    assert c.codes(register(nk(9), signer=CLINIC)) == ["ok"]
    again = nodes.registered_node(c.store, nk(9))
    assert again is not None and again["member"] == "clinic-9"


def test_unregister_of_another_members_node_is_not_owner() -> None:
    c = Chain()
    c.block(register(nk(10)))
    out = c.block(unregister(nk(10), signer=CLINIC))
    assert out.results[0].code == "not-owner"
    assert "member hosp, not clinic-9" in out.results[0].message
    assert c.get(b"node/" + nk(10).encode()) is not None
    assert c.get(b"nodeby/hosp/" + nk(10).encode()) == 1


def test_unregister_of_an_unregistered_key_is_unknown_node() -> None:
    c = Chain()
    assert c.codes(unregister(nk(11))) == ["unknown-node"]
    # twice in one block: the second finds nothing
    c.block(register(nk(12)))
    assert c.codes(unregister(nk(12)), unregister(nk(12))) == ["ok", "unknown-node"]


# ------------------------------------------------------------------ determinism
def _history() -> list[tuple[Tx, ...]]:
    return [
        (register(nk(20)), register(nk(21), signer=CLINIC), register(nk(22), signer=HOSP_B)),
        (unregister(nk(20)), register(nk(23), p2p="[2001:db8::1]:9")),
        (register(nk(20), signer=CLINIC), unregister(nk(21), signer=HOSP_A)),
    ]


def test_the_same_blocks_give_the_same_state_roots_and_other_blocks_others() -> None:
    history = _history()
    roots = []
    for _ in range(2):
        c = Chain()
        roots.append([c.block(*txs).state_root for txs in history])
    assert roots[0] == roots[1]
    changed = [
        history[0],
        (unregister(nk(20)), register(nk(23), p2p="[2001:db8::1]:10")),
        history[2],
    ]
    c = Chain()
    other = [c.block(*txs).state_root for txs in changed]
    assert other[0] == roots[0][0] and other[1] != roots[0][1]


# ------------------------------------------------------------------ queries
def test_list_and_get_queries() -> None:
    c = Chain()
    c.block(register(nk(32)), register(nk(30), signer=CLINIC), register(nk(31)))
    listed = c.query("/nodes", {})
    assert [n["node_key"] for n in listed["nodes"]] == [nk(30), nk(31), nk(32)]
    assert listed["next"] is None
    by_hosp = c.query("/nodes", {}, {"member": "hosp"})["nodes"]
    assert [(n["node_key"], n["member"]) for n in by_hosp] == [(nk(31), "hosp"), (nk(32), "hosp")]
    assert c.query("/nodes", {}, {"member": "nobody"}) == {"nodes": [], "next": None}
    page = c.query("/nodes", {}, {"limit": "2"})
    assert [n["node_key"] for n in page["nodes"]] == [nk(30), nk(31)] and page["next"] == nk(31)
    rest = c.query("/nodes", {}, {"limit": "2", "after": page["next"]})
    assert [n["node_key"] for n in rest["nodes"]] == [nk(32)] and rest["next"] is None
    after = c.query("/nodes", {}, {"member": "hosp", "after": nk(31)})["nodes"]
    assert [n["node_key"] for n in after] == [nk(32)]
    one = c.query("/nodes/{node_key}", {"node_key": nk(30)})
    assert one == {
        "node_key": nk(30),
        "member": "clinic-9",
        "p2p": "10.0.0.5:26656",
        "role": "observer",
        "registered_height": 1,
    }
    assert c.query("/nodes/{node_key}", {"node_key": nk(33)}) is None  # 404


@pytest.mark.parametrize(
    ("path", "match", "params"),
    [
        ("/nodes/{node_key}", {"node_key": "XY"}, {}),
        ("/nodes/{node_key}", {"node_key": "AB" * 32}, {}),
        ("/nodes", {}, {"member": "bad member"}),
        ("/nodes", {}, {"member": "x" * 65}),
        ("/nodes", {}, {"after": "zz"}),
        ("/nodes", {}, {"limit": "0"}),
        ("/nodes", {}, {"limit": str(nodes.MAX_LIST + 1)}),
        ("/nodes", {}, {"limit": "²"}),
    ],
)
def test_bad_query_parameters_are_malformed(
    path: str, match: dict[str, str], params: dict[str, str]
) -> None:
    with pytest.raises(Rejection) as err:
        Chain().query(path, match, params)
    assert err.value.code == "malformed"


def test_the_queries_are_in_the_openapi_document() -> None:
    paths = openapi_document()["paths"]
    assert paths["/v1/nodes"]["get"]["tags"] == ["nodes"]
    names = [p["name"] for p in paths["/v1/nodes"]["get"]["parameters"]]
    assert names == ["member", "after", "limit"]
    assert "/v1/nodes/{node_key}" in paths


# ------------------------------------------------------------------ registered_nodes
class DictReader:
    """The least a state reader is: ``state_get`` and a sorted ``state_iter``."""

    def __init__(self, entries: dict[bytes, Any]) -> None:
        self.data = {k: canonical_json(v) for k, v in entries.items()}

    def state_get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def state_iter(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for k in sorted(self.data):
            if k.startswith(prefix):
                yield k, self.data[k]


def _entry(key_hex: str, member: str, height: int) -> dict[str, Any]:
    return {
        "node_key": key_hex,
        "member": member,
        "p2p": "10.1.1.1:26656",
        "role": "observer",
        "registered_height": height,
    }


def test_registered_nodes_reads_any_state_reader_in_key_order() -> None:
    reader = DictReader(
        {
            b"node/" + nk(3).encode(): _entry(nk(3), "b", 4),
            b"node/" + nk(1).encode(): _entry(nk(1), "a", 2),
            b"nodeby/a/" + nk(1).encode(): 1,
            b"nodeby/b/" + nk(3).encode(): 1,
            b"nodes-other/x": 1,  # not under node/
            b"member/a": {"id": "a"},
        }
    )
    assert nodes.registered_nodes(reader) == [_entry(nk(1), "a", 2), _entry(nk(3), "b", 4)]
    assert nodes.registered_nodes(reader, "b") == [_entry(nk(3), "b", 4)]
    assert nodes.registered_nodes(reader, "c") == []
    assert nodes.registered_node(reader, nk(3)) == _entry(nk(3), "b", 4)
    assert nodes.registered_node(reader, nk(2)) is None
    assert nodes.registered_nodes(DictReader({})) == []


def test_registered_nodes_follows_the_committed_chain() -> None:
    c = Chain()
    assert nodes.registered_nodes(c.store) == []
    c.block(register(nk(41)), register(nk(40), signer=CLINIC))
    assert [(n["node_key"], n["member"]) for n in nodes.registered_nodes(c.store)] == [
        (nk(40), "clinic-9"),
        (nk(41), "hosp"),
    ]
    c.block(unregister(nk(41)))
    assert [n["node_key"] for n in nodes.registered_nodes(c.store)] == [nk(40)]
    assert nodes.registered_node(c.store, nk(41)) is None


# ------------------------------------------------------------------ docs
def test_docs_list_every_rejection_code_of_both_types() -> None:
    doc = (ROOT / "docs" / "transactions.md").read_text(encoding="utf-8")
    section = doc.split("## Registered nodes", 1)[1].split("\n## ", 1)[0]
    codes = set(re.findall(r"^\| `([a-z-]+)` \|", section, re.MULTILINE))
    assert codes == {
        "malformed",
        "unauthorized",
        "bad-role",
        "key-taken",
        "too-many-nodes",
        "unknown-node",
        "not-owner",
    }
    assert "`node.register`" in section and "`node.unregister`" in section
    assert str(nodes.MAX_NODES_PER_MEMBER) in section
    operator = (ROOT / "docs" / "operator.md").read_text(encoding="utf-8")
    assert "## Observer nodes" in operator and "hygeia client node register" in operator


# ------------------------------------------------------------------ CLI
API = "http://node.test:26657"
TX_HASH = "ab" * 32


class FakeNode:
    """The client API as the CLI sees it: canned answers, every request recorded."""

    def __init__(self) -> None:
        self.gets: list[str] = []
        self.posted: list[dict[str, Any]] = []
        self.routes: dict[str, Any] = {"/v1/info": {"chain_id": CHAIN}}
        self.tx_result: dict[str, Any] = {"status": "ok", "code": "ok"}

    def __call__(self, method: str, url: str, body: bytes | None = None, **_: Any) -> Any:
        assert url.startswith(API + "/"), url
        path = url[len(API) :]
        if method == "POST":
            assert path == "/v1/txs" and body is not None
            self.posted.append(json.loads(body))
            return {"hash": TX_HASH}
        self.gets.append(path)
        if path == f"/v1/txs/{TX_HASH}":
            return {"status": "committed", "height": 3, "index": 0, "result": self.tx_result}
        if path in self.routes:
            return self.routes[path]
        raise ClientError(f"{url}: 404 not-found: no such thing", 404, "not-found")


@pytest.fixture
def api_node(monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    fake = FakeNode()
    monkeypatch.setattr("node.cli.clients.common.request_json", fake)
    return fake


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "member.json"
    save_key(path, HOSP_A)
    return path


def cli(*args: str) -> Result:
    return CliRunner().invoke(client, ["node", *args], catch_exceptions=False)


def test_cli_register_signs_the_body_with_the_member_key(
    api_node: FakeNode, key_file: Path
) -> None:
    result = cli("register", "--api", API, "--key", str(key_file), "--wait",
                 "--node-key", "AB" * 32, "--p2p", "obs.hosp.example:26656")  # fmt: skip
    assert result.exit_code == 0, result.output
    (tx,) = api_node.posted
    assert tx["type"] == "node.register" and tx["chain_id"] == CHAIN
    assert tx["signer"] == public_key_hex(HOSP_A)
    assert tx["body"] == {
        "node_key": "ab" * 32,
        "p2p": "obs.hosp.example:26656",
        "role": "observer",
    }
    assert json.loads(result.output)["status"] == "committed"
    assert api_node.gets[-1] == f"/v1/txs/{TX_HASH}"
    # the transaction the CLI built is one the ledger takes from that key
    c = Chain()
    signed = build_tx(CHAIN, tx["type"], tx["body"], HOSP_A, tx["nonce"])
    assert signed.obj["sig"] == tx["sig"]
    assert c.codes(signed) == ["ok"]


def test_cli_unregister_and_a_rejection_exit_1(api_node: FakeNode, key_file: Path) -> None:
    api_node.tx_result = {"status": "rejected", "code": "not-owner", "message": "m"}
    result = cli("unregister", "--api", API, "--key", str(key_file), "--wait",
                 "--node-key", "cd" * 32)  # fmt: skip
    assert result.exit_code == 1
    (tx,) = api_node.posted
    assert tx["type"] == "node.unregister" and tx["body"] == {"node_key": "cd" * 32}
    assert json.loads(result.output)["result"]["code"] == "not-owner"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node-key", "ab" * 31, "--p2p", "h:1"], "--node-key must be 64 hex"),
        (["--node-key", "ab" * 32, "--p2p", "h"], "--p2p: expected host:port"),
        (["--node-key", "ab" * 32, "--p2p", "h:0"], "--p2p: port in 'h:0'"),
    ],
)
def test_cli_refuses_a_bad_key_or_address_before_signing(
    api_node: FakeNode, key_file: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        client, ["node", "register", "--api", API, "--key", str(key_file), *args]
    )
    assert result.exit_code == 1 and message in result.output, result.output
    assert api_node.posted == [] and api_node.gets == []


def test_cli_a_role_other_than_observer_is_a_usage_error(
    api_node: FakeNode, key_file: Path
) -> None:
    result = CliRunner().invoke(client, ["node", "register", "--api", API, "--key", str(key_file),
                                         "--node-key", "ab" * 32, "--p2p", "h:1",
                                         "--role", "validator"])  # fmt: skip
    assert result.exit_code == 2 and api_node.posted == []


def test_cli_list_and_show_ask_the_node_under_v1(api_node: FakeNode) -> None:
    api_node.routes["/v1/nodes"] = {"nodes": [], "next": None}
    api_node.routes["/v1/nodes?member=clinic-9"] = {"nodes": [_entry(nk(1), "clinic-9", 2)]}
    api_node.routes["/v1/nodes/" + nk(1)] = _entry(nk(1), "clinic-9", 2)
    assert cli("list", "--api", API).exit_code == 0
    result = cli("list", "--api", API, "--member", "clinic-9")
    assert result.exit_code == 0 and json.loads(result.output)["nodes"][0]["node_key"] == nk(1)
    assert cli("show", "--api", API, "--node-key", nk(1).upper()).exit_code == 0
    result = CliRunner().invoke(client, ["node", "show", "--api", API, "--node-key", nk(2)])
    assert result.exit_code == 1 and "404" in result.output
    assert api_node.gets == [
        "/v1/nodes",
        "/v1/nodes?member=clinic-9",
        "/v1/nodes/" + nk(1),
        "/v1/nodes/" + nk(2),
    ]
