r"""An ``uploadImportFile`` body: its fields, and its file written out without a copy of it.

The file comes base64-encoded in ``binaryContent``, most of the body. The
fields are parsed from the body with that value left out, and the value is
decoded from the body's own buffer a block at a time: the server holds the
body and one block, not the body again as text and again as bytes. A value
with a JSON escape in it (no encoder writes one in base64, but ``\\/`` is
allowed) is parsed the plain way.
"""

from __future__ import annotations

import binascii
import re
from typing import IO, Any, Final

from importstate.http._body import Body, json_object
from importstate.http._params import InvalidParams

#: Base64 characters decoded at a time (a multiple of 4: each block decodes alone).
_BLOCK: Final = 4 * 1024 * 1024
_CONTENT: Final = re.compile(rb'[{,]\s*"binaryContent"\s*:\s*"')
_NOT_BASE64: Final = "body.binaryContent: must be base64-encoded"


class Upload:
    """The fields of an upload body, and its ``binaryContent`` still encoded."""

    def __init__(self, body: Body) -> None:
        self.fields: dict[str, Any]
        self._content: memoryview | bytes
        span = _content_span(body)
        if span is not None:
            start, end = span
            self.fields = json_object(bytes(body[:start]) + bytes(body[end:]))
            if self.fields.get("binaryContent") == "":
                self.fields["binaryContent"] = "…"  # a string, for the parameter check
                self._content = memoryview(body)[start:end]
                return
        # No span, or the match was no member of the object itself: parsed whole.
        self.fields = json_object(body)
        content = self.fields.get("binaryContent")
        self._content = content.encode("ascii", "replace") if isinstance(content, str) else b""

    def write(self, out: IO[bytes]) -> int:
        """Decode the file into ``out``; its size in bytes.

        Raises:
            InvalidParams: ``binaryContent`` is not base64.
        """
        content = self._content
        written = 0
        for first in range(0, len(content), _BLOCK):
            try:
                block = binascii.a2b_base64(content[first:first + _BLOCK], strict_mode=True)
            except binascii.Error:
                raise InvalidParams(_NOT_BASE64) from None
            out.write(block)
            written += len(block)
        return written


def _content_span(body: Body) -> tuple[int, int] | None:
    """Where ``binaryContent``'s text is in ``body`` (it has no escape), or ``None``."""
    match = _CONTENT.search(body)
    if match is None:
        return None
    start = match.end()
    end = body.find(b'"', start)
    if end < 0 or body.find(b"\\", start, end) >= 0:
        return None
    return start, end
