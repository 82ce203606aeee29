"""ETags and the conditional headers: ``If-Match`` on writes, ``If-None-Match`` on reads.

An object's version is its ``updated_at`` in epoch milliseconds, which moves strictly forward
on every accepted update, so the strong ETag ``"<updated_at>"`` changes exactly when the object
does (and needs no column of its own).
"""

from __future__ import annotations

from dataclasses import dataclass

ANY = "*"


def etag(updated_at_ms: int) -> str:
    """The strong ETag of an object version."""
    return f'"{updated_at_ms}"'


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


@dataclass(frozen=True, slots=True)
class IfMatch:
    """The condition an ``If-Match`` header sets on a write: the object's current version
    must be one of ``versions``.

    If-Match compares strongly (RFC 9110 §13.1.1), so weak tags and tags this server never
    issued match nothing: a header of only such tags leaves ``versions`` empty, a condition
    no version meets (:attr:`can_match` is False).
    """

    versions: tuple[int, ...]

    @property
    def can_match(self) -> bool:
        """Whether any version could meet the condition."""
        return bool(self.versions)


def if_match(header: str | None) -> IfMatch | None:
    """The condition an ``If-Match`` header sets; None when it sets none (absent, or ``*``:
    any current version, which only asks that the object exists)."""
    if header is None:
        return None
    tags = _tags(header)
    if ANY in tags:
        return None
    return IfMatch(
        tuple(
            int(tag[1:-1])
            for tag in tags
            if len(tag) > 2
            and tag[0] == tag[-1] == '"'
            and tag[1:-1].isascii()
            and tag[1:-1].isdigit()
        )
    )


def if_none_match_hits(header: str | None, updated_at_ms: int) -> bool:
    """Whether an ``If-None-Match`` header matches the current version (weak comparison)."""
    if header is None:
        return False
    current = etag(updated_at_ms)
    return any(tag == ANY or tag.removeprefix("W/") == current for tag in _tags(header))
