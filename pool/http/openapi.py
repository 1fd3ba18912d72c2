"""The OpenAPI document of the public JSON API (pool/http/api.py), served at GET /api/v1/openapi.json.

A Python dict rather than a data file: it ships with the package as code, and mypy and the API's tests read the same
object the pool serves. OpenAPI 3.1, whose schemas are JSON Schema 2020-12: a client validates answers with any JSON
Schema library. Amounts are integer mojos, ids lowercase hex without 0x, times unix seconds.
"""

from __future__ import annotations

from typing import Any

API_VERSION = "1.0.0"

_HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "32 bytes, lowercase hex without 0x"}
_MOJOS = {"type": "integer", "minimum": 0, "description": "mojos (1 XCH = 10**12 mojos)"}
_TIME = {"type": "integer", "minimum": 0, "description": "unix time, seconds"}
_COUNT = {"type": "integer", "minimum": 0}
_EFFORT = {
    "type": ["number", "null"],
    "minimum": 0,
    "description": "points of the round over expected_points (1.0: a round of average length), to 4 decimals; null "
    "when the network's figures are not known (blocks recorded before the pool kept them, or the node unreachable)",
}
_EXPECTED = {
    "type": ["number", "null"],
    "minimum": 0,
    "description": "points a block takes on average: network difficulty x POOL_SUB_SLOT_ITERS / network sub-slot "
    "iterations (each over NUM_SPS_SUB_SLOT, as chia rounds them), to 4 decimals; null when not known",
}
_NETWORK = {"type": ["integer", "null"], "minimum": 1}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    """A closed object: every property required, no other: a client can rely on exactly these fields."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _get(summary: str, schema: str, *, errors: tuple[int, ...] = (), parameters: list[Any] | None = None) -> Any:
    responses: dict[str, Any] = {
        "200": {"description": summary, "content": {"application/json": {"schema": _ref(schema)}}},
        "429": {
            "description": "too many requests from this address: retry after Retry-After seconds",
            "content": _ERROR_CONTENT,
        },
        "503": {"description": "the pool cannot answer right now", "content": _ERROR_CONTENT},
    }
    for status in errors:
        responses[str(status)] = {"description": _ERROR_TEXT[status], "content": _ERROR_CONTENT}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _before(schema: dict[str, Any]) -> dict[str, Any]:
    """The query parameter of a list's older pages."""
    return {
        "name": "before",
        "in": "query",
        "required": False,
        "description": "the ``older`` of the page before",
        "schema": schema,
    }


_ERROR_CONTENT = {"application/json": {"schema": _ref("Error")}}
_ERROR_TEXT = {400: "a malformed parameter", 404: "no such farmer"}

