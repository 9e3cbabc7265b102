"""The OpenAPI 3.1 document of the REST API, derived from the route and wire-field tables.

A test fuzzes the running server from this document, so every status code
and body shape written here is one the server really gives.
"""

from __future__ import annotations

from typing import Final

from importstate import __version__
from importstate._staging import KNOWN_ROLES
from importstate.history import HistoryDocument
from importstate.http._routes import (
    AUTH_TOKEN_HEADER,
    ENDPOINTS,
    FORBIDDEN,
    LOGIN,
    LOGIN_FAILED,
    LOGIN_THROTTLED,
    OPENAPI,
    SUCCESS,
    UNAUTHORIZED,
    USER_ID_HEADER,
    Endpoint,
    Route,
)
from importstate.http._schema import STRING, Schema, constant, object_schema, ref
from importstate.model import COUNT_FIELDS, WIRE_FIELDS, WireKind
from importstate.steps import ProgressStep

_SOME_TEXT: Final[Schema] = {
    "type": "array",
    "items": STRING,
    "minItems": 1,
    "contains": {"type": "string", "minLength": 1},
}

#: The schema of each kind of operation field.
_KIND_SCHEMAS: Final[dict[WireKind, Schema]] = {
    WireKind.STRING: STRING,
    WireKind.TIME: {"type": "string", "format": "date-time"},
    WireKind.STATUS: {"enum": [step.value for step in ProgressStep]},
    WireKind.BOOL: {"type": "boolean"},
    WireKind.COUNT: ref("Count"),
    WireKind.FAILURE: object_schema(["message", "at"], message=STRING, at=STRING),
}

#: A history entry's ``from``: a step, or ``null`` for the operation's creation.
_CREATED_OR_STEP: Final[Schema] = {"anyOf": [_KIND_SCHEMAS[WireKind.STATUS], {"type": "null"}]}

_SCHEMAS: Final[dict[str, Schema]] = {
    "Count": {
        "type": "object",
        "properties": {name: {"type": "integer", "minimum": 0} for name in COUNT_FIELDS},
        "additionalProperties": False,
    },
    "Operation": object_schema(
        [field.wire for field in WIRE_FIELDS if field.required],
        **{field.wire: _KIND_SCHEMAS[field.kind] for field in WIRE_FIELDS},
    ),
    "HistoryEntry": object_schema(
        list(HistoryDocument.__annotations__),
        operationId=STRING,
        **{"from": _CREATED_OR_STEP},
        to=_KIND_SCHEMAS[WireKind.STATUS],
        event=STRING,
        at=_KIND_SCHEMAS[WireKind.TIME],
        actor=STRING,
    ),
    "ImportUser": {
        "type": "object",
        "required": ["emails", "importIds"],
        "properties": {
            # At least one non-empty string each (Behaviour: service, check 5).
            "emails": _SOME_TEXT,
            "importIds": _SOME_TEXT,
            "username": STRING,
            "name": STRING,
            "type": {"enum": ["user", "bot"]},
            "roles": {"type": "array", "items": {"enum": list(KNOWN_ROLES)}},
            "utcOffset": {"type": "number"},
            "avatarUrl": STRING,
            "deleted": {"type": "boolean"},
            "statusText": STRING,
            "bio": STRING,
            "password": STRING,
            "services": {"type": "object"},
            "customFields": {"type": "object"},
        },
    },
    "Success": constant(SUCCESS),
    "Failure": object_schema(
        ["success", "error"], {"errorType": STRING, "details": STRING},
        success={"const": False}, error=STRING,
    ),
    "Unauthorized": constant(UNAUTHORIZED),
    "Forbidden": constant(FORBIDDEN),
    "LoginFailed": constant(LOGIN_FAILED),
    "TooManyLogins": object_schema(
        [*LOGIN_THROTTLED, "message"],
        **{key: constant(value) for key, value in LOGIN_THROTTLED.items()}, message=STRING,
    ),
    "Login": {
        "type": "object",
        "properties": {"user": STRING, "username": STRING, "password": STRING},
    },
}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_TOO_LARGE: Final = _json(ref("Failure"), "the body is over the size limit")
#: What any request may get, whatever it asks: the body stalled, the store failed, busy.
_ANY: Final[dict[str, Schema]] = {
    "408": _json(ref("Failure"), "the body stopped arriving for longer than the body timeout"),
    "500": _json(ref("Failure"), "the store failed (its reason), or the server (no details)"),
    "503": _json(ref("Failure"), "database locked too long, server stopping, or too many"
                                 " large bodies at once; see Retry-After"),
}


