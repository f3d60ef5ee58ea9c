"""A JSON request body that is encoded while it is sent, so that large images are not copied whole.

See `JsonBody` for why; docs/benchmarks.md row 5 has the measurement (peak RSS of a five-image
blend fell from ~330 to ~170 MB).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from itertools import groupby
from typing import Any, Final, cast

__all__ = ["BODY_PIECE_BYTES", "JsonBody"]

BODY_PIECE_BYTES: Final = 1024 * 1024
"""A body goes out in pieces of at most this size."""

_JSON_ESCAPED: Final = bytes(range(0x20)) + b'"\\'
"""The ASCII characters JSON does not write as they are."""
_LONG_TEXT: Final = 64 * 1024


def _dumps(value: Any) -> bytes:
    # Exactly what httpx2 sends for json=: the bytes on the wire stay the same.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _plain_ascii(text: str) -> bool:
    """Whether JSON writes `text` between its quotes unchanged, one byte per character."""
    if not text.isascii():
        return False
    for start in range(0, len(text), BODY_PIECE_BYTES):
        piece = text[start : start + BODY_PIECE_BYTES].encode("ascii")
        if len(piece.translate(None, _JSON_ESCAPED)) != len(piece):
            return False
    return True


class JsonBody:
    """A request body in JSON that is encoded as it is sent, one piece at a time.

    Why: a blend carries up to five images of up to 10 MiB as base64 data URIs, about 70 MB of
    text. `json=` makes the whole JSON text, then its UTF-8 bytes, and the connection stack copies
    those bytes again while sending, so the peak held several copies of the images. Here a long
    string that JSON leaves unchanged (base64 is such a string) stays the `str` the request already
    holds and is encoded `BODY_PIECE_BYTES` at a time as the connection takes it; everything else
    is encoded up front. The bytes sent are those of `json=`, and `length` is known beforehand, so
    the request still carries Content-Length. Not a generator: every attempt iterates it afresh.
    """

    def __init__(self, value: Any) -> None:
        pieces: list[bytes | str] = []
        _json_pieces(value, pieces)
        self._pieces: list[bytes | str] = []
        for is_text, run in groupby(pieces, key=lambda piece: isinstance(piece, str)):
            if is_text:
                self._pieces.extend(run)
            else:
                self._pieces.append(b"".join(cast(Iterator[bytes], run)))
        # A str piece is plain ASCII: one byte per character.
        self.length = sum(len(piece) for piece in self._pieces)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self._parts():
            yield part

    def sha256(self) -> str:
        """The SHA-256 of the JSON text, taken piece by piece (the whole text is never made)."""
        digest = hashlib.sha256()
        for part in self._parts():
            digest.update(part)
        return digest.hexdigest()

    def _parts(self) -> Iterator[bytes]:
        for piece in self._pieces:
            for start in range(0, len(piece), BODY_PIECE_BYTES):
                part = piece[start : start + BODY_PIECE_BYTES]
                yield part.encode("ascii") if isinstance(part, str) else part


def _json_pieces(value: Any, out: list[bytes | str]) -> None:
    """Append `value` as JSON to `out`: bytes, or a long plain-ASCII str to encode later."""
    if isinstance(value, str) and len(value) >= _LONG_TEXT and _plain_ascii(value):
        out.extend((b'"', value, b'"'))
    elif isinstance(value, dict) and all(isinstance(key, str) for key in cast(dict[Any, Any], value)):
        out.append(b"{")
        for number, (key, item) in enumerate(cast(dict[str, Any], value).items()):
            out.append((b"," if number else b"") + _dumps(key) + b":")
            _json_pieces(item, out)
        out.append(b"}")
    elif isinstance(value, list | tuple):
        out.append(b"[")
        for number, item in enumerate(cast(list[Any] | tuple[Any, ...], value)):
            if number:
                out.append(b",")
            _json_pieces(item, out)
        out.append(b"]")
    else:
        out.append(_dumps(value))
