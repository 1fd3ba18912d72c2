"""Answers of the public JSON API checked against the OpenAPI document the pool serves (not the module's dict: what
a client would read), with a JSON Schema 2020-12 validator, as OpenAPI 3.1 specifies its schemas."""

from __future__ import annotations

from typing import Any

import jsonschema
from aiohttp import ClientResponse

API_PATH_PREFIX = "/api/v1"


def schema_of(document: dict[str, Any], path: str, status: int) -> dict[str, Any]:
    """The schema of ``path``'s answer with ``status``, with the document's components for its references."""
    content = document["paths"][path]["get"]["responses"][str(status)]["content"]["application/json"]
    return {**document, **content["schema"]}


def check(document: dict[str, Any], path: str, status: int, body: Any) -> None:
    """Raises jsonschema.ValidationError when ``body`` is not what the document says ``path`` answers."""
    jsonschema.Draft202012Validator(schema_of(document, path, status)).validate(body)


async def checked(response: ClientResponse, document: dict[str, Any], path: str, status: int = 200) -> Any:
    """The answer's body once its status, type, headers and schema are what the document and the API promise."""
    body = await response.json()
    assert response.status == status, body
    assert response.content_type == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    check(document, path, status, body)
    return body