def _operation(endpoint: Endpoint) -> Schema:
    responses: dict[str, Schema] = {
        "200": _json(endpoint.response, "OK"),
        "401": _json(ref("Unauthorized"), "missing or wrong credentials"),
        "413": _TOO_LARGE,
        **_ANY,
    }
    if endpoint.permission is not None:
        responses["403"] = _json(ref("Forbidden"), f"the user lacks {endpoint.permission}")
    if endpoint.fails or endpoint.body is not None or endpoint.strict:
        responses["400"] = _json(
            ref("Failure"),
            "the call failed (Behaviour: service message; Behaviour: file-api: a Meteor.Error, or"
            " error-invalid-params for a parameter that does not fit)",
        )
    doc: Schema = {"summary": endpoint.summary, "responses": responses}
    if endpoint.permission is not None:
        doc["description"] = f"Permission required: {endpoint.permission}."
    if endpoint.query is not None:
        required = endpoint.query["required"]
        doc["parameters"] = [
            {"name": name, "in": "query", "required": name in required, "schema": schema}
            for name, schema in endpoint.query["properties"].items()
        ]
    if endpoint.body is not None:
        doc["requestBody"] = {
            "required": True, "content": {"application/json": {"schema": endpoint.body}},
        }
    return doc


def _login() -> Schema:
    ok = object_schema(
        ["status", "data"],
        status={"const": "success"},
        data=object_schema(
            ["userId", "authToken", "me"], userId=STRING, authToken=STRING,
            me={"type": "object", "required": ["_id", "username"],
                "properties": {"_id": STRING, "username": STRING,
                               "permissions": {"type": "array", "items": STRING}}},
        ),
    )
    body = ref("Login")
    return {
        "summary": LOGIN.summary,
        "security": [],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": body},
            "application/x-www-form-urlencoded": {"schema": body},
        }},
        "responses": {
            "200": _json(ok, "logged in: send userId and authToken as"
                             f" {USER_ID_HEADER} and {AUTH_TOKEN_HEADER}"),
            "400": _json(ref("Failure"), "the body is neither JSON nor form-encoded"),
            "401": _json(ref("LoginFailed"), "wrong name or password"),
            "413": _TOO_LARGE,
            "429": _json(ref("TooManyLogins"), "too many failed logins of late for this name"
                                               " or client address; see Retry-After"),
            **_ANY,
        },
    }


def _this_document() -> Schema:
    return {
        "summary": OPENAPI.summary, "security": [],
        "responses": {"200": {"description": "OpenAPI 3.1",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    }


def _paths() -> dict[str, Schema]:
    items: list[tuple[Route, Schema]] = [(endpoint, _operation(endpoint)) for endpoint in ENDPOINTS]
    items += [(LOGIN, _login()), (OPENAPI, _this_document())]
    paths: dict[str, Schema] = {}
    for route, operation in items:
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return paths


def openapi_document(max_body: int) -> Schema:
    """The OpenAPI 3.1 document of the server (``max_body``: its body limit in bytes)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "importstate REST API",
            "version": __version__,
            "description": (
                "Rocket.Chat's import API (Behaviour: rest). Request bodies over"
                f" {max_body} bytes are refused with 413."
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "userId": {"type": "apiKey", "in": "header", "name": USER_ID_HEADER},
                "authToken": {"type": "apiKey", "in": "header", "name": AUTH_TOKEN_HEADER},
            },
        },
        "security": [{"userId": [], "authToken": []}],
    }
