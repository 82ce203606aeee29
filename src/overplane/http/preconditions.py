"""ETags and the conditional headers: ``If-Match`` on writes, ``If-None-Match`` on reads.

An object's version is its ``updated_at`` in epoch milliseconds, which moves strictly forward
on every accepted update, so the strong ETag ``"<updated_at>"`` changes exactly when the object
does (and needs no column of its own).
"""

from __future__ import annotations

ANY = "*"


def etag(updated_at_ms: int) -> str:
    """The strong ETag of an object version."""
    return f'"{updated_at_ms}"'


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def if_match_versions(header: str | None) -> tuple[int, ...] | None:
    """The versions an ``If-Match`` header accepts; None when it sets no condition.

    ``*`` (any current version) sets none beyond the object existing. If-Match compares
    strongly (RFC 9110 §13.1.1), so weak tags and tags this server never issued match nothing:
    a header of only such tags gives ``()``, a condition no version meets.
    """
    if header is None:
        return None
    tags = _tags(header)
    if ANY in tags:
        return None
    return tuple(
        int(tag[1:-1])
        for tag in tags
        if len(tag) > 2 and tag[0] == tag[-1] == '"' and tag[1:-1].isascii() and tag[1:-1].isdigit()
    )


def if_none_match_hits(header: str | None, updated_at_ms: int) -> bool:
    """Whether an ``If-None-Match`` header matches the current version (weak comparison)."""
    if header is None:
        return False
    current = etag(updated_at_ms)
    return any(tag == ANY or tag.removeprefix("W/") == current for tag in _tags(header))
