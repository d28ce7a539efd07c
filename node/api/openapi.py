"""The OpenAPI 3.1 document of the client and admin APIs, served at /openapi.json.

Every operation lists each status it can answer (the 4xx of its own checks;
``Error`` bodies with a code of ``node.api.errors.ERROR_CODES`` or of a ledger
domain, both kebab-case); ``POST /v1/txs`` links its answer's hash to the
transaction's status and proof. The admin paths are served by the admin
listener (its own port), the others by the client listener. A schemathesis
run against a live node (tests/integration/test_api_fuzz.py) holds the answers
to this document: no 500, no undocumented status, no body off its schema.
"""

from __future__ import annotations

from typing import Any

from node import __version__
from node.core.hexstr import hex_pattern
from node.ledger.domains import DOMAINS

HASH = {"type": "string", "pattern": hex_pattern(32)}
HEALTH = {
    "type": "object",
    "required": ["ok", "reasons"],
    "properties": {
        "ok": {"type": "boolean"},
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
}


# the signed-request headers (docs/document-exchange.md, "Signed requests")
_SIGNED: list[dict[str, Any]] = [
    {"name": "X-Hygeia-Signer", "in": "header", "required": True, "schema": {"type": "string"}},
    {"name": "X-Hygeia-Time", "in": "header", "required": True, "schema": {"type": "string"}},
    {
        "name": "X-Hygeia-Signature",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
    },
]


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error() -> dict[str, Any]:
    return {
        "description": "error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(schema: dict[str, Any], description: str = "ok") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _admin(
    summary: str,
    schema: dict[str, Any] | None = None,
    *,
    extra: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": ["admin"],
        "security": [{"bearer": []}],
        "responses": {"200": _ok(schema or {"type": "object"}), "401": _error(), **(extra or {})},
    }
    if parameters:
        op["parameters"] = parameters
    return {"get": op}


def _domain_paths() -> dict[str, Any]:
    """Every domain query; a patient-scoped one (``Query.scope``) takes the signed-request
    headers and may answer 401 (unsigned, bad, stale or replayed signature), 403 (the
    signer is not entitled) and 503 (the replay cache is full)."""
    paths: dict[str, Any] = {}
    for domain in DOMAINS:
        for q in domain.queries:
            names = [part[1:-1] for part in q.path.split("/") if part.startswith("{")]
            params = [_path_param(n, {"type": "string"}) for n in names]
            params += [{"name": p, "in": "query", "schema": {"type": "string"}} for p in q.params]
            responses = {"200": _ok({"type": "object"}), "400": _error(), "404": _error()}
            op: dict[str, Any] = {"summary": q.summary, "tags": [domain.name]}
            if q.scope is not None:
                params += _SIGNED
                responses.update({code: _error() for code in ("401", "403", "503")})
                op["description"] = (
                    f"A patient's data: a signed request (X-Hygeia-* headers) by the key "
                    f"{{{q.scope.param}}} itself or by {q.scope.who}, an active member "
                    "(docs/privacy.md)."
                )
            paths["/v1" + q.path] = {"get": {**op, "parameters": params, "responses": responses}}
    return paths


def openapi_document() -> dict[str, Any]:
    obj = {"type": "object"}
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "Hygeia node API",
            "version": __version__,
            "description": (
                "Client API (institutions' applications) and admin API (operators, "
                "on its own listener, bearer token). Transactions are signed JSON "
                "objects: see docs/transactions.md."
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                # ERROR_CODES or a ledger domain's code: kebab-case
                                "code": {"type": "string", "pattern": "^[a-z]+(-[a-z]+)*$"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
                "Transaction": {
                    "type": "object",
                    "required": ["chain_id", "type", "body", "signer", "nonce", "sig"],
                    "additionalProperties": False,
                    "properties": {
                        "chain_id": {"type": "string"},
                        "type": {"type": "string", "pattern": "^[a-z]+(\\.[a-z_]+)+$"},
                        "body": obj,
                        "signer": HASH,
                        "nonce": {"type": "integer", "minimum": 0},
                        "sig": {"type": "string", "pattern": hex_pattern(64)},
                    },
                },
                "Validator": {
                    "type": "object",
                    "required": ["name", "member", "node_key", "p2p"],
                    "properties": {
                        "name": {"type": "string"},
                        "member": {"type": "string"},
                        "node_key": HASH,
                        "p2p": {"type": "string"},
                    },
                },
                "Epoch": {
                    "type": "object",
                    "required": [
                        "epoch",
                        "from_height",
                        "validators",
                        "proposal",
                        "committed_height",
                    ],
                    "properties": {
                        "epoch": {"type": "integer", "minimum": 0},
                        "from_height": {"type": "integer", "minimum": 1},
                        "validators": {"type": "array", "items": _ref("Validator")},
                        "proposal": {"oneOf": [HASH, {"type": "null"}]},
                        "committed_height": {"type": "integer", "minimum": 0},
                    },
                },
                "ValidatorSet": {
                    "type": "object",
                    "required": ["epoch", "from_height", "validators", "pending"],
                    "properties": {
                        "epoch": {"type": "integer", "minimum": 0},
                        "from_height": {"type": "integer", "minimum": 1},
                        "validators": {"type": "array", "items": _ref("Validator")},
                        # the latest epoch while it is not in force for the next block
                        "pending": {"oneOf": [_ref("Epoch"), {"type": "null"}]},
                    },
                },
                "TxStatus": {
                    "type": "object",
                    "required": ["status", "height", "index", "result"],
                    "properties": {
                        "status": {
                            "enum": ["pending", "committed", "rejected", "unknown"],
                        },
                        "height": {"type": ["integer", "null"]},
                        "index": {"type": ["integer", "null"]},
                        "result": {"type": ["object", "null"]},
                    },
                },
            },
        },
        "paths": {
            "/v1/txs": {
                "post": {
                    "summary": "Submit a signed transaction",
                    "tags": ["client"],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Transaction"}
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            **_ok(
                                {
                                    "type": "object",
                                    "required": ["hash"],
                                    "properties": {"hash": HASH},
                                },
                                "admitted",
                            ),
                            "links": {
                                "status": {
                                    "operationId": "getTx",
                                    "parameters": {"hash": "$response.body#/hash"},
                                },
                                "proof": {
                                    "operationId": "getProof",
                                    "parameters": {"hash": "$response.body#/hash"},
                                },
                            },
                        },
                        "400": _error(),
                        "408": _error(),
                        "413": _error(),
                        "503": _error(),
                    },
                }
            },
            "/v1/txs/{hash}": {
                "get": {
                    "summary": "Status of a transaction; committed only once durably written",
                    "operationId": "getTx",
                    "tags": ["client"],
                    "parameters": [_path_param("hash", HASH)],
                    "responses": {
                        "200": _ok({"$ref": "#/components/schemas/TxStatus"}),
                        "400": _error(),
                    },
                }
            },
            "/v1/blocks/{height}": {
                "get": {
                    "summary": "A committed block with its certificate ('latest' for the tip)",
                    "tags": ["client"],
                    "parameters": [
                        # a height (at most 18 ASCII digits) or latest
                        _path_param(
                            "height", {"type": "string", "pattern": "^([0-9]{1,18}|latest)$"}
                        )
                    ],
                    "responses": {"200": _ok(obj), "400": _error(), "404": _error()},
                }
            },
            "/v1/proofs/{hash}": {
                "get": {
                    "summary": (
                        "Self-contained inclusion proof of a committed transaction, with its "
                        "result certified by a stable checkpoint once one is above its block "
                        "(format /3, docs/blocks.md)"
                    ),
                    "operationId": "getProof",
                    "tags": ["client"],
                    "parameters": [_path_param("hash", HASH)],
                    "responses": {
                        "200": _ok(obj),
                        "400": _error(),
                        "404": _error(),
                        "503": _error(),  # not-attested: a validator change's links pending
                    },
                }
            },
            "/v1/documents": {
                "post": {
                    "summary": (
                        "Publish a FHIR resource: kept in the custodian node's encrypted "
                        "store, its record.anchor submitted (docs/document-exchange.md)"
                    ),
                    "tags": ["client"],
                    "parameters": _SIGNED,
                    "requestBody": {
                        "required": True,
                        "content": _json(
                            {
                                "type": "object",
                                "required": ["resource", "salt", "anchor"],
                                "properties": {
                                    "resource": {"type": "string"},
                                    "salt": HASH,
                                    "anchor": {"$ref": "#/components/schemas/Transaction"},
                                },
                            }
                        ),
                    },
                    "responses": {
                        "202": _ok(
                            {
                                "type": "object",
                                "required": ["hash", "record_id", "version_id"],
                                "properties": {
                                    "hash": HASH,
                                    "record_id": {"type": "string"},
                                    "version_id": HASH,
                                },
                            },
                            "stored, anchor submitted",
                        ),
                        **{code: _error() for code in ("400", "401", "403", "408", "413")},
                        **{code: _error() for code in ("422", "503")},
                    },
                }
            },
            "/v1/documents/{version_id}": {
                "get": {
                    "summary": (
                        "Fetch a version from its custodian's node under a committed access "
                        "(the ticket), sealed to the requesting member's key"
                    ),
                    "tags": ["client"],
                    "parameters": [
                        _path_param("version_id", {"type": "string"}),
                        {
                            "name": "access",
                            "in": "query",
                            "schema": HASH,
                            "description": "the ticket: a committed access.log or "
                            "access.emergency transaction's hash",
                        },
                        *_SIGNED,
                    ],
                    "responses": {
                        "200": _ok(
                            {
                                "type": "object",
                                "required": ["version_id", "sealed"],
                                "properties": {
                                    "version_id": HASH,
                                    "sealed": {"type": "string", "contentEncoding": "base64"},
                                },
                            }
                        ),
                        **{code: _error() for code in ("400", "401", "403", "404")},
                        **{code: _error() for code in ("502", "503", "504")},
                    },
                }
            },
            "/v1/validators": {
                "get": {
                    "summary": (
                        "The validator set that certifies a height (default: the next block) "
                        "and a committed change not in force for the next block yet"
                    ),
                    "tags": ["client"],
                    "parameters": [
                        {
                            "name": "height",
                            "in": "query",
                            "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                            "description": "a block height (at most 18 digits)",
                        }
                    ],
                    "responses": {"200": _ok(_ref("ValidatorSet")), "400": _error()},
                }
            },
            "/v1/info": {
                "get": {
                    "summary": "Chain id, genesis hash, height and version of this node",
                    "tags": ["client"],
                    "responses": {"200": _ok(obj)},
                }
            },
            "/health": _admin(
                "200 when healthy, 503 with reasons",
                HEALTH,
                extra={"503": {"description": "unhealthy", "content": _json(HEALTH)}},
            ),
            "/status": _admin(
                "node id, chain, height, epoch and role, view, primary, peers, sync, mempool, "
                "base height and state sync"
            ),
            "/peers": _admin("connected peers with traffic counters"),
            "/consensus": _admin("view, primary, in-flight heights, last view change"),
            "/mempool": _admin("size, bytes, age of the oldest transaction"),
            "/validators": _admin("the validator set in force for the next block, with links"),
            "/blocks/recent": _admin(
                "the newest blocks in brief, ?limit=1..100",
                extra={"400": _error()},
                parameters=[
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                        "description": "1..100 (default 20)",
                    }
                ],
            ),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text format)",
                    "tags": ["admin"],
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {
                            "description": "metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "401": _error(),
                    },
                }
            },
        },
    }
    doc["paths"].update(_domain_paths())  # type: ignore[attr-defined]
    return doc
