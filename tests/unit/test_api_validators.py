"""``GET /v1/validators[?height=H]``, the epoch and role of ``/status`` and the admin
``/validators`` (node/api/views.py, node/api/client.py), over epochs in the state."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api.client import client_app
from node.api.openapi import openapi_document
from node.api.views import epoch_role, epochs, validator_set, validators
from node.core.tx import TxPayloadRules
from node.engine.applier import BlockApplier
from node.ledger.executor import Ledger
from node.ledger.state import BlockState
from node.ledger.validators import EpochRecord, ValidatorEntry, genesis_epoch, put_epoch
from node.setup.genesis import default_consensus_params, parse_genesis
from storage.memory import MemoryChainStore
from tests.unit.chain_helpers import make_committed

KEYS = [hashlib.sha256(b"api-node-%d" % i).hexdigest() for i in range(6)]
ME = bytes.fromhex(KEYS[3])


def entry(i: int, name: str = "") -> ValidatorEntry:
    return ValidatorEntry(name or f"v{i}", f"m{i % 2}", KEYS[i], f"10.0.0.{i}:26656")


def genesis_json() -> list[dict[str, Any]]:
    return [entry(i).to_json() for i in range(4)]


def three_epochs() -> list[EpochRecord]:
    """Epoch 0: v0..v3 from 1; epoch 1 (made at 20): v3 removed, from 49; epoch 2 (made
    at 60): v4 added, from 97."""
    e0 = genesis_epoch(genesis_json())
    e1 = EpochRecord(1, 49, e0.validators[:3], "aa" * 32, 20)
    e2 = EpochRecord(2, 97, (*e1.validators, entry(4)), "bb" * 32, 60)
    return [e0, e1, e2]


def test_validator_set_is_the_next_blocks_set_with_the_pending_change() -> None:
    """Without ?height: the set that certifies tip + 1; pending is the latest epoch while
    its from_height > tip + 1, as stored, else null."""
    records = three_epochs()
    at_70 = validator_set(records, 70, None)
    assert at_70 == {
        "epoch": 1,
        "from_height": 49,
        "validators": [entry(i).to_json() for i in range(3)],
        "pending": records[2].to_json(),
    }
    assert at_70["pending"]["proposal"] == "bb" * 32
    assert at_70["pending"]["committed_height"] == 60
    # tip + 1 == 97: epoch 2 certifies the next block, nothing pending
    at_96 = validator_set(records, 96, None)
    assert (at_96["epoch"], at_96["pending"]) == (2, None)
    assert [v["name"] for v in at_96["validators"]] == ["v0", "v1", "v2", "v4"]
    assert validator_set(records, 95, None)["pending"] == records[2].to_json()


@pytest.mark.parametrize(
    ("height", "epoch"), [(0, 0), (1, 0), (48, 0), (49, 1), (96, 1), (97, 2), (10**17, 2)]
)
def test_validator_set_of_a_height(height: int, epoch: int) -> None:
    """?height=H: the latest epoch whose from_height <= H, also above what the state
    knows; pending still compares with the tip."""
    body = validator_set(three_epochs(), 70, height)
    assert body["epoch"] == epoch
    assert body["from_height"] == three_epochs()[epoch].from_height
    assert body["pending"] is not None


def test_status_epoch_and_role() -> None:
    """The epoch in force for tip + 1, and validator/observer by this node's key in it."""
    records = three_epochs()
    assert epoch_role(records, 0, ME) == (0, "validator")
    assert epoch_role(records, 47, ME) == (0, "validator")
    assert epoch_role(records, 48, ME) == (1, "observer")  # v3 removed from 49
    assert epoch_role(records, 96, bytes.fromhex(KEYS[4])) == (2, "validator")
    assert epoch_role(records, 95, bytes.fromhex(KEYS[4])) == (1, "observer")


def test_admin_validators_lists_the_current_set() -> None:
    records = three_epochs()
    rows = validators(records, 96, {bytes.fromhex(KEYS[0])}, bytes.fromhex(KEYS[4]))
    assert [(r["index"], r["name"], r["self"], r["connected"]) for r in rows] == [
        (0, "v0", False, True),
        (1, "v1", False, False),
        (2, "v2", False, False),
        (3, "v4", True, False),
    ]
    assert rows[3] == {"index": 3, **entry(4).to_json(), "self": True, "connected": False}


def test_epochs_come_from_the_state_or_genesis_before_block_1() -> None:
    doc = {
        "chain_id": "hygeia-test",
        "genesis_time": 0,
        "consensus": default_consensus_params(),
        "validators": genesis_json(),
        "members": [{"id": f"m{i}", "name": "M", "roles": ["clinic"], "keys": [f"{i + 1:064x}"]}
                    for i in range(2)],
    }  # fmt: skip
    genesis = parse_genesis(doc)
    store = MemoryChainStore()
    assert epochs(store, genesis) == ([genesis_epoch(genesis_json())], 0)
    BlockApplier(store, genesis, Ledger(), TxPayloadRules(genesis.chain_id)).apply(
        make_committed([], height=1)
    )
    state = BlockState(store)
    put_epoch(state, three_epochs()[1])
    store.commit_block(2, b"\2" * 32, b"block", [], state.writes())
    assert epochs(store, genesis) == (three_epochs()[:2], 2)


class FakeNode:
    """The one facade method ``GET /v1/validators`` calls, recording its argument."""

    documents = None  # no document routes

    def __init__(self) -> None:
        self.asked: list[int | None] = []

    def validator_set_json(self, height: int | None) -> dict[str, Any]:
        self.asked.append(height)
        return validator_set(three_epochs(), 70, height)


async def test_get_v1_validators_parses_height() -> None:
    """No ?height: the next block's set; a height of digits: that height's; anything else
    (negative, not a number, too long): 400 malformed."""
    node = FakeNode()
    async with TestClient(TestServer(client_app(node))) as client:  # type: ignore[arg-type]
        r = await client.get("/v1/validators")
        assert r.status == 200
        body = await r.json()
        assert body["epoch"] == 1 and body["pending"]["epoch"] == 2
        r = await client.get("/v1/validators", params={"height": "97"})
        assert (r.status, (await r.json())["epoch"]) == (200, 2)
        r = await client.get("/v1/validators", params={"height": "0"})
        assert (r.status, (await r.json())["epoch"]) == (200, 0)
        for bad in ("-1", "x", "1.5", "", "1" * 19, "+3"):
            r = await client.get("/v1/validators", params={"height": bad})
            body = await r.json()
            assert (r.status, body["error"]["code"]) == (400, "malformed"), bad
    assert node.asked == [None, 97, 0]


def test_openapi_documents_v1_validators() -> None:
    doc = openapi_document()
    op = doc["paths"]["/v1/validators"]["get"]
    assert set(op["responses"]) == {"200", "400"}
    assert [p["name"] for p in op["parameters"]] == ["height"]
    schemas = doc["components"]["schemas"]
    assert set(schemas["ValidatorSet"]["required"]) == {
        "epoch",
        "from_height",
        "validators",
        "pending",
    }
    assert set(schemas["Epoch"]["required"]) == set(three_epochs()[0].to_json())
    assert set(schemas["Validator"]["required"]) == set(entry(0).to_json())
