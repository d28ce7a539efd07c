"""Transactions, keys and the payload rules; keeps docs/transactions.md honest.

``python -m tests.unit.test_tx`` prints the worked example of
docs/transactions.md; ``test_doc_example_matches`` fails if the doc drifts.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import node.core.tx as txmod
from consensus.crypto import PayloadRules, Signer, Verifier
from consensus.merkle import merkle_root
from node.core.codec import canonical_json
from node.core.keys import (
    KeyFileError,
    KeySigner,
    ValidatorVerifier,
    generate_key,
    key_from_seed,
    load_key,
    public_key_hex,
    save_key,
    sign,
    verify,
    verify_batch,
)
from node.core.tx import (
    MAX_NONCE,
    Tx,
    TxCache,
    TxError,
    TxPayloadRules,
    build_tx,
    decode_tx,
    tx_from_json_obj,
)
from tests.unit.chain_helpers import KEY, anchor_body, doc_blocks

DOC = Path(__file__).resolve().parents[2] / "docs" / "transactions.md"
CHAIN = "hygeia-example"
OTHER = key_from_seed(hashlib.sha256(b"hygeia-other").digest())


def make(nonce: int = 1, **kw: Any) -> Tx:
    args: dict[str, Any] = {
        "chain_id": CHAIN,
        "type": "data.anchor",
        "body": anchor_body(),
        "signing_key": KEY,
        "nonce": nonce,
    }
    args.update(kw)
    return build_tx(**args)


# ------------------------------------------------------------------ the worked example


def _wrap(hex_text: str, width: int = 64) -> str:
    return "\n".join(hex_text[i : i + width] for i in range(0, len(hex_text), width))


def example_values() -> dict[str, str]:
    """Every value the worked example of docs/transactions.md shows."""
    seed = bytes(range(1, 33))
    key = key_from_seed(seed)
    tx = build_tx(CHAIN, "data.anchor", anchor_body(), key, 1)
    unsigned = {k: v for k, v in tx.obj.items() if k != "sig"}
    canon_in = {"b": [3, {"z": None, "y": True}], "a": "Zoë → 医院", "A": -7}
    return {
        "seed_hex": seed.hex(),
        "public_key": public_key_hex(key),
        "unsigned_tx": json.dumps(unsigned, indent=2),
        "signing_bytes": tx.signing_bytes.decode("utf-8"),
        "signing_bytes_hex": tx.signing_bytes.hex(),
        "tx_hash": tx.hash,
        "signature": tx.sig,
        "signed_tx": tx.wire.decode("utf-8"),
        "canon_input": json.dumps(canon_in, indent=2, ensure_ascii=False),
        "canon_output": canonical_json(canon_in).decode("utf-8"),
        "canon_output_hex": canonical_json(canon_in).hex(),
    }


HEX_FIELDS = {"seed_hex", "public_key", "signing_bytes_hex", "tx_hash", "signature"}
HEX_FIELDS |= {"canon_output_hex"}


def render_example() -> str:
    out = []
    for name, value in example_values().items():
        shown = _wrap(value) if name in HEX_FIELDS else value
        lang = "json" if name in {"unsigned_tx", "canon_input"} else "text"
        out.append(f"<!-- example:{name} -->\n```{lang}\n{shown}\n```\n")
    return "\n".join(out)


def test_doc_example_matches() -> None:
    blocks = doc_blocks(DOC.read_text(encoding="utf-8"))
    want = example_values()
    assert set(blocks) == set(want), "docs/transactions.md example blocks are missing or extra"
    for name, value in want.items():
        got = blocks[name]
        if name in HEX_FIELDS:
            got = "".join(got.split())
        assert got == value, (
            f"docs/transactions.md example {name!r} drifted; "
            "regenerate with `.venv/bin/python -m tests.unit.test_tx`"
        )


def test_doc_example_is_self_consistent() -> None:
    """What a client in another language does, from the doc's values alone."""
    v = doc_blocks(DOC.read_text(encoding="utf-8"))
    signing = v["signing_bytes"].encode("utf-8")
    assert signing.hex() == "".join(v["signing_bytes_hex"].split())
    assert hashlib.sha256(signing).hexdigest() == "".join(v["tx_hash"].split())
    pub = bytes.fromhex("".join(v["public_key"].split()))
    sig = bytes.fromhex("".join(v["signature"].split()))
    assert verify(pub, signing, sig)
    unsigned = json.loads(v["unsigned_tx"])
    assert canonical_json(unsigned) == signing
    signed = v["signed_tx"].encode("utf-8")
    tx = decode_tx(signed, chain_id=CHAIN)
    assert tx.wire == signed and tx.verify_signature()
    canon = canonical_json(json.loads(v["canon_input"]))
    assert canon == v["canon_output"].encode("utf-8")
    assert canon.hex() == "".join(v["canon_output_hex"].split())


