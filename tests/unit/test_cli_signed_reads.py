"""``hygeia client`` reads of a patient's data are signed (docs/privacy.md): ``ehr
patient|consents|disclosures`` with ``--key`` or else ``--patient-key``, ``claims
coverage`` and ``trials participant`` with ``--key``; through ``common.get``, against a
recording fake and against a real client API (the node verifies what the CLI signed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from node.api.client import client_app
from node.api.remote import ClientError
from node.core.keys import SigningKey, key_from_seed, public_key_hex, save_key
from tests.unit.test_api_patient_reads import KEYS, NCT, PARTICIPANT, ChainNode
from tests.unit.test_api_patient_reads import PATIENT_KEY as CHAIN_PATIENT
from tests.unit.test_api_patient_reads import node as chain_node  # noqa: F401 (a fixture)
from tests.unit.test_cli_client import API, FakeNode, run

PATIENT_KEY = key_from_seed(b"\x61" * 32)
P = public_key_hex(PATIENT_KEY)
MEMBER_KEY = key_from_seed(b"\x62" * 32)


class SignedFake:
    """Stands for ``node.api.remote.signed_request``: records (url, signer) and answers."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def __call__(
        self, method: str, url: str, body: bytes | None, key: SigningKey, **_: Any
    ) -> tuple[int, Any]:
        assert method == "GET" and body is None and url.startswith(API)
        self.asked.append((url[len(API) :], public_key_hex(key)))
        return 200, {"consents": [], "disclosures": []}


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeNode, SignedFake]:
    plain, signed = FakeNode(), SignedFake()
    monkeypatch.setattr("node.cli.clients.common.request_json", plain)
    monkeypatch.setattr("node.cli.clients.common.signed_request", signed)
    return plain, signed


def _key_file(tmp_path: Path, name: str, key: SigningKey) -> str:
    path = tmp_path / name
    save_key(path, key)
    return str(path)


def test_ehr_reads_sign_with_the_patient_key_file(
    fakes: tuple[FakeNode, SignedFake], tmp_path: Path
) -> None:
    plain, signed = fakes
    patient_file = _key_file(tmp_path, "patient.json", PATIENT_KEY)
    for command in ("patient", "consents", "disclosures"):
        result = run("ehr", command, "--api", API, "--patient-key", patient_file)
        assert result.exit_code == 0, result.output
    assert [signer for _, signer in signed.asked] == [P, P, P]
    assert [url.split("?")[0] for url, _ in signed.asked] == [
        f"/v1/ehr/patients/{P}",
        f"/v1/ehr/patients/{P}/consents",
        f"/v1/ehr/patients/{P}/disclosures",
    ]
    assert plain.gets == []


def test_ehr_reads_sign_with_a_members_key_when_given(
    fakes: tuple[FakeNode, SignedFake], tmp_path: Path
) -> None:
    _, signed = fakes
    member_file = _key_file(tmp_path, "member.json", MEMBER_KEY)
    result = run("ehr", "disclosures", "--api", API, "--patient", P, "--key", member_file)
    assert result.exit_code == 0, result.output
    assert signed.asked == [
        (f"/v1/ehr/patients/{P}/disclosures?limit=100&from_height=0", public_key_hex(MEMBER_KEY))
    ]


def test_an_unsigned_read_says_to_give_a_key(
    fakes: tuple[FakeNode, SignedFake], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a key file the request goes unsigned; the node's 401 names --key."""
    plain, signed = fakes

    def refuse(method: str, url: str, body: bytes | None = None, **_: Any) -> Any:
        plain.gets.append(url)
        raise ClientError(f"{url}: 401 signature-required: sign it", 401, "signature-required")

    monkeypatch.setattr("node.cli.clients.common.request_json", refuse)
    result = run("ehr", "consents", "--api", API, "--patient", P)
    assert result.exit_code == 1 and "--key FILE" in result.output
    assert signed.asked == [] and len(plain.gets) == 1


def test_coverage_and_participant_reads_are_signed(
    fakes: tuple[FakeNode, SignedFake], tmp_path: Path
) -> None:
    _, signed = fakes
    member_file = _key_file(tmp_path, "member.json", MEMBER_KEY)
    r = run("claims", "coverage", "--api", API, "--insurer", "ins-c", "--patient", P,
            "--key", member_file)  # fmt: skip
    assert r.exit_code == 0, r.output
    r = run("trials", "participant", "--api", API, "--trial-id", NCT, "--participant", P,
            "--key", member_file)  # fmt: skip
    assert r.exit_code == 0, r.output
    member = public_key_hex(MEMBER_KEY)
    assert signed.asked == [
        (f"/v1/coverage/ins-c/{P}", member),
        (f"/v1/trials/{NCT}/participants/{P}", member),
    ]
    r = run("claims", "coverage", "--api", API, "--insurer", "ins-c", "--patient", P)
    assert r.exit_code == 2 and "--key" in r.output  # a signed read: --key is required


async def test_the_cli_signature_verifies_at_a_real_node(
    chain_node: ChainNode,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The CLI signs the request target it sends (query string included), at this
    machine's clock: the node (its default wall clock) accepts it, and refuses the
    wrong member."""
    server = TestServer(client_app(chain_node))  # type: ignore[arg-type]
    await server.start_server()
    try:
        api = str(server.make_url("")).rstrip("/")
        patient = _key_file(tmp_path, "p.json", CHAIN_PATIENT)
        sponsor = _key_file(tmp_path, "s.json", KEYS["spon-g"])
        outsider = _key_file(tmp_path, "o.json", KEYS["outsider"])
        ok = await asyncio.to_thread(
            run, "ehr", "disclosures", "--api", api, "--patient-key", patient, "--limit", "7"
        )
        assert ok.exit_code == 0, ok.output
        ok = await asyncio.to_thread(
            run, "trials", "participant", "--api", api, "--trial-id", NCT,
            "--participant", PARTICIPANT, "--key", sponsor,
        )  # fmt: skip
        assert ok.exit_code == 0, ok.output
        refused = await asyncio.to_thread(
            run, "trials", "participant", "--api", api, "--trial-id", NCT,
            "--participant", PARTICIPANT, "--key", outsider,
        )  # fmt: skip
        assert refused.exit_code == 1 and "403 not-entitled" in refused.output
    finally:
        await server.close()
