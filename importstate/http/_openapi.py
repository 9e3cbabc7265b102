"""The OpenAPI 3.1 document of the REST API, derived from the steps, states and endpoints.

A test fuzzes the running server from this document, so every status code
and body shape written here is one the server really gives.
"""

from __future__ import annotations

from typing import Any, Final

from importstate import __version__
from importstate._users import KNOWN_ROLES
from importstate.model import COUNT_FIELDS
from importstate.steps import ProgressStep, State

Schema = dict[str, Any]

_UNAUTHORIZED_MESSAGE: Final = "You must be logged in to do this."
_FORBIDDEN_MESSAGE: Final = (
    "User does not have the permissions required for this action [error-unauthorized]"
)


def _object(
    required: list[str], optional: dict[str, Schema] | None = None, **props: Schema,
) -> Schema:
    return {
        "type": "object",
        "required": required,
        "properties": {**props, **(optional or {})},
        "additionalProperties": False,
    }


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


_STRING: Final[Schema] = {"type": "string"}
_STRINGS: Final[Schema] = {"type": "array", "items": _STRING}
_SOME_TEXT: Final[Schema] = {
    "type": "array",
    "items": _STRING,
    "minItems": 1,
    "contains": {"type": "string", "minLength": 1},
}

_SCHEMAS: Final[dict[str, Schema]] = {
    "Count": {
        "type": "object",
        "properties": {name: {"type": "integer", "minimum": 0} for name in COUNT_FIELDS},
        "additionalProperties": False,
    },
    "Operation": _object(
        ["_id", "type", "importerKey", "ts", "status", "valid", "user", "_updatedAt"],
        {
            "count": _ref("Count"),
            "contentType": _STRING,
            "file": _STRING,
            "failure": _object(["message", "at"], message=_STRING, at=_STRING),
        },
        _id=_STRING,
        type=_STRING,
        importerKey=_STRING,
        ts={"type": "string", "format": "date-time"},
        status={"enum": [step.value for step in ProgressStep]},
        valid={"type": "boolean"},
        user=_STRING,
        _updatedAt={"type": "string", "format": "date-time"},
    ),
    "ImportUser": {
        "type": "object",
        "required": ["emails", "importIds"],
        "properties": {
            # At least one non-empty string each (SPEC §4, check 5).
            "emails": _SOME_TEXT,
            "importIds": _SOME_TEXT,
            "username": _STRING,
            "name": _STRING,
            "type": {"enum": ["user", "bot"]},
            "roles": {"type": "array", "items": {"enum": list(KNOWN_ROLES)}},
            "utcOffset": {"type": "number"},
            "avatarUrl": _STRING,
            "deleted": {"type": "boolean"},
            "statusText": _STRING,
            "bio": _STRING,
            "password": _STRING,
            "services": {"type": "object"},
            "customFields": {"type": "object"},
        },
    },
    "Success": _object(["success"], success={"const": True}),
    "Failure": _object(["success", "error"], success={"const": False}, error=_STRING),
    "Unauthorized": _object(
        ["status", "message"], status={"const": "error"}, message={"const": _UNAUTHORIZED_MESSAGE},
    ),
    "Forbidden": _object(
        ["success", "error"], success={"const": False}, error={"const": _FORBIDDEN_MESSAGE},
    ),
    "LoginFailed": _object(
        ["status", "error", "message"],
        status={"const": "error"},
        error={"const": "Unauthorized"},
        message={"const": "Unauthorized"},
    ),
    "Login": {
        "type": "object",
        "properties": {"user": _STRING, "username": _STRING, "password": _STRING},
    },
}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(
    summary: str,
    permission: str | None,
    ok: Schema,
    *,
    fails: bool = False,
    body: Schema | None = None,
) -> Schema:
    responses: dict[str, Schema] = {
        "200": _json(ok, "OK"),
        "401": _json(_ref("Unauthorized"), "missing or wrong credentials"),
        "413": _json(_ref("Failure"), "the body is over the size limit"),
        "503": _json(_ref("Failure"), "database locked too long, or server stopping"),
    }
    if permission is not None:
        responses["403"] = _json(_ref("Forbidden"), f"the user lacks {permission}")
    if fails or body is not None:
        responses["400"] = _json(_ref("Failure"), "the call failed (SPEC §4 message)")
    doc: Schema = {"summary": summary, "responses": responses}
    if permission is not None:
        doc["description"] = f"Permission required: {permission}."
    if body is not None:
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return doc