# ------------------------------------------------------------------ build / decode


def test_roundtrip() -> None:
    tx = make()
    assert tx.verify_signature()
    assert tx.wire == canonical_json(tx.obj)
    assert tx.signing_bytes == canonical_json({k: v for k, v in tx.obj.items() if k != "sig"})
    assert tx.hash == hashlib.sha256(tx.signing_bytes).hexdigest()
    back = decode_tx(tx.wire, chain_id=CHAIN)
    assert back == tx
    assert (back.obj, back.hash, back.signing_bytes) == (tx.obj, tx.hash, tx.signing_bytes)
    assert back.signer == public_key_hex(KEY)
    assert back.nonce == 1 and back.type == "data.anchor" and back.chain_id == CHAIN
    assert back.to_json_obj() == tx.obj
    again = tx_from_json_obj(json.loads(tx.wire), chain_id=CHAIN)
    assert again == tx and again.hash == tx.hash


def test_non_canonical_input_gets_canonical_wire() -> None:
    tx = make()
    pretty = json.dumps(json.loads(tx.wire), indent=4, ensure_ascii=True).encode()
    got = decode_tx(pretty, chain_id=CHAIN)
    assert got.wire == tx.wire and got.hash == tx.hash and got.verify_signature()


def test_nonce_makes_identical_txs_distinct() -> None:
    assert make(1).hash != make(2).hash


def test_hash_does_not_cover_signature() -> None:
    tx = make()
    other_sig = dict(tx.obj, sig="00" * 64)
    assert tx_from_json_obj(other_sig).hash == tx.hash


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chain_id", "hygeia-other"),
        ("type", "data.anchor_v"),
        ("body", {"digest": "00" * 32, "kind": "lab-report"}),
        ("body", {**anchor_body(), "extra": 1}),
        ("signer", public_key_hex(OTHER)),
        ("nonce", 2),
        ("nonce", 0),
        ("sig", "00" * 64),
    ],
)
def test_tamper_any_field_breaks_signature(field: str, value: Any) -> None:
    tx = make()
    assert tx.verify_signature()
    obj = dict(tx.obj)
    obj[field] = value
    tampered = tx_from_json_obj(obj)
    assert not tampered.verify_signature()
    with pytest.raises(TxError) as e:
        tampered.check_signature()
    assert e.value.code == "bad-signature"


def test_flipped_signature_bit() -> None:
    tx = make()
    sig = bytearray(tx.sig_bytes)
    sig[10] ^= 1
    assert not tx_from_json_obj(dict(tx.obj, sig=sig.hex())).verify_signature()


def test_wrong_chain() -> None:
    tx = make()
    with pytest.raises(TxError) as e:
        decode_tx(tx.wire, chain_id="hygeia-mainnet")
    assert e.value.code == "wrong-chain" and e.value.field == "chain_id"
    assert "'hygeia-example' is not this chain ('hygeia-mainnet')" in str(e.value)
    assert decode_tx(tx.wire, chain_id=None) == tx


def _with(**changes: Any) -> bytes:
    obj = dict(make().obj)
    for k, v in changes.items():
        if v is _DROP:
            del obj[k]
        else:
            obj[k] = v
    return json.dumps(obj).encode()