SCHEMAS: dict[str, Any] = {
    "Error": _object({"error": {"type": "string"}}),
    "Policy": _object(
        {
            "fee": {"type": "string", "description": "share of every reward the pool keeps, as the operator wrote it"},
            "payout_scheme": {"type": "string", "enum": ["proportional", "pplns"]},
            "pplns_window": {**_COUNT, "description": "seconds of points that count (pplns only; else 0)"},
            "payout_interval": {**_COUNT, "description": "seconds between payout rounds"},
            "minimum_payment": _MOJOS,
            "minimum_difficulty": {"type": "integer", "minimum": 1},
            "relative_lock_height": _COUNT,
        }
    ),
    "Pool": _object(
        {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "policy": _ref("Policy"),
            "farmers": {**_COUNT, "description": "farmers whose PlotNFT farms to the pool now"},
            "estimated_space": {**_COUNT, "description": "bytes, from the points of the last 24 h"},
            "partials_24h": {**_COUNT, "description": "partials accepted in the last 24 h"},
            "blocks_won": _COUNT,
            "rewards_claimed": _MOJOS,
            "paid_to_farmers": _MOJOS,
            "points_in_round": {**_COUNT, "description": "points earned since the last block won"},
            "expected_points": {
                **_EXPECTED,
                "description": "points a block takes on average at the network's difficulty now (as for a Block); "
                "null when the node cannot tell",
            },
            "effort": _EFFORT,
        }
    ),
    "Block": _object(
        {
            "height": {**_COUNT, "description": "of the block whose pool reward was claimed"},
            "time": {**_TIME, "description": "when the pool recorded the reward's claim"},
            "won_at": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "timestamp of the transaction block that created the reward coin (where the round "
                "ends); null for blocks recorded before the pool kept it",
            },
            "coin_id": {**_HEX32, "description": "the pool reward's coin"},
            "finder_launcher_id": _HEX32,
            "reward": _MOJOS,
            "status": {"type": "string", "enum": ["submitted", "confirmed", "lost"]},
            "points_in_round": {**_COUNT, "description": "points earned since the block before"},
            "network_difficulty": {**_NETWORK, "description": "the network's difficulty when the claim was recorded"},
            "network_sub_slot_iters": {**_NETWORK, "description": "the network's sub-slot iterations then"},
            "expected_points": _EXPECTED,
            "effort": _EFFORT,
        }
    ),
    "Blocks": _object(
        {
            "blocks": {"type": "array", "items": _ref("Block"), "description": "newest first"},
            "older": {
                "type": ["string", "null"],
                "description": "the ``before`` of the next page of older blocks (height-coin id); null on the last "
                "page",
            },
        }
    ),
    "Partials": _object(
        {
            "accepted": _COUNT,
            "points": {**_COUNT, "description": "points of the accepted partials"},
            "refused": {
                "type": "object",
                "additionalProperties": _COUNT,
                "description": "refused partials by reason",
            },
        },
        "the farmer's partials of the last 24 h by result",
    ),
    "Payout": _object(
        {
            "time": _TIME,
            "amount": _MOJOS,
            "status": {"type": "string", "enum": ["pending", "submitted", "confirmed"]},
            "tx_id": {"oneOf": [_HEX32, {"type": "null"}]},
            "confirmed_height": {"type": ["integer", "null"], "minimum": 0},
        }
    ),
    "Harvester": _object(
        {
            "harvester_id": _HEX32,
            "accepted": {**_COUNT, "description": "partials accepted in the last 24 h"},
            "rejected": {**_COUNT, "description": "partials found invalid after they were accepted"},
            "points": {**_COUNT, "description": "points of the accepted partials"},
            "last_seen": {**_TIME, "description": "when its newest partial was received"},
        },
        "one harvester's partials of the last 24 h",
    ),
    "Farmer": _object(
        {
            "launcher_id": _HEX32,
            "is_pool_member": {"type": "boolean"},
            "joined_at": _TIME,
            "points": {**_COUNT, "description": "points not yet shared out"},
            "difficulty": {"type": "integer", "minimum": 1},
            "estimated_space": {**_COUNT, "description": "bytes, from the points of the last 24 h"},
            "partials_24h": _ref("Partials"),
            "harvesters": {
                "type": "array",
                "items": _ref("Harvester"),
                "description": "the 50 harvesters seen last in 24 h, newest first",
            },
            "owed": _MOJOS,
            "paid_total": _MOJOS,
            "payouts": {"type": "array", "items": _ref("Payout"), "description": "the newest, newest first"},
        },
        "never the payout address, payout instructions or keys",
    ),
    "Round": _object(
        {
            "time": _TIME,
            "status": {"type": "string", "enum": ["open", "done"]},
            "farmer_total": _MOJOS,
            "farmers_paid": _COUNT,
            "tx_ids": {"type": "array", "items": _HEX32},
        }
    ),
    "Rounds": _object(
        {
            "rounds": {"type": "array", "items": _ref("Round"), "description": "newest first"},
            "older": {
                "type": ["integer", "null"],
                "description": "the ``before`` of the next page of older rounds; null on the last page",
            },
        }
    ),
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Chia pool public API",
        "version": API_VERSION,
        "description": "Public figures of the pool, its blocks and payout rounds, and a farmer's own figures by "
        "launcher id. Read only, no authentication; answers may be a few seconds old (Cache-Control says how long "
        "they are fresh). Effort is defined in docs/api.md.",
    },
    "paths": {
        "/api/v1/pool": _get("the pool's figures and payout policy", "Pool"),
        "/api/v1/blocks": _get(
            "blocks won, newest first, 50 at a time, with each round's points and effort",
            "Blocks",
            errors=(400,),
            parameters=[_before({"type": "string", "pattern": "^[0-9]{1,18}-(0x)?[0-9a-fA-F]{64}$"})],
        ),
        "/api/v1/farmers/{launcher_id}": _get(
            "a farmer's figures",
            "Farmer",
            errors=(400, 404),
            parameters=[{"name": "launcher_id", "in": "path", "required": True, "schema": _HEX32}],
        ),
        "/api/v1/rounds": _get(
            "payout rounds, newest first, a page at a time",
            "Rounds",
            errors=(400,),
            parameters=[_before({"type": "integer", "minimum": 0})],
        ),
        "/api/v1/openapi.json": {
            "get": {"summary": "this document", "responses": {"200": {"description": "the OpenAPI document"}}}
        },
    },
    "components": {"schemas": SCHEMAS},
}