def _paths() -> dict[str, Schema]:
    run, view = "run-import", "view-import-operations"
    success = _ref("Success")
    with_operation = _object(["operation", "success"], operation=_ref("Operation"),
                             success={"const": True})
    counter: Schema = {"type": "integer", "minimum": 0}
    progress_count = _object(
        ["completed", "total", "error"], completed=counter, total=counter, error=counter,
    )
    return {
        "getLatestImportOperations": {"get": _operation(
            "The 20 most recently updated operations, newest first (a bare array)", view,
            {"type": "array", "maxItems": 20, "items": _ref("Operation")},
        )},
        "import.new": {"post": _operation(
            "Clear every operation and create a new one", run, with_operation,
        )},
        "import.status": {"get": _operation(
            "The state of the current operation", run,
            _object(["state", "success"], {"operation": _ref("Operation")},
                    state={"enum": [state.value for state in State]}, success={"const": True}),
        )},
        "import.addUsers": {"post": _operation(
            "Stage users for the current operation; all or none", run, success,
            body=_object(["users"], users={"type": "array", "items": _ref("ImportUser")}),
        )},
        "import.run": {"post": _operation(
            "Start importing the staged users in the background", run, success, fails=True,
        )},
        "import.clear": {"post": _operation(
            "Invalidate every operation and delete all staged users", run, success,
        )},
        "getCurrentImportOperation": {"get": _operation(
            "The newest operation, valid or not", run,
            _object(["operation", "success"],
                    operation={"anyOf": [_ref("Operation"), {"type": "null"}]},
                    success={"const": True}),
        )},
        "getImportProgress": {"get": _operation(
            "Importer key, name, step and counts of the current operation", run,
            _object(["key", "name", "step", "count", "success"],
                    key=_STRING, name=_STRING, step={"enum": [s.value for s in ProgressStep]},
                    count=progress_count, success={"const": True}),
            fails=True,
        )},
        "import.cancel": {"post": _operation(
            "Cancel the current operation; a running import stops at its next batch", run,
            with_operation, fails=True,
        )},
        "logout": {"post": _operation(
            "Invalidate the auth token of this request", None,
            _object(["status", "data"], status={"const": "success"},
                    data=_object(["message"], message={"const": "You've been logged out!"})),
        )},
    }


def _login() -> Schema:
    ok = _object(
        ["status", "data"],
        status={"const": "success"},
        data=_object(
            ["userId", "authToken", "me"], userId=_STRING, authToken=_STRING,
            me={"type": "object", "required": ["_id", "username"],
                "properties": {"_id": _STRING, "username": _STRING, "permissions": _STRINGS}},
        ),
    )
    body = _ref("Login")
    return {"post": {
        "summary": "Log in with a name and password; JSON or form-encoded",
        "security": [],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": body},
            "application/x-www-form-urlencoded": {"schema": body},
        }},
        "responses": {
            "200": _json(ok, "logged in: send userId and authToken as X-User-Id and X-Auth-Token"),
            "400": _json(_ref("Failure"), "the body is neither JSON nor form-encoded"),
            "401": _json(_ref("LoginFailed"), "wrong name or password"),
            "413": _json(_ref("Failure"), "the body is over the size limit"),
        },
    }}


def openapi_document(max_body: int) -> Schema:
    """The OpenAPI 3.1 document of the server (``max_body``: its body limit in bytes)."""
    paths = {f"/api/v1/{name}": item for name, item in _paths().items()}
    paths["/api/v1/login"] = _login()
    paths["/api/v1/openapi.json"] = {"get": {
        "summary": "This document", "security": [],
        "responses": {"200": {"description": "OpenAPI 3.1",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    }}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "importstate REST API",
            "version": __version__,
            "description": (
                "Rocket.Chat's import API (SPEC §7). Request bodies over"
                f" {max_body} bytes are refused with 413."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "userId": {"type": "apiKey", "in": "header", "name": "X-User-Id"},
                "authToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
            },
        },
        "security": [{"userId": [], "authToken": []}],
    }
