"""node/setup/genesis.py: strict loading with field paths, consensus config, lookups, the hash."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from consensus.config import EPOCH_FIELDS, NODE_LOCAL_FIELDS, ConsensusConfig
from node.setup import genesis as genesis_mod
from node.setup.genesis import (
    CONSENSUS_KNOBS,
    GenesisError,
    default_consensus_params,
    load_genesis,
    loads_genesis,
    parse_genesis,
    write_genesis,
)

KEYS = [hashlib.sha256(bytes([i])).hexdigest() for i in range(7)]


def valid_doc(n: int = 4) -> dict[str, Any]:
    return {
        "chain_id": "hygeia-test",
        "genesis_time": 1_767_225_600_000,
        "consensus": default_consensus_params(),
        "validators": [
            {
                "name": f"node{i}",
                "member": ("hospital-0", "insurer-1")[i % 2],
                "node_key": KEYS[i],
                "p2p": f"127.0.0.1:{26656 + 10 * i}",
            }
            for i in range(n)
        ],
        "members": [
            {
                "id": "hospital-0",
                "name": "Hôpital Saint-Louis",
                "roles": ["hospital", "sponsor"],
                "keys": [KEYS[5]],
            },
            {"id": "insurer-1", "name": "Insurer", "roles": ["insurer"], "keys": [KEYS[6]]},
        ],
    }


def test_knob_list_and_docs_follow_consensus_config() -> None:
    fields = set(ConsensusConfig.__dataclass_fields__) - {
        "chain_id",
        "n",
        *NODE_LOCAL_FIELDS,
        *EPOCH_FIELDS,
    }
    assert set(CONSENSUS_KNOBS) == fields
    assert set(genesis_mod._CONSENSUS_DOCS) == fields
    defaults = ConsensusConfig(chain_id="x", n=4)
    assert default_consensus_params() == {k: getattr(defaults, k) for k in CONSENSUS_KNOBS}


def test_valid_genesis() -> None:
    g = parse_genesis(valid_doc())
    assert g.chain_id == "hygeia-test"
    assert g.n == 4
    cc = g.consensus_config()
    assert cc == ConsensusConfig(chain_id="hygeia-test", n=4, **default_consensus_params())
    assert cc.f == 1
    assert g.to_json() == valid_doc()
    assert g.validator_public_keys() == [bytes.fromhex(k) for k in KEYS[:4]]
    assert g.members_json() == valid_doc()["members"]


def test_validator_lookups() -> None:
    g = parse_genesis(valid_doc())
    assert g.validator_index(KEYS[2]) == 2
    assert g.validator_index(KEYS[2].upper()) == 2
    assert g.validator_index(bytes.fromhex(KEYS[3])) == 3
    assert g.validator_index(KEYS[6]) is None
    assert g.validator_index_by_name("node1") == 1
    assert g.validator_index_by_name("nobody") is None
    assert g.validators[1].public_key == bytes.fromhex(KEYS[1])


def test_genesis_hash_is_sha256_of_canonical_json() -> None:
    doc = valid_doc()
    g = parse_genesis(doc)
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert g.genesis_hash() == hashlib.sha256(canonical.encode("utf-8")).digest()
    assert g.genesis_hash_hex() == g.genesis_hash().hex()
    assert "Hôpital".encode() in g.canonical_bytes()  # not \u00f4


def test_genesis_hash_ignores_formatting_but_not_content() -> None:
    doc = valid_doc()
    reordered = dict(reversed(list(doc.items())))
    a = loads_genesis(json.dumps(doc, indent=4))
    b = loads_genesis(json.dumps(reordered, separators=(",", ":")))
    assert a.genesis_hash() == b.genesis_hash()
    changed = copy.deepcopy(doc)
    changed["genesis_time"] += 1
    assert parse_genesis(changed).genesis_hash() != a.genesis_hash()


def test_genesis_hash_function_takes_every_form() -> None:
    """The one genesis-hash function (database, backups, peer handshake)."""
    doc = valid_doc()
    g = parse_genesis(doc)
    text = json.dumps(doc, indent=4, sort_keys=False)
    for form in (g, doc, text, text.encode()):
        assert genesis_mod.genesis_hash(form) == g.genesis_hash()
    changed = copy.deepcopy(doc)
    changed["consensus"]["batch_timeout_ms"] += 1
    assert genesis_mod.genesis_hash(changed) != g.genesis_hash()
    with pytest.raises(GenesisError):
        genesis_mod.genesis_hash({**doc, "chain_id": ""})


def test_write_and_load_round_trip(tmp_path: Path) -> None:
    g = parse_genesis(valid_doc())
    path = tmp_path / "genesis.json"
    write_genesis(path, g)
    loaded = load_genesis(path)
    assert loaded == g
    assert loaded.genesis_hash() == g.genesis_hash()
    assert path.read_bytes() == g.dumps()


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = path.replace("[", ".").replace("]", "").split(".")
    target: Any = doc
    for p in parts[:-1]:
        target = target[int(p)] if p.isdigit() else target[p]
    last = parts[-1]
    if value is _DELETE:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("chain_id", _DELETE, "chain_id: missing from the document"),
        ("extra", 1, "extra: unknown field (expected chain_id, genesis_time"),
        ("chain_id", "", "chain_id: must not be empty"),
        ("chain_id", "has space", 'chain_id: "has space" is not'),
        ("chain_id", 7, "chain_id: expected a string, got an integer (7)"),
        ("genesis_time", -1, "genesis_time: must be in 0.."),
        ("genesis_time", "2026-01-01", "genesis_time: expected an integer, got a string"),
        ("genesis_time", True, "genesis_time: expected an integer, got a boolean"),
        ("consensus", [], "consensus: expected an object, got an array"),
        (
            "consensus.batch_timeout_ms",
            _DELETE,
            "consensus.batch_timeout_ms: missing from consensus",
        ),
        ("consensus.batch_size", 5, "consensus.batch_size: unknown field"),
        ("consensus.batch_max_count", 0, "consensus.batch_max_count: must be in 1.."),
        (
            "consensus.pipeline_window",
            None,
            "consensus.pipeline_window: expected an integer, got null",
        ),
        (
            "consensus.watermark_window",
            8,
            "consensus: watermark_window must be at least 2 * checkpoint_interval (8 < 32)",
        ),
        (
            "consensus.view_change_timeout_ms",
            100_000,
            "consensus.view_change_timeout_ms: must not exceed consensus.view_change_timeout_max",
        ),
        ("validators", [], "validators: must not be empty"),
        ("validators", {}, "validators: expected an array, got an object"),
        ("validators[1]", "node1", "validators[1]: expected an object, got a string"),
        ("validators[2].node_key", "abc", "validators[2].node_key: expected 64 lower-case hex"),
        (
            "validators[2].node_key",
            KEYS[2].upper(),
            "validators[2].node_key: expected 64 lower-case",
        ),
        (
            "validators[2].node_key",
            KEYS[0],
            "validators[2].node_key: same as validators[0].node_key",
        ),
        ("validators[3].name", "node0", "validators[3].name: same as validators[0].name"),
        ("validators[1].p2p", "127.0.0.1:26656", "validators[1].p2p: same as validators[0].p2p"),
        ("validators[1].p2p", "localhost", "validators[1].p2p: expected host:port"),
        ("validators[1].p2p", "10.0.0.1:0", "validators[1].p2p: port in '10.0.0.1:0' must be"),
        (
            "validators[0].power",
            1,
            "validators[0].power: unknown field (expected name, member, node_key, p2p)",
        ),
        ("validators[0].p2p", _DELETE, "validators[0].p2p: missing from validators[0]"),
        ("validators[2].member", _DELETE, "validators[2].member: missing from validators[2]"),
        (
            "validators[2].member",
            "clinic-9",
            'validators[2].member: "clinic-9" is not the id of a member',
        ),
        ("validators[2].member", 5, "validators[2].member: expected a string, got an integer (5)"),
        ("validators[2].member", "a b", 'validators[2].member: "a b" is not'),
        ("validators[2].member", "", "validators[2].member: must not be empty"),
        ("members", None, "members: expected an array, got null"),
        ("members[0].roles", [], "members[0].roles: must not be empty"),
        (
            "members[0].roles[1]",
            "doctor",
            'members[0].roles[1]: unknown role "doctor" (roles: hospital',
        ),
        ("members[0].roles[1]", "hospital", "members[0].roles[1]: role hospital listed twice"),
        ("members[0].keys", [], "members[0].keys: must not be empty"),
        (
            "members[1].keys[0]",
            KEYS[5],
            "members[1].keys[0]: key already belongs to member hospital-0",
        ),
        ("members[1].keys[0]", "zz" * 32, "members[1].keys[0]: expected 64 lower-case hex"),
        ("members[1].id", "hospital-0", "members[1].id: same as members[0].id"),
        ("members[1].id", "a/b", 'members[1].id: "a/b" is not'),
        ("members[1].name", " ", "members[1].name: must not be empty"),
    ],
)
def test_invalid_genesis_names_the_field(path: str, value: Any, message: str) -> None:
    doc = valid_doc()
    _set(doc, path, value)
    with pytest.raises(GenesisError) as e:
        parse_genesis(doc, source="g.json")
    assert str(e.value).startswith("g.json: ")
    assert message in str(e.value)


def test_not_an_object() -> None:
    with pytest.raises(GenesisError, match=r"genesis.json: expected an object, got an array"):
        parse_genesis([])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"chain_id": "a", "chain_id": "b"}', 'duplicate key "chain_id"'),
        ('{"genesis_time": 1.5}', "floats are not allowed (1.5)"),
        ('{"genesis_time": 1e3}', "floats are not allowed (1e3)"),
        ('{"genesis_time": NaN}', "floats are not allowed (NaN)"),
        ('{"chain_id": ', "invalid JSON: "),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_strict_json(text: str | bytes, message: str) -> None:
    with pytest.raises(GenesisError) as e:
        loads_genesis(text, source="g.json")
    assert str(e.value).startswith("g.json: ")
    assert message in str(e.value)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(GenesisError, match=r"genesis\.json: not found"):
        load_genesis(tmp_path / "genesis.json")
    with pytest.raises(GenesisError, match=r"is a directory"):
        load_genesis(tmp_path)
    bad = tmp_path / "bad.json"
    doc = valid_doc()
    doc["chain_id"] = 1
    bad.write_text(json.dumps(doc))
    with pytest.raises(GenesisError, match=rf"^{bad}: chain_id: expected a string"):
        load_genesis(bad)


def test_one_validator_and_its_member_suffice() -> None:
    doc = valid_doc(1)
    doc["members"] = doc["members"][:1]
    g = parse_genesis(doc)
    assert g.n == 1
    assert g.consensus_config().quorum == 1
    assert g.validators[0].member == "hospital-0"
    assert g.validators_json() == doc["validators"]


def test_every_validator_needs_a_member_of_genesis() -> None:
    """A validator names the member that runs it; with no members no validator can."""
    doc = valid_doc(1)
    doc["members"] = []
    with pytest.raises(GenesisError) as e:
        parse_genesis(doc)
    assert str(e.value) == (
        'genesis.json: validators[0].member: "hospital-0" is not the id of a member'
    )


def test_reference_mentions_every_knob_and_role() -> None:
    text = genesis_mod.render_reference()
    for knob in CONSENSUS_KNOBS:
        assert f"`{knob}`" in text
    for role in genesis_mod.ROLES:
        assert role in text
