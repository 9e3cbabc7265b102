"""Reading request bodies: a size limit, strict UTF-8 JSON, users parsed as they are staged.

A body is read into one buffer (never copied), then parsed from it: the
``users`` of ``import.addUsers`` chunk by chunk, so a 10 MB body costs about
its own size again while it is staged, not the tenfold of a whole document
of Python objects.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import math
import re
from collections.abc import Iterator
from typing import Any, Final, NoReturn
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request

#: Users per chunk handed to the service, and the text that also ends a chunk.
CHUNK_USERS: Final = 1000
CHUNK_CHARS: Final = 4 * 1024 * 1024
#: Bytes decoded at a time.
_BLOCK: Final = 1024 * 1024
#: A decoding error this close to the end of the text in hand may be a value cut in two.
_NEAR_END: Final = 64
#: Containers nested deeper than this (outside the users, which json parses) are refused.
_MAX_DEPTH: Final = 500
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")
#: The escape of a UTF-16 surrogate: only a pair of them is text.
_SURROGATE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_NOT_UTF8: Final = "The request body is not valid UTF-8 text."

Body = bytes | bytearray


class BadRequest(Exception):
    """The request is malformed; ``status`` and ``message`` are what the client gets."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Disconnected(Exception):
    """The client went away before its body was read: nobody is left to answer."""


async def read_limited(request: Request, limit: int, *, idle: float) -> Body:
    """The whole body, refusing (413) one longer than ``limit`` bytes without reading it all.

    Raises:
        BadRequest: with status 413 when the body is over the limit, 408 when
            nothing of it arrives for ``idle`` seconds.
        Disconnected: the client closed the connection first.
    """
    declared = request.headers.get("content-length")
    if declared is None and "transfer-encoding" not in request.headers:
        return b""  # HTTP/1.1: a request with neither header has no body
    if declared is not None and declared.isdigit() and int(declared) > limit:
        _too_large(limit)
    body = bytearray()
    parts = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle):
                part = await parts.__anext__()
        except StopAsyncIteration:
            return body
        except TimeoutError:
            msg = f"The request body stalled: nothing of it came for {idle:g} seconds."
            raise BadRequest(msg, 408) from None
        except ClientDisconnect:
            raise Disconnected from None
        if len(body) + len(part) > limit:
            _too_large(limit)
        body += part


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


_DECODER: Final = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def json_object(body: Body) -> dict[str, Any]:
    """``body`` parsed as a JSON object (strict: UTF-8 without a BOM, finite numbers).

    Raises:
        BadRequest: it is not JSON, not UTF-8, or not an object.
    """
    text = _utf8(body)
    try:
        value = _DECODER.decode(text)
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


def login_fields(request: Request, body: Body) -> dict[str, Any]:
    """The fields of a login body, JSON or ``application/x-www-form-urlencoded``.

    Raises:
        BadRequest: the body cannot be read as either.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(_utf8(body), keep_blank_values=True))
    return json_object(body)


def _utf8(body: Body) -> str:
    """The body as text: UTF-8, as the API is (json would also guess UTF-16 and -32)."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise BadRequest(_NOT_UTF8) from None
    if text.startswith("\ufeff"):
        msg = "The request body is not valid JSON: it starts with a byte order mark."
        raise BadRequest(msg)
    return text


def users_in(body: Body) -> Iterator[list[Any]]:
    """The ``users`` list of an ``import.addUsers`` body, in lists of :data:`CHUNK_USERS`.

    Parsed as it is read: a fault anywhere in the body raises when the
    parser gets there, so the caller stages the chunks in one transaction
    (``ImportService.add_users_from``), which the fault rolls back. A body
    that is not an object is parsed whole, for the error it gets.

    Raises:
        BadRequest: the body is not UTF-8 JSON, not an object, or its
            ``users`` is missing, given twice or not a list.
    """
    text = _Text(body)
    if text.skip() != "{":
        json_object(body)  # raises, with the message a whole parse gives
        return
    found = False
    for key in text.members():
        if key != "users":
            text.skip_value(0)
            continue
        if found:
            msg = 'The request body has "users" more than once.'
            raise BadRequest(msg)
        found = True
        yield from _users(text)
    if text.skip() != "":
        text.fail("Extra data")
    if not found:
        msg = 'The request body must have a "users" list.'
        raise BadRequest(msg)


