"""Pairwise patient keys (node/core/pairwise.py) and ``hygeia keys master|derive|link|
verify-link``: HKDF against RFC 5869's vectors, one key per context, link statements
that verify offline and refuse any change."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from node.cli.main import main
from node.core import pairwise
from node.core.keys import key_from_seed, load_key, public_key_hex

MASTER = bytes(range(32))


def test_hkdf_sha256_matches_rfc_5869() -> None:
    """Test cases 1 (salt and info) and 3 (no salt, no info) of RFC 5869, appendix A."""
    ikm = b"\x0b" * 22
    okm = pairwise.hkdf_sha256(ikm, bytes(range(13)), bytes(range(0xF0, 0xFA)), 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )
    assert pairwise.hkdf_sha256(ikm, b"", b"", 42).hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )
    with pytest.raises(ValueError):
        pairwise.hkdf_sha256(ikm, b"", b"", 255 * 32 + 1)


def test_a_context_gives_one_key_and_contexts_differ() -> None:
    a = pairwise.derive_key(MASTER, "custodian:hospital-0")
    assert public_key_hex(a) == public_key_hex(pairwise.derive_key(MASTER, "custodian:hospital-0"))
    seed = pairwise.hkdf_sha256(MASTER, b"", b"hygeia/pairwise/v1custodian:hospital-0", 32)
    assert bytes(a) == seed  # the documented derivation, nothing else
    others = {
        public_key_hex(pairwise.derive_key(MASTER, "custodian:hospital-1")),
        public_key_hex(pairwise.derive_key(MASTER, "insurer:hospital-0")),
        public_key_hex(pairwise.derive_key(bytes(32), "custodian:hospital-0")),
    }
    assert public_key_hex(a) not in others and len(others) == 3


@pytest.mark.parametrize("context", ["", "hospital-0", "Custodian:h", "custodian:", "a:b c"])
def test_a_bad_context_or_master_is_refused(context: str) -> None:
    with pytest.raises(pairwise.PairwiseError, match="context"):
        pairwise.derive_key(MASTER, context)
    with pytest.raises(pairwise.PairwiseError, match="32 bytes"):
        pairwise.derive_key(MASTER[:31], "custodian:h")


def test_a_link_verifies_and_any_change_breaks_it() -> None:
    a = pairwise.derive_key(MASTER, "custodian:hospital-0")
    b = pairwise.derive_key(MASTER, "insurer:acme")
    link = pairwise.make_link(a, b, "claims:acme", b"\x07" * 32)
    statement = pairwise.verify_link(link)
    assert statement == {
        "purpose": "claims:acme",
        "key_a": public_key_hex(a),
        "key_b": public_key_hex(b),
        "nonce": "07" * 32,
    }
    stranger = public_key_hex(key_from_seed(b"\x09" * 32))
    for field, value in [("purpose", "claims:other"), ("key_b", stranger), ("nonce", "08" * 32)]:
        changed = {**link, "statement": {**link["statement"], field: value}}
        with pytest.raises(pairwise.PairwiseError, match="signature"):
            pairwise.verify_link(changed)
    swapped = {**link, "sig_a": link["sig_b"], "sig_b": link["sig_a"]}
    with pytest.raises(pairwise.PairwiseError, match="sig_a"):
        pairwise.verify_link(swapped)
    bads: list[object] = [None, [], {**link, "extra": 1}, {**link, "statement": {"purpose": "x"}}]
    for bad in bads:
        with pytest.raises(pairwise.PairwiseError):
            pairwise.verify_link(bad)
    with pytest.raises(pairwise.PairwiseError, match="different keys"):
        pairwise.make_link(a, a, "claims:acme")
    with pytest.raises(pairwise.PairwiseError, match="purpose"):
        pairwise.make_link(a, b, "claims acme")


def test_master_files_are_0600_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "master.json"
    pairwise.save_master(path, MASTER)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert pairwise.load_master(path) == MASTER
    with pytest.raises(pairwise.PairwiseError, match="exists"):
        pairwise.save_master(path, MASTER)
    os.chmod(path, 0o644)
    with pytest.raises(pairwise.PairwiseError, match="other users"):
        pairwise.load_master(path)
    os.chmod(path, 0o600)
    path.write_text('{"type": "ed25519", "seed_hex": "00"}')
    with pytest.raises(pairwise.PairwiseError, match="hygeia-pairwise-master"):
        pairwise.load_master(path)
    path.write_text("[1]")
    with pytest.raises(pairwise.PairwiseError, match="hygeia-pairwise-master"):
        pairwise.load_master(path)


def _hygeia(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_keys_cli_derive_link_and_verify(tmp_path: Path) -> None:
    master, a, b, link = (tmp_path / n for n in ("m.json", "a.json", "b.json", "l.json"))
    assert _hygeia("keys", "master", "--out", str(master)).exit_code == 0
    derived = []
    for out, context in ((a, "custodian:hospital-0"), (b, "insurer:acme")):
        r = _hygeia("keys", "derive", "--master", str(master), "--context", context,
                    "--out", str(out))  # fmt: skip
        assert r.exit_code == 0, r.output
        derived.append(r.stdout.strip())
        assert public_key_hex(load_key(out)) == derived[-1]
    again = _hygeia("keys", "derive", "--master", str(master), "--context", "insurer:acme",
                    "--out", str(tmp_path / "b2.json"))  # fmt: skip
    assert again.stdout.strip() == derived[1]  # the same context, the same key
    r = _hygeia("keys", "link", "--key-a", str(a), "--key-b", str(b), "--purpose", "claims:acme",
                "--nonce", "0a" * 32, "--out", str(link))  # fmt: skip
    assert r.exit_code == 0, r.output
    ok = _hygeia("keys", "verify-link", str(link), "--key", derived[0], "--key", derived[1],
                 "--purpose", "claims:acme", "--nonce", "0a" * 32)  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["valid"] is True
    for extra in (["--purpose", "claims:other"], ["--nonce", "0b" * 32], ["--key", "cd" * 32]):
        r = _hygeia("keys", "verify-link", str(link), *extra)
        assert r.exit_code == 1 and "Error" in r.output, extra
    doc = json.loads(link.read_text())
    doc["statement"]["key_b"] = "cd" * 32
    link.write_text(json.dumps(doc))
    r = _hygeia("keys", "verify-link", str(link))
    assert r.exit_code == 1 and "not a valid link" in r.output


def test_keys_cli_refuses_a_bad_context(tmp_path: Path) -> None:
    master = tmp_path / "m.json"
    assert _hygeia("keys", "master", "--out", str(master)).exit_code == 0
    r = _hygeia("keys", "derive", "--master", str(master), "--context", "hospital-0",
                "--out", str(tmp_path / "k.json"))  # fmt: skip
    assert r.exit_code == 1 and "<kind>:<id>" in r.output
    assert not (tmp_path / "k.json").exists()
