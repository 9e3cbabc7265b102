"""JSON Schema builders for the route table and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

Schema = dict[str, Any]

STRING: Final[Schema] = {"type": "string"}


def object_schema(
    required: list[str], optional: dict[str, Schema] | None = None, **props: Schema,
) -> Schema:
    """An object with exactly ``props`` and ``optional`` as keys, ``required`` among them."""
    return {
        "type": "object",
        "required": required,
        "properties": {**props, **(optional or {})},
        "additionalProperties": False,
    }


def ref(name: str) -> Schema:
    """The component schema ``name`` of the OpenAPI document."""
    return {"$ref": f"#/components/schemas/{name}"}


def constant(value: object) -> Schema:
    """The schema that only ``value`` fits: a body the API always sends the same."""
    if isinstance(value, Mapping):
        return object_schema(list(value), **{key: constant(item) for key, item in value.items()})
    return {"const": value}
