"""The list's query parameters: ``limit`` and ``offset``, as the contract bounds them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from overplane.http.errors import ParameterInvalid

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Which slice of a list the client asked for."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0


def _whole_number(name: str, raw: str, low: int, high: int | None) -> int:
    # Digits only: no signs, spaces or exponents, which int() would quietly accept. The length
    # cap keeps int() away from Python's limit on huge digit strings.
    if raw.isascii() and raw.isdigit() and len(raw) <= 4000:
        value = int(raw)
        if value >= low and (high is None or value <= high):
            return value
    raise ParameterInvalid(_bounds_message(name, low, high), param=name)


def _bounds_message(name: str, low: int, high: int | None) -> str:
    if high is None:
        return f"{name} must be an integer of at least {low}"
    return f"{name} must be an integer between {low} and {high}"


def parse_page_request(query: Sequence[tuple[str, str]]) -> PageRequest:
    """``limit`` (1–100, default 20) and ``offset`` (≥ 0, default 0) from the query string.

    The caller has already rejected unknown parameters; a repeated one is ambiguous and so
    invalid.
    """
    values: dict[str, str] = {}
    for name, raw in query:
        if name in values:
            raise ParameterInvalid(f"{name} was given more than once", param=name)
        values[name] = raw
    limit = DEFAULT_LIMIT
    offset = 0
    if "limit" in values:
        limit = _whole_number("limit", values["limit"], 1, MAX_LIMIT)
    if "offset" in values:
        offset = _whole_number("offset", values["offset"], 0, None)
    return PageRequest(limit=limit, offset=offset)
