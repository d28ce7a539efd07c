"""Who may sign, checked at admission against the committed state (issue 11, item 8).

``Ledger.check_signer`` runs each type's own ``authorize`` on the committed state:
a transaction of a random key is refused (``signer-not-allowed``) before it is
gossiped, ordered and stored for good as rejected; a member's and an enrolled
patient's pass. The rules must stay cheap: they read the signer's member or
patient record and nothing else.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from node.core.keys import key_from_seed, public_key_hex
from node.core.tx import Tx, build_tx
from node.ledger.context import BlockInfo
from node.ledger.executor import Ledger
from node.ledger.result import Rejection
from node.mempool import Mempool, MempoolError, MempoolLimits
from storage.memory import MemoryChainStore
from tests.unit.ledger_helpers import execute_and_commit

CHAIN = "test-chain"
HOSPITAL = key_from_seed(b"\x11" * 32)
INSURER = key_from_seed(b"\x12" * 32)
PATIENT = key_from_seed(b"\x13" * 32)
STRANGER = key_from_seed(b"\x14" * 32)
MEMBERS = [
    {"id": "hosp", "name": "Hospital", "roles": ["hospital"], "keys": [public_key_hex(HOSPITAL)]},
    {"id": "ins", "name": "Insurer", "roles": ["insurer"], "keys": [public_key_hex(INSURER)]},
]
_nonce = itertools.count(1)


def tx(tx_type: str, body: dict[str, Any], key: Any) -> Tx:
    return build_tx(CHAIN, tx_type, body, key, next(_nonce))


def refusal(ledger: Ledger, store: Any, t: Tx, founders: Any = ()) -> str | None:
    try:
        ledger.check_signer(store, t, founders)
    except Rejection as rej:
        assert rej.code == "signer-not-allowed", rej
        return rej.message
    return None


def chain_with_enrolled_patient() -> MemoryChainStore:
    """Block 1 writes the founders; block 2 enrols ``PATIENT`` (by the hospital)."""
    store = MemoryChainStore()
    ledger = Ledger()
    root = b"\0" * 32
    for height, txs in ((1, []), (2, [tx("patient.enroll", {"patient": pk(PATIENT)}, HOSPITAL)])):
        block = BlockInfo(CHAIN, height, 1_000 * height, 0)
        out = execute_and_commit(store, ledger, block, txs, root, MEMBERS)
        assert all(r.status == "ok" for r in out.results), out.results
        root = out.state_root
    return store


def pk(key: Any) -> str:
    return public_key_hex(key)


def test_a_random_key_may_sign_no_type() -> None:
    ledger = Ledger()
    store = chain_with_enrolled_patient()
    names = ledger.registry.names()
    assert len(names) >= 30, names
    for name in names:
        message = refusal(ledger, store, tx(name, {}, STRANGER))
        assert message is not None and message.startswith(f"{name}: "), (name, message)


def test_members_by_role_and_patients_by_enrolment() -> None:
    ledger = Ledger()
    store = chain_with_enrolled_patient()
    assert refusal(ledger, store, tx("data.anchor", {}, HOSPITAL)) is None
    assert refusal(ledger, store, tx("policy.publish", {}, INSURER)) is None
    assert "lacks a role" in str(refusal(ledger, store, tx("policy.publish", {}, HOSPITAL)))
    assert refusal(ledger, store, tx("consent.grant", {}, PATIENT)) is None
    assert refusal(ledger, store, tx("consent.revoke", {}, PATIENT)) is None
    # a patient key is not a member's: it signs the patient's types only
    assert refusal(ledger, store, tx("data.anchor", {}, PATIENT)) is not None
    assert refusal(ledger, store, tx("consent.grant", {}, HOSPITAL)) is not None


def test_before_block_1_the_founders_of_genesis_are_the_members() -> None:
    """Block 1 writes the founding members; until then admission is given them."""
    ledger = Ledger()
    empty = MemoryChainStore()
    anchor = tx("data.anchor", {}, HOSPITAL)
    assert refusal(ledger, empty, anchor) is not None
    assert refusal(ledger, empty, anchor, MEMBERS) is None
    assert refusal(ledger, empty, tx("data.anchor", {}, STRANGER), MEMBERS) is not None
    assert list(empty.state_iter(b"")) == []  # nothing written


class ReadLog:
    """A state reader that records the keys read."""

    def __init__(self, inner: MemoryChainStore) -> None:
        self.inner = inner
        self.keys: list[bytes] = []

    def state_get(self, key: bytes) -> bytes | None:
        self.keys.append(key)
        return self.inner.state_get(key)

    def state_iter(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        raise AssertionError(f"an authorize rule scanned {prefix!r}: too costly for admission")


@pytest.mark.parametrize("signer", [HOSPITAL, INSURER, PATIENT, STRANGER])
def test_every_rule_reads_only_the_signers_record(signer: Any) -> None:
    """What makes the check cheap and sound at admission: each rule looks up the
    signer's member or patient record (a few keys: claims reads them twice to word a
    refusal), nothing that a transaction's body names and nothing of the block."""
    ledger = Ledger()
    reader = ReadLog(chain_with_enrolled_patient())
    for name in ledger.registry.names():
        reader.keys.clear()
        refusal(ledger, reader, tx(name, {}, signer))
        assert len(reader.keys) <= 4, (name, reader.keys)
        for key in reader.keys:
            assert key.startswith((b"memberkey/", b"member/", b"ehr/patient/")), (name, key)


def test_mempool_refuses_before_the_signer_quota_and_counts_it() -> None:
    """A refused signer takes no per-signer share and nothing is queued for gossip."""

    def only_a(t: Any) -> None:
        if t.signer != "a":
            raise MempoolError("signer-not-allowed", "no", 403)

    mp = Mempool(MempoolLimits(per_signer_max=1), is_committed=lambda h: False, check_signer=only_a)
    fresh = [Tx_(f"{n:064x}", f"k{n}") for n in range(5)]
    for t in fresh:
        with pytest.raises(MempoolError) as info:
            mp.add(t, 0)
        assert (info.value.code, info.value.http_status) == ("signer-not-allowed", 403)
    assert len(mp) == 0 and mp.take_gossip() == []
    assert mp.rejected == {"signer-not-allowed": 5}
    assert mp.add(Tx_("f" * 64, "a"), 0) is True


class Tx_:
    def __init__(self, h: str, signer: str) -> None:
        self.hash = h
        self.signer = signer
        self.wire = b"x"