_DROP = object()


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"signer": "AB" * 32}, "bad-field", "signer"),
        ({"signer": "ab" * 31}, "bad-field", "signer"),
        ({"signer": "zz" * 32}, "bad-field", "signer"),
        ({"signer": 5}, "bad-field", "signer"),
        ({"sig": "ab" * 63 + "a"}, "bad-field", "sig"),
        ({"sig": "AB" * 64}, "bad-field", "sig"),
        ({"sig": "0x" + "ab" * 63}, "bad-field", "sig"),
        ({"nonce": -1}, "bad-field", "nonce"),
        ({"nonce": 1.5}, "malformed", "nonce"),
        ({"nonce": MAX_NONCE + 1}, "malformed", "nonce"),
        ({"nonce": True}, "bad-field", "nonce"),
        ({"nonce": "1"}, "bad-field", "nonce"),
        ({"type": "anchor"}, "bad-field", "type"),
        ({"type": "Data.anchor"}, "bad-field", "type"),
        ({"type": "data.anchor\n"}, "bad-field", "type"),
        ({"type": "data..anchor"}, "bad-field", "type"),
        ({"type": "data.x" + "y" * 60}, "bad-field", "type"),
        ({"body": [1]}, "bad-field", "body"),
        ({"chain_id": ""}, "bad-field", "chain_id"),
        ({"chain_id": None}, "bad-field", "chain_id"),
        ({"nonce": _DROP}, "missing-field", "nonce"),
        ({"sig": _DROP}, "missing-field", "sig"),
        ({"memo": "hi"}, "unknown-field", "memo"),
    ],
)
def test_malformed_fields(changes: dict[str, Any], code: str, field: str) -> None:
    with pytest.raises(TxError) as e:
        decode_tx(_with(**changes), chain_id=CHAIN)
    assert (e.value.code, e.value.field) == (code, field), str(e.value)
    assert f"tx.{field}" in str(e.value)


def test_malformed_json_and_floats() -> None:
    with pytest.raises(TxError) as e:
        decode_tx(b"{not json", chain_id=CHAIN)
    assert e.value.code == "malformed"
    with pytest.raises(TxError) as e:
        decode_tx(_with(nonce=1.0), chain_id=CHAIN)
    assert e.value.code == "malformed" and "nonce: floats are not allowed" in str(e.value)
    raw = _with(body={"items": [{"price": 1}, {"price": 2.5}]})
    with pytest.raises(TxError, match=r"body\.items\[1\]\.price: floats are not allowed"):
        decode_tx(raw, chain_id=CHAIN)
    dup = make().wire.replace(b'"nonce":1', b'"nonce":1,"nonce":2')
    with pytest.raises(TxError, match='duplicate key "nonce"'):
        decode_tx(dup, chain_id=CHAIN)
    with pytest.raises(TxError) as e:
        decode_tx(b"[1, 2]", chain_id=CHAIN)
    assert e.value.code == "malformed"


def test_too_large() -> None:
    with pytest.raises(TxError) as e:
        decode_tx(make().wire, chain_id=CHAIN, max_bytes=100)
    assert e.value.code == "too-large"
    with pytest.raises(TxError) as e:
        make(body={"blob": "x" * 70_000})
    assert e.value.code == "too-large"


def test_body_depth_limit() -> None:
    def nested(depth: int) -> dict[str, Any]:  # ``body`` itself is level 1
        body: dict[str, Any] = {"x": 1}
        for _ in range(depth - 1):
            body = {"x": body}
        return body

    ok = make(body=nested(32))
    assert decode_tx(ok.wire, chain_id=CHAIN) == ok
    with pytest.raises(TxError, match="nesting deeper than 33 levels"):
        make(body=nested(33))
    raw = ok.wire.replace(b'"body":{', b'"body":{"x":{').replace(b',"chain_id"', b'},"chain_id"')
    with pytest.raises(TxError) as e:
        decode_tx(raw, chain_id=CHAIN)
    assert e.value.code == "malformed" and e.value.field == "body"


def test_static_protocols() -> None:
    """mypy checks that the node's implementations fit the consensus interfaces."""
    signer: Signer = KeySigner(KEY)
    verifier: Verifier = ValidatorVerifier([bytes(KEY.verify_key)])
    rules: PayloadRules = TxPayloadRules(CHAIN)
    assert verifier.verify(0, b"x", signer.sign(b"x"))
    assert rules.payload_valid(())


def test_build_rejects_bad_body_with_path() -> None:
    with pytest.raises(TxError, match=r"tx\.body\.amount: floats are not allowed"):
        make(body={"amount": 1.5})
    with pytest.raises(TxError) as e:
        make(nonce=-5)
    assert e.value.field == "nonce"
    with pytest.raises(TxError) as e:
        make(type="bad")
    assert e.value.field == "type"


