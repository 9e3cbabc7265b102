"""The elements of one JSON array, decoded one at a time from a text stream.

Shared by ``importstate add-users`` (a JSON array of users) and the Slack
loaders (an export's JSON members): memory holds about one block of text and
the element in hand, however long the array is. Text that is not UTF-8 must
reach the reader as ``surrogateescape`` decodes it; it is reported at its line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import IO, Any, Final

#: Characters read at a time.
BLOCK: Final = 1024 * 1024
#: A decoding error this close to the end of what has been read may only mean
#: that the value goes on in the next block (a cut number or ``true``).
_NEAR_END: Final = 64
#: Bytes that are not UTF-8, as ``surrogateescape`` decodes them.
NOT_UTF8: Final = re.compile("[\udc80-\udcff]")
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")
#: The comma between two elements, with the whitespace around it.
_COMMA: Final = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")

#: Makes the error to raise for a fault at a 1-based line: ``fail(line, reason)``.
Fail = Callable[[int, str], Exception]


class JsonArray:
    """The elements of the JSON array that ``head`` (then ``rest``) holds.

    ``head`` is what was read of ``rest`` so far (at most :data:`BLOCK`
    characters; fewer means the stream has ended); it must start, after
    whitespace, with ``[``. An element longer than ``max_element``
    characters is refused before more of it is read.
    """

    def __init__(
        self, rest: IO[str], head: str, fail: Fail, *, max_element: int | None = None,
    ) -> None:
        self.rest = rest
        self.fail = fail
        self.max_element = max_element
        self.decoder = json.JSONDecoder()
        self.text = head
        self.pos = 0
        self.eof = len(head) < BLOCK
        # Lines before self.text[self.counted], for line numbers without rescanning.
        self.counted = 0
        self.lines = 1
        self.bad: int | None = None  # where the first byte that is not UTF-8 is in self.text
        self._look_for_bad(0)

    def values(self) -> Iterator[tuple[int, int, Any]]:
        """``(line, length, value)`` of each element: the line it starts on, its characters.

        Raises:
            Exception: ``fail``'s error for the first fault: text that does
                not parse or is not UTF-8, an element over ``max_element``.
        """
        self.pos = self._skip() + 1  # past the "["
        pos: int | None = self._skip()
        if self._at("]"):
            self.pos += 1
            pos = None
        decode, limit = self.decoder.raw_decode, self.max_element
        while pos is not None:
            # An element that ends in the text in hand is decoded here, in one call;
            # anything else (cut by the block's end, bad, too long) takes the long way.
            try:
                value, end = decode(self.text, pos)
            except json.JSONDecodeError:
                end = -1
            if pos < end < len(self.text) and (limit is None or end - pos <= limit):
                self.pos = end
            else:
                value = self._value(pos)
            yield self._line(pos), self.pos - pos, value
            if self.pos >= BLOCK:
                self._trim()
            pos = self._next()
        self._expect_end()

    def _next(self) -> int | None:
        """Move past the comma after an element: where the next starts; ``None`` after the last."""
        found = _COMMA.match(self.text, self.pos)
        # The common case, in one match; whitespace that runs to the end of the
        # text in hand may go on in the next block.
        if found is not None and found.end() < len(self.text):
            self.pos = found.end()
            return self.pos
        pos = self._skip()
        if self._at("]"):
            self.pos = pos + 1
            return None
        if not self._at(","):
            self._fail(pos, "Expecting ',' delimiter")
        self.pos = pos + 1
        return self._skip()

    def _value(self, pos: int) -> Any:  # noqa: ANN401 - any JSON value
        while True:
            try:
                value, end = self.decoder.raw_decode(self.text, pos)
            except json.JSONDecodeError as exc:
                cut = self._maybe_cut(exc)
                if self.eof or not cut:
                    self._fail(exc.pos, exc.msg, cut=cut)
            else:
                # A number at the very end of what was read may go on in the next block.
                if end < len(self.text) or self.eof:
                    self._check_length(pos, end)
                    self.pos = end
                    return value
            self._check_length(pos, len(self.text))
            self._read()

    def _check_length(self, start: int, end: int) -> None:
        if self.max_element is not None and end - start > self.max_element:
            raise self.fail(self._line(start), f"an element longer than {self.max_element:,}"
                            " characters (the limit)")

    def _maybe_cut(self, exc: json.JSONDecodeError) -> bool:
        return exc.msg.startswith("Unterminated string") or exc.pos >= len(self.text) - _NEAR_END

    def _skip(self) -> int:
        """Move past whitespace (reading on as needed); the position of what follows."""
        while True:
            self.pos = skip_whitespace(self.text, self.pos)
            if self.pos < len(self.text) or self.eof:
                return self.pos
            self._read()

    def _at(self, char: str) -> bool:
        return self.text.startswith(char, self.pos)

    def _expect_end(self) -> None:
        pos = self._skip()
        if pos < len(self.text):
            self._fail(pos, "Extra data")

    def _read(self) -> None:
        block = self.rest.read(BLOCK)
        self.eof = len(block) < BLOCK
        offset = len(self.text)
        self.text += block
        self._look_for_bad(offset)

    def _look_for_bad(self, offset: int) -> None:
        if self.bad is None and not self.text.isascii():
            found = NOT_UTF8.search(self.text, offset)
            if found is not None:
                # Parse up to the bad byte, then report it where the parser gets there.
                self.bad = found.start()
                self.text, self.eof = self.text[: self.bad], True

    def _trim(self) -> None:
        """Drop what has been parsed (a block's worth), keeping memory flat."""
        self._line(self.pos)
        self.text = self.text[self.pos :]
        if self.bad is not None:
            self.bad -= self.pos
        self.counted -= self.pos
        self.pos = 0

    def _line(self, pos: int) -> int:
        if pos >= self.counted:
            self.lines += self.text.count("\n", self.counted, pos)
        else:
            self.lines -= self.text.count("\n", pos, self.counted)
        self.counted = pos
        return self.lines

    def _fail(self, pos: int, message: str, *, cut: bool = True) -> None:
        # The text stops before a byte that is not UTF-8: running out of text is that byte's fault.
        if self.bad is not None and (cut or pos >= self.bad):
            raise self.fail(self._line(self.bad), "not UTF-8 text")
        line = self._line(pos)
        column = pos - self.text.rfind("\n", 0, pos)
        raise self.fail(line, f"{message} (column {column})")


def skip_whitespace(text: str, pos: int) -> int:
    """The position of the first character at or after ``pos`` that is not JSON whitespace."""
    found = _WHITESPACE.match(text, pos)
    return found.end() if found is not None else pos