def _users(text: _Text) -> Iterator[list[Any]]:
    if text.skip() != "[":
        text.value()  # a value that does not parse is that error first
        msg = '"users" must be a list of users.'
        raise BadRequest(msg)
    chunk: list[Any] = []
    start = text.offset()
    for _ in text.elements():
        chunk.append(text.value())
        if len(chunk) >= CHUNK_USERS or text.offset() - start >= CHUNK_CHARS:
            text.check_text(chunk)
            yield chunk
            chunk, start = [], text.offset()
    if chunk:
        text.check_text(chunk)
        yield chunk


class _Text:
    """A body decoded block by block, and the window of it not parsed yet."""

    def __init__(self, body: Body) -> None:
        self._body = memoryview(body)
        self._read = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.text = ""
        self.pos = 0
        self._dropped = 0  # characters before the window
        self._eof = False
        self._escapes = False  # the body escapes a surrogate: chunks are checked as text

    def offset(self) -> int:
        """Characters parsed so far."""
        return self._dropped + self.pos

    def _more(self) -> bool:
        """Decode the next block into the window; ``False`` at the end of the body."""
        if self._eof:
            return False
        part = self._body[self._read:self._read + _BLOCK]
        self._read += len(part)
        self._eof = self._read >= len(self._body)
        try:
            block = self._decoder.decode(part, final=self._eof)
        except UnicodeDecodeError:
            raise BadRequest(_NOT_UTF8) from None
        if self._read == len(part) and block.startswith("\ufeff"):
            msg = "The request body is not valid JSON: it starts with a byte order mark."
            raise BadRequest(msg)
        # Drop what is parsed; keep a few characters so an escape cut in two is seen.
        tail = self.text[self.pos:]
        self._dropped += self.pos
        self.text, self.pos = tail + block, 0
        self._escapes = self._escapes or _SURROGATE.search(self.text, max(0, len(tail) - 6)) \
            is not None
        return True

    def skip(self) -> str:
        """Move past whitespace; the next character, ``""`` at the end of the body."""
        while True:
            found = _WHITESPACE.match(self.text, self.pos)
            self.pos = found.end() if found is not None else self.pos
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self._more():
                return ""

    def value(self) -> Any:  # noqa: ANN401 - any JSON value
        """The JSON value at the position, reading on while it may be cut."""
        self.skip()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                cut = exc.msg.startswith("Unterminated string") or \
                    exc.pos >= len(self.text) - _NEAR_END
                if not cut or not self._more():
                    self.fail(exc.msg, exc.pos)
                continue
            except RecursionError:
                _too_deep()
            except ValueError as exc:  # an integer of more digits than Python reads
                self.fail(str(exc))
            # A number at the very end of what was decoded may go on in the next block.
            if end < len(self.text) or not self._more():
                self.pos = end
                return value

    def members(self) -> Iterator[str]:
        """The keys of the object here; after each, the caller reads or skips its value."""
        self.pos += 1  # the "{"
        if self.skip() == "}":
            self.pos += 1
            return
        while True:
            key = self.value()
            if not isinstance(key, str):
                self.fail("Expecting property name enclosed in double quotes")
            if self.skip() != ":":
                self.fail("Expecting ':' delimiter")
            self.pos += 1
            yield key
            if not self._another("}"):
                return

    def elements(self) -> Iterator[None]:
        """Once per element of the array here; the caller reads or skips each."""
        self.pos += 1  # the "["
        if self.skip() == "]":
            self.pos += 1
            return
        while True:
            yield None
            if not self._another("]"):
                return

    def _another(self, closing: str) -> bool:
        """Move past the ``,`` before the next member (``True``) or the ``closing`` bracket."""
        char = self.skip()
        self.pos += 1
        if char == closing:
            return False
        if char != ",":
            self.fail("Expecting ',' delimiter", self.pos - 1)
        return True

    def skip_value(self, depth: int) -> None:
        """Move past a value that is not kept, one element at a time."""
        if depth > _MAX_DEPTH:
            _too_deep()
        opening = self.skip()
        if opening == "{":
            for _ in self.members():
                self.skip_value(depth + 1)
        elif opening == "[":
            for _ in self.elements():
                self.skip_value(depth + 1)
        else:
            self.value()

    def check_text(self, values: list[Any]) -> None:
        """Refuse a lone surrogate (an escaped one): it parses, but no store can keep it."""
        if not self._escapes:
            return
        try:
            json.dumps(values, ensure_ascii=False).encode()
        except UnicodeError:
            raise BadRequest(_NOT_UTF8) from None

    def fail(self, message: str, pos: int | None = None) -> NoReturn:
        at = self._dropped + (self.pos if pos is None else pos)
        msg = f"The request body is not valid JSON: {message} (char {at})."
        raise BadRequest(msg)


def _too_deep() -> NoReturn:
    msg = "The request body is nested too deeply."
    raise BadRequest(msg)


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
