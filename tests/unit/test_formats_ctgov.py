"""A trial in the ClinicalTrials.gov API v2 layout (node/ops/formats/ctgov.py), from real
ledger answers: ids, status, dates, enrolment, outcomes (texts checked against their
commitments), sites, documents; the layout checked against the required fields and
types of docs/formats.md (STUDY below, a JSON Schema subset checked by ``conforms``:
jsonschema is not installed); and ``hygeia client trials show --format ctgov``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from node.ops.formats import FormatError
from node.ops.formats.ctgov import outcome_commitment, trial_to_ctgov
from tests.unit.test_cli_client import API, FakeNode, run
from tests.unit.test_ledger_trials import (
    NCT,
    Chain,
    enrolled,
    h,
    locked,
    register_body,
    registered,
    results_body,
)

DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
DATE_STRUCT = {
    "type": "object",
    "required": ["date", "type"],
    "properties": {"date": DATE, "type": {"enum": ["ACTUAL", "ESTIMATED"]}},
}
OUTCOME = {
    "type": "object",
    "required": ["measure"],
    "properties": {t: {"type": "string"} for t in ("measure", "description", "timeFrame")},
}
STRING = {"type": "string"}
# the exported layout's required fields and types (docs/formats.md, "ClinicalTrials.gov")
STUDY: dict[str, Any] = {
    "type": "object",
    "required": ["protocolSection", "documentSection"],
    "properties": {
        "protocolSection": {
            "type": "object",
            "required": [
                "identificationModule",
                "statusModule",
                "sponsorCollaboratorsModule",
                "designModule",
                "outcomesModule",
            ],
            "properties": {
                "identificationModule": {
                    "type": "object",
                    "required": ["briefTitle"],
                    "properties": {
                        "nctId": {"type": "string", "pattern": r"^NCT\d{8}$"},
                        "briefTitle": STRING,
                        "orgStudyIdInfo": {"type": "object", "required": ["id"]},
                        "secondaryIdInfos": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["id", "type"],
                                "properties": {
                                    "id": STRING,
                                    "type": {"enum": ["EUDRACT_NUMBER", "CTIS", "REGISTRY"]},
                                    "domain": STRING,
                                },
                            },
                        },
                    },
                },
                "statusModule": {
                    "type": "object",
                    "required": ["overallStatus"],
                    "properties": {
                        "overallStatus": {
                            "enum": [
                                "NOT_YET_RECRUITING",
                                "RECRUITING",
                                "ACTIVE_NOT_RECRUITING",
                                "COMPLETED",
                            ]
                        },
                        "statusVerifiedDate": {"type": "string", "pattern": r"^\d{4}-\d{2}$"},
                        "startDateStruct": DATE_STRUCT,
                        "primaryCompletionDateStruct": DATE_STRUCT,
                        "studyFirstSubmitDate": DATE,
                        "lastUpdateSubmitDate": DATE,
                    },
                },
                "sponsorCollaboratorsModule": {
                    "type": "object",
                    "required": ["leadSponsor"],
                    "properties": {
                        "leadSponsor": {
                            "type": "object",
                            "required": ["name", "class"],
                            "properties": {
                                "name": STRING,
                                "class": {
                                    "enum": [
                                        "NIH",
                                        "FED",
                                        "OTHER_GOV",
                                        "INDIV",
                                        "INDUSTRY",
                                        "NETWORK",
                                        "AMBIG",
                                        "OTHER",
                                        "UNKNOWN",
                                    ]
                                },
                            },
                        }
                    },
                },
                "designModule": {
                    "type": "object",
                    "required": ["studyType"],
                    "properties": {
                        "studyType": {
                            "enum": ["INTERVENTIONAL", "OBSERVATIONAL", "EXPANDED_ACCESS"]
                        },
                        "enrollmentInfo": {
                            "type": "object",
                            "required": ["count", "type"],
                            "properties": {
                                "count": {"type": "integer"},
                                "type": {"enum": ["ACTUAL", "ESTIMATED"]},
                            },
                        },
                    },
                },
                "outcomesModule": {
                    "type": "object",
                    "required": ["primaryOutcomes"],
                    "properties": {
                        "primaryOutcomes": {"type": "array", "items": OUTCOME},
                        "secondaryOutcomes": {"type": "array", "items": OUTCOME},
                    },
                },
                "contactsLocationsModule": {
                    "type": "object",
                    "required": ["locations"],
                    "properties": {
                        "locations": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["facility"],
                                "properties": {"facility": STRING},
                            },
                        }
                    },
                },
            },
        },
        "documentSection": {
            "type": "object",
            "required": ["largeDocumentModule"],
            "properties": {
                "largeDocumentModule": {
                    "type": "object",
                    "required": ["largeDocs"],
                    "properties": {
                        "largeDocs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["typeAbbrev", "hasProtocol", "hasSap", "hasIcf"],
                                "properties": {
                                    "typeAbbrev": {"enum": ["Prot", "SAP"]},
                                    "hasProtocol": {"type": "boolean"},
                                    "hasSap": {"type": "boolean"},
                                    "hasIcf": {"type": "boolean"},
                                    "label": STRING,
                                    "date": DATE,
                                },
                            },
                        }
                    },
                }
            },
        },
    },
}
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def conforms(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """The violations of a JSON Schema subset (type, required, properties with no others,
    items, enum, pattern), each with its path."""
    kind = schema.get("type")
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{path}: not an integer"]
    elif kind is not None and not isinstance(value, _TYPES[kind]):
        return [f"{path}: not a {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} not in {schema['enum']}"]
    if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
        return [f"{path}: {value!r} does not match {schema['pattern']}"]
    out = [f"{path}.{k}: required" for k in schema.get("required", []) if k not in value]
    if kind == "object" and "properties" in schema:
        out += [f"{path}.{k}: not in the layout" for k in value if k not in schema["properties"]]
        for k, sub in schema["properties"].items():
            if k in value:
                out += conforms(value[k], sub, f"{path}.{k}")
    if kind == "array":
        for i, item in enumerate(value):
            out += conforms(item, schema.get("items", {}), f"{path}[{i}]")
    return out


def show(c: Chain, trial_id: str = NCT) -> dict[str, Any]:
    found: dict[str, Any] = c.query("/trials/{trial_id}", {"trial_id": trial_id})
    return found


def module(study: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = study["protocolSection"][name]
    return found


def test_the_layout_check_finds_what_is_missing_or_mistyped() -> None:
    """``conforms`` itself reports a missing field, a wrong type, an unknown key and an
    off-enum value (so an empty answer below means something)."""
    study = trial_to_ctgov(show(registered()))
    assert conforms(study, STUDY) == []
    bad = json.loads(json.dumps(study))
    del bad["protocolSection"]["statusModule"]["overallStatus"]
    bad["protocolSection"]["designModule"]["studyType"] = "CLINICAL"
    bad["protocolSection"]["identificationModule"]["nct"] = NCT
    bad["documentSection"]["largeDocumentModule"]["largeDocs"][0]["hasSap"] = "no"
    assert len(conforms(bad, STUDY)) == 4


@pytest.mark.parametrize(
    "chain, status",
    [
        (registered, "NOT_YET_RECRUITING"),
        (enrolled, "RECRUITING"),
        (locked, "ACTIVE_NOT_RECRUITING"),
    ],
)
def test_status_dates_and_enrolment_follow_the_trial(chain: Any, status: str) -> None:
    study = trial_to_ctgov(show(chain()))
    assert conforms(study, STUDY) == []
    st = module(study, "statusModule")
    assert st["overallStatus"] == status
    assert st["studyFirstSubmitDate"] == "1970-01-01"  # block time of the test chain
    assert ("startDateStruct" in st) == (status != "NOT_YET_RECRUITING")
    assert ("primaryCompletionDateStruct" in st) == (status == "ACTIVE_NOT_RECRUITING")
    design = module(study, "designModule")
    assert design["studyType"] == "INTERVENTIONAL"
    if status == "ACTIVE_NOT_RECRUITING":
        assert design["enrollmentInfo"] == {"count": 1, "type": "ACTUAL"}
    else:
        assert "enrollmentInfo" not in design  # no count known to be final before the lock


def test_completed_after_results() -> None:
    c = locked()
    c.ok("sponsor-1", "trial.results", results_body())
    study = trial_to_ctgov(show(c))
    assert module(study, "statusModule")["overallStatus"] == "COMPLETED"
    assert conforms(study, STUDY) == []


def test_identification_nct_or_secondary_ids() -> None:
    ident = module(trial_to_ctgov(show(registered())), "identificationModule")
    assert ident == {"nctId": NCT, "briefTitle": "Drug X versus placebo in condition Y"}
    for trial_id, kind in (
        ("2022-500014-26-00", "CTIS"),
        ("2004-000123-12", "EUDRACT_NUMBER"),
        ("ISRCTN12345678", "REGISTRY"),
    ):
        c = Chain()
        c.ok("sponsor-1", "trial.register", register_body(trial_id))
        study = trial_to_ctgov(show(c, trial_id))
        assert conforms(study, STUDY) == []
        ident = module(study, "identificationModule")
        assert "nctId" not in ident and ident["orgStudyIdInfo"] == {"id": trial_id}
        assert ident["secondaryIdInfos"][0]["id"] == trial_id
        assert ident["secondaryIdInfos"][0]["type"] == kind


def test_sponsor_sites_and_documents() -> None:
    study = trial_to_ctgov(show(registered()))
    assert module(study, "sponsorCollaboratorsModule") == {
        "leadSponsor": {"name": "sponsor-1", "class": "UNKNOWN"}
    }
    facilities = [x["facility"] for x in module(study, "contactsLocationsModule")["locations"]]
    assert facilities == ["clinic-2", "hospital-1"]
    docs = study["documentSection"]["largeDocumentModule"]["largeDocs"]
    assert [d["typeAbbrev"] for d in docs] == ["Prot", "SAP"]
    assert h("protocol-v1") in docs[0]["label"] and h("sap-v1") in docs[1]["label"]
    c = Chain()
    c.ok("sponsor-1", "trial.register", register_body(sites=[], secondary_outcomes=[]))
    bare = trial_to_ctgov(show(c))
    assert "contactsLocationsModule" not in bare["protocolSection"]
    assert "secondaryOutcomes" not in module(bare, "outcomesModule")


# ----------------------------------------------------------------- outcome texts
TEXT = {
    "measure": "HbA1c change",
    "description": "from baseline",
    "timeFrame": "26 weeks",
    "salt": "07" * 32,
}


def with_text() -> Chain:
    c = Chain()
    primary = [{"id": "P1", "commitment": outcome_commitment(TEXT)}]
    c.ok("sponsor-1", "trial.register", register_body(primary_outcomes=primary))
    return c


def test_without_texts_outcomes_name_their_commitments() -> None:
    outcomes = module(trial_to_ctgov(show(registered())), "outcomesModule")
    p1 = outcomes["primaryOutcomes"][0]
    assert (
        p1["measure"] == "P1"
        and show(registered())["primary_outcomes"][0]["commitment"] in (p1["description"])
    )
    assert [o["measure"] for o in outcomes["secondaryOutcomes"]] == ["S1", "S2"]


def test_a_text_matching_its_commitment_is_exported() -> None:
    study = trial_to_ctgov(show(with_text()), {"P1": TEXT})
    assert module(study, "outcomesModule")["primaryOutcomes"] == [
        {"measure": "HbA1c change", "description": "from baseline", "timeFrame": "26 weeks"}
    ]
    assert "07" * 32 not in json.dumps(study)  # the salt is not exported
    assert conforms(study, STUDY) == []


def test_a_text_not_matching_its_commitment_or_naming_no_outcome_is_refused() -> None:
    with pytest.raises(FormatError, match="do not match"):
        trial_to_ctgov(show(with_text()), {"P1": {**TEXT, "timeFrame": "52 weeks"}})
    with pytest.raises(FormatError, match="P9"):
        trial_to_ctgov(show(with_text()), {"P9": TEXT})
    with pytest.raises(FormatError, match="salt"):
        trial_to_ctgov(show(with_text()), {"P1": {**TEXT, "salt": "xyz"}})
    with pytest.raises(FormatError, match="JSON object"):
        trial_to_ctgov(show(with_text()), {"P1": "HbA1c change"})  # type: ignore[dict-item]


# ----------------------------------------------------------------- the command
def test_show_format_ctgov(node: FakeNode, tmp_path: Path) -> None:
    trial = show(with_text())
    node.routes[f"/v1/trials/{NCT}"] = trial
    plain = run("trials", "show", "--api", API, "--trial-id", NCT)
    assert plain.exit_code == 0 and json.loads(plain.output) == trial
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps({"P1": TEXT}))
    args = ["trials", "show", "--api", API, "--trial-id", NCT, "--format", "ctgov"]
    out = run(*args, "--outcome-texts", str(texts))
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == trial_to_ctgov(trial, {"P1": TEXT})
    texts.write_text(json.dumps({"P1": {**TEXT, "measure": "weight"}}))
    bad = run(*args, "--outcome-texts", str(texts))
    assert bad.exit_code != 0 and "do not match" in bad.output
    alone = run("trials", "show", "--api", API, "--trial-id", NCT, "--outcome-texts", str(texts))
    assert alone.exit_code != 0 and "--format ctgov" in alone.output
