"""Reading request bodies: a size limit, strict JSON, and form-encoded login bodies."""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn
from urllib.parse import parse_qsl

from starlette.requests import Request


class BadRequest(Exception):
    """The request is malformed; ``status`` and ``message`` are what the client gets."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) one longer than ``limit`` bytes without reading it all.

    Raises:
        BadRequest: with status 413 when the body is over the limit.
    """
    declared = request.headers.get("content-length")
    if declared is None and "transfer-encoding" not in request.headers:
        return b""  # HTTP/1.1: a request with neither header has no body
    if declared is not None and declared.isdigit() and int(declared) > limit:
        _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> NoReturn:
    msg = f"The request body is larger than the limit of {limit} bytes."
    raise BadRequest(msg, 413)


def _no_constant(name: str) -> NoReturn:
    msg = f"The request body is not valid JSON: {name} is not a JSON value."
    raise BadRequest(msg)


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999 reads as infinity, which JSON cannot write back
        msg = f"The request body is not valid JSON: {text} is out of range."
        raise BadRequest(msg)
    return number


def json_object(body: bytes) -> dict[str, Any]:
    """``body`` parsed as a JSON object (strict: finite numbers, valid UTF-8 text).

    Raises:
        BadRequest: it is not JSON, not UTF-8, or not an object.
    """
    try:
        value = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
        # A lone surrogate ("\\ud800") parses, but is no text a store or importer can keep.
        json.dumps(value, ensure_ascii=False).encode()
    except RecursionError:
        msg = "The request body is nested too deeply."
        raise BadRequest(msg) from None
    except UnicodeError:
        msg = "The request body is not valid UTF-8 text."
        raise BadRequest(msg) from None
    except ValueError as exc:
        msg = f"The request body is not valid JSON: {exc}."
        raise BadRequest(msg) from None
    if not isinstance(value, dict):
        msg = f"The request body must be a JSON object, not {_json_type(value)}."
        raise BadRequest(msg)
    return value


def login_fields(request: Request, body: bytes) -> dict[str, Any]:
    """The fields of a login body, JSON or ``application/x-www-form-urlencoded``.

    Raises:
        BadRequest: the body cannot be read as either.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            msg = "The request body is not valid UTF-8 text."
            raise BadRequest(msg) from None
    return json_object(body)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"
