"""Reading a body of unknown size with a byte cap that is checked while reading.

Every place that takes bytes from outside (upstream replies, result downloads, image URLs,
callback and HTTP request bodies) reads through `read_capped`, so that a huge or endless body
costs at most `limit` bytes of memory before it is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable

__all__ = ["declared_too_large", "read_capped"]


async def read_capped(chunks: AsyncIterable[bytes], limit: int, too_large: Callable[[], Exception]) -> bytes:
    """All of `chunks` joined, or `too_large()` raised as soon as more than `limit` bytes came."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large()
        parts.append(chunk)
    return b"".join(parts)


def declared_too_large(content_length: str | bytes | None, limit: int) -> bool:
    """Whether a Content-Length header already says the body is over `limit` (or is not a number)."""
    if content_length is None:
        return False
    text = content_length.decode("latin-1") if isinstance(content_length, bytes) else content_length
    text = text.strip()
    return not text.isdigit() or int(text) > limit