def test_tx_from_json_obj_copies_input() -> None:
    obj = json.loads(make().wire)
    tx = tx_from_json_obj(obj)
    obj["body"]["kind"] = "changed"
    assert tx.body["kind"] == "lab-report"
    with pytest.raises(TxError, match=r"tx\.body\.x: floats"):
        tx_from_json_obj(dict(obj, body={"x": 0.1}))


_bodies = st.dictionaries(
    st.text(max_size=6),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.text(st.characters(exclude_categories=["Cs"]), max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=12,
    ),
    max_size=5,
)
_types = st.from_regex(r"[a-z]{1,8}(\.[a-z_]{1,8}){1,3}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(_bodies, _types, st.integers(0, MAX_NONCE), st.text(min_size=1, max_size=20))
def test_wire_splice_equals_full_encoding(body: Any, type_: str, nonce: int, chain: str) -> None:
    tx = build_tx(chain, type_, body, KEY, nonce)
    assert tx.wire == canonical_json(tx.obj)
    back = decode_tx(tx.wire, chain_id=chain)
    assert back.wire == tx.wire and back.hash == tx.hash and back.verify_signature()


# ------------------------------------------------------------------ payload rules


def test_payload_rules() -> None:
    rules = TxPayloadRules(CHAIN)
    txs = [make(n) for n in range(5)]
    payload = tuple(t.wire for t in txs)
    assert rules.request_id(txs[0].wire) == txs[0].hash_bytes
    assert rules.payload_root(payload) == merkle_root([t.hash_bytes for t in txs])
    assert rules.payload_root(()) == merkle_root([])
    assert rules.payload_valid(payload)
    assert rules.payload_valid(())


def test_payload_invalid_items() -> None:
    rules = TxPayloadRules(CHAIN)
    good = make(1)
    bad_sig = tx_from_json_obj(dict(good.obj, sig="11" * 64))
    other_chain = make(2, chain_id="hygeia-other")
    pretty = json.dumps(good.obj, indent=1).encode()
    assert not rules.payload_valid((good.wire, bad_sig.wire))
    assert not rules.payload_valid((other_chain.wire,))
    assert not rules.payload_valid((pretty,))
    assert not rules.payload_valid((good.wire, good.wire))
    assert not rules.payload_valid((b"tx:garbage",))
    assert rules.request_id(b"tx:garbage") == hashlib.sha256(b"tx:garbage").digest()
    # a different signature of the same signing bytes is the same transaction
    resigned = tx_from_json_obj(dict(good.obj, sig="22" * 64))
    assert not rules.payload_valid((good.wire, resigned.wire))


def test_payload_rules_reuse_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = verify_batch

    def counting(items: Any, **kw: Any) -> list[bool]:
        calls.append(len(items))
        return real(items, **kw)

    monkeypatch.setattr(txmod, "verify_batch", counting)
    cache = TxCache(max_entries=100)
    rules = TxPayloadRules(CHAIN, cache=cache)
    a, b, c = make(1), make(2), make(3)
    rules.remember_verified(a)  # the mempool verified it already
    assert rules.payload_valid((a.wire, b.wire, c.wire))
    assert calls == [2]
    assert rules.payload_valid((a.wire, b.wire, c.wire))
    assert calls == [2]  # all cached as verified now


def test_tx_cache_is_bounded_lru() -> None:
    cache = TxCache(max_entries=2)
    a, b, c = make(1), make(2), make(3)
    cache.add(a, verified=True)
    cache.add(b, verified=False)
    assert cache.get(a.wire) is not None  # a is now most recent
    cache.add(c, verified=False)
    assert len(cache) == 2
    assert cache.get(b.wire) is None
    cache.add(a, verified=False)
    entry = cache.get(a.wire)
    assert entry is not None and entry[1] is True  # never downgraded


def test_tx_cache_is_bounded_by_estimated_bytes() -> None:
    """Large transactions evict older entries once the byte estimate is over the
    bound, whatever the entry count; the estimate goes back down on eviction."""
    a, b, c = make(1), make(2), make(3)
    cost = TxCache.entry_cost(a.wire)
    cache = TxCache(max_entries=1000, max_bytes=2 * cost + cost // 2)
    cache.add(a, verified=True)
    cache.add(b, verified=True)
    assert len(cache) == 2 and cache.cost_bytes == 2 * cost
    cache.add(c, verified=True)
    assert len(cache) == 2
    assert cache.get(a.wire) is None  # the oldest went
    assert cache.cost_bytes == TxCache.entry_cost(b.wire) + TxCache.entry_cost(c.wire)
    cache.add(c, verified=False)  # re-adding an entry does not count it twice
    assert cache.cost_bytes == TxCache.entry_cost(b.wire) + TxCache.entry_cost(c.wire)


# ------------------------------------------------------------------ keys


def test_sign_verify_helpers() -> None:
    sig = sign(KEY, b"hello")
    pub = bytes(KEY.verify_key)
    assert verify(pub, b"hello", sig)
    assert not verify(pub, b"hellO", sig)
    assert not verify(pub[:31], b"hello", sig)
    assert not verify(pub, b"hello", sig[:63])
    assert not verify(b"\x00" * 32, b"hello", sig)


def test_validator_verifier_and_signer() -> None:
    keys = [key_from_seed(bytes([i]) * 32) for i in range(4)]
    v = ValidatorVerifier([bytes(k.verify_key) for k in keys])
    s = KeySigner(keys[2])
    sig = s.sign(b"vote")
    assert s.public_key == bytes(keys[2].verify_key)
    assert v.verify(2, b"vote", sig)
    assert not v.verify(1, b"vote", sig)
    assert not v.verify(4, b"vote", sig)
    assert not v.verify(-1, b"vote", sig)
    assert not v.verify(2, b"vote", b"short")
    with pytest.raises(ValueError, match="validator 1"):
        ValidatorVerifier([bytes(32), b"x"])


def test_verify_batch_order_and_threads() -> None:
    keys = [generate_key() for _ in range(3)]
    items = []
    expect = []
    for i in range(200):
        k = keys[i % 3]
        msg = b"m%d" % i
        sig = sign(k, msg)
        if i % 7 == 0:
            msg += b"!"
        items.append((bytes(k.verify_key), msg, sig))
        expect.append(i % 7 != 0)
    assert verify_batch(items, workers=1) == expect
    with ThreadPoolExecutor(4) as pool:
        assert verify_batch(items, executor=pool, workers=4, min_parallel=1) == expect
    assert verify_batch(items, workers=3, min_parallel=1) == expect
    assert verify_batch([]) == []


def test_key_file_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "home" / "node_key.json"
    key = generate_key()
    save_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["type"] == "ed25519" and doc["public_key_hex"] == public_key_hex(key)
    assert bytes(load_key(path)) == bytes(key)
    assert [p.name for p in path.parent.iterdir()] == ["node_key.json"]


def test_key_file_never_overwritten_without_force(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    first, second = generate_key(), generate_key()
    save_key(path, first)
    with pytest.raises(KeyFileError, match="already exists"):
        save_key(path, second)
    assert bytes(load_key(path)) == bytes(first)
    save_key(path, second, force=True)
    assert bytes(load_key(path)) == bytes(second)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.json"]


def test_key_file_mode_ignores_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        save_key(tmp_path / "k.json", generate_key())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k.json").stat().st_mode) == 0o600


def test_load_key_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"no key file at .*hygeia init"):
        load_key(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    for content, message in [
        ("{nope", "malformed"),
        ("[1]", "expected a JSON object"),
        ('{"type": "rsa", "seed_hex": "00"}', "unsupported key type 'rsa'"),
        ('{"type": "ed25519", "seed_hex": "abc"}', "seed_hex must be 64 hex"),
        (
            json.dumps({"type": "ed25519", "seed_hex": "11" * 32, "public_key_hex": "00" * 32}),
            "does not match the seed",
        ),
    ]:
        bad.write_text(content)
        bad.chmod(0o600)
        with pytest.raises(KeyFileError, match=message):
            load_key(bad)
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(KeyFileError, match="not text"):
        load_key(bad)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_key(tmp_path)


def test_load_raw_hex_seed_and_loose_mode_refused(tmp_path: Path) -> None:
    path = tmp_path / "seed.hex"
    path.write_text(bytes(range(1, 33)).hex() + "\n")
    path.chmod(0o600)
    assert public_key_hex(load_key(path)) == public_key_hex(KEY)
    for loose in (0o644, 0o640, 0o606):
        path.chmod(loose)
        with pytest.raises(KeyFileError, match=f"mode {loose:04o}.*chmod 600"):
            load_key(path)
    path.chmod(0o400)
    assert public_key_hex(load_key(path)) == public_key_hex(KEY)


if __name__ == "__main__":
    print(render_example())
