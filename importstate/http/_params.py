"""Checking a request's parameters against its route's schemas.

Behaviour: file-api ``error-invalid-params``.

The route table's schemas are the ones the OpenAPI document shows, so what
is refused here is what the document says. The checker knows the subset the
table uses: ``type`` (object, string, boolean, array, integer), ``required``,
``properties``, ``additionalProperties: false``, ``items`` and ``minLength``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from importstate.http._schema import Schema

#: The ``errorType`` of a refused parameter, as Rocket.Chat names it.
INVALID_PARAMS: Final = "error-invalid-params"

_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "object": (dict,), "string": (str,), "boolean": (bool,), "array": (list,), "integer": (int,),
}


class InvalidParams(Exception):
    """A parameter does not fit its schema: ``message`` says what and where."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def check(value: object, schema: Schema, where: str) -> None:
    """Refuse ``value`` (found at ``where``: ``body``, ``query``) unless it fits ``schema``.

    Raises:
        InvalidParams: the first misfit, named by its path (``body.input.users.list``).
    """
    wanted = schema.get("type")
    if wanted is not None and not _is(value, wanted):
        msg = f"{where}: must be {_article(wanted)} {wanted}"
        raise InvalidParams(msg)
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        msg = f"{where}: must not be empty"
        raise InvalidParams(msg)
    if isinstance(value, Mapping):
        _check_object(value, schema, where)
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            check(item, schema["items"], f"{where}[{index}]")


def _check_object(value: Mapping[str, Any], schema: Schema, where: str) -> None:
    properties: dict[str, Schema] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            msg = f"{where}: must have required property '{name}'"
            raise InvalidParams(msg)
    if schema.get("additionalProperties") is False:
        extra = sorted(set(value) - set(properties))
        if extra:
            msg = f"{where}: must NOT have additional properties ({', '.join(extra)})"
            raise InvalidParams(msg)
    for name, item in value.items():
        if name in properties:
            check(item, properties[name], f"{where}.{name}")


def _is(value: object, wanted: str) -> bool:
    if isinstance(value, bool) and wanted == "integer":
        return False
    return isinstance(value, _TYPES[wanted])


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"
