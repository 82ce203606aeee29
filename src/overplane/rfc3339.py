"""RFC 3339 date-times: formatting the server's timestamps and parsing clients' values.

Parsing is strict (``2024-01-15T09:30:00Z``, ``2024-01-15T09:30:00.123456+02:00``): a value
that is not an RFC 3339 date-time, or names a moment that does not exist (February 30th, a leap
second), gives None. The result is an exact integer count of nanoseconds since the epoch, so
callers can round range bounds exactly into coarser units.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=4096)
def _second_template(epoch_seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_seconds)) + ".%03dZ"


def format_ms(epoch_ms: int) -> str:
    """RFC 3339 in UTC with millisecond precision: ``2024-01-15T09:30:00.123Z``.

    Objects rendered together were mostly written in the same few seconds, so the formatted
    second is cached (a list page formats two timestamps per object).
    """
    return _second_template(epoch_ms // 1000) % (epoch_ms % 1000)


def parse_ns(value: str) -> int | None:
    """Nanoseconds since the epoch for an RFC 3339 date-time, or None if ``value`` is not one.

    Fractions finer than a nanosecond are not accepted (RFC 3339 allows them, but no clock
    this server talks to has them).
    """
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zulu, sign, offset_hours, offset_minutes = match.groups()[6:]
    try:
        if zulu:
            zone = UTC
        else:
            offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
            zone = timezone(-offset if sign == "-" else offset)
        moment = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:  # month 13, day 30 of February, second 60, offset ≥ 24 h, …
        return None
    whole = moment - _EPOCH
    seconds = whole.days * 86_400 + whole.seconds
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))
