"""Identifiers: a prefix, a time-ordered lead and 96 bits from a CSPRNG.

The lead (milliseconds since the epoch) keeps new ids close together in the unique index; the
96 random bits make ids unguessable. Both are written in base 62 with a fixed width, in an
alphabet whose ASCII order matches the numeric order, so ids sort by creation time.
"""

from __future__ import annotations

import math
import os
import secrets

from overplane.clock import now_ms

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_BITS = 96
_WIDTH = 25  # 62**25 > 2**(48 + 96): a 48-bit millisecond lead and the random bits


_PAIRS = [high + low for high in ALPHABET for low in ALPHABET]  # two digits per division


def encode_base62(number: int, width: int) -> str:
    """``number`` in base 62, left-padded with zeros to ``width`` characters."""
    pairs = []
    while number:
        number, remainder = divmod(number, 3844)
        pairs.append(_PAIRS[remainder])
    return "".join(reversed(pairs)).lstrip("0").rjust(width, "0")


class RandomPool:
    """Bytes from the operating system's CSPRNG, fetched 4 KiB at a time.

    A ``getrandom`` system call per request id and object id was measured at about 5% of a
    point read's time on this project's benchmark machine (docs/performance.md); one call per
    few hundred ids costs nothing. The bytes are the same CSPRNG output either way. Secret
    keys do not come from here: they are drawn fresh, so no future key ever sits in memory.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._bytes = b""
        self._used = 0
        # A forked child must not hand out the same bytes as its parent.
        os.register_at_fork(after_in_child=self.discard)

    def discard(self) -> None:
        """Forget the buffered bytes."""
        self._bytes, self._used = b"", 0

    def take(self, nbytes: int) -> bytes:
        """``nbytes`` bytes no one else gets."""
        start = self._used
        if start + nbytes > len(self._bytes):
            self._bytes, start = os.urandom(max(self.size, nbytes)), 0
        self._used = start + nbytes
        return self._bytes[start : start + nbytes]


_pool = RandomPool()


def new_object_id(prefix: str) -> str:
    """A new id such as ``appointment_0Vq3…``: time-ordered lead, then 96 random bits."""
    lead = now_ms()
    random_part = int.from_bytes(_pool.take(RANDOM_BITS // 8), "big")
    return prefix + encode_base62((lead << RANDOM_BITS) | random_part, _WIDTH)


#: The width of the ``id`` column; no id is longer.
MAX_ID_LENGTH = 64


def could_be_object_id(prefix: str, candidate: str) -> bool:
    """Whether ``candidate`` has the shape of an id with ``prefix`` (if not, nothing has it).

    Looking an id up only when it could exist keeps arbitrary path text away from SQL:
    PostgreSQL rejects a NUL in a text parameter with an error, where the client must simply
    get 404.
    """
    rest = candidate.removeprefix(prefix)
    return (
        rest != candidate
        and len(candidate) <= MAX_ID_LENGTH
        and rest.isascii()
        and rest.isalnum()  # on ASCII text: exactly the base-62 alphabet
    )


def new_random_token(nbytes: int = 32) -> str:
    """A URL-safe random token of ``nbytes`` fresh bytes from the CSPRNG, in base 62 (for
    secrets: keys, account ids)."""
    return _token(secrets.token_bytes(nbytes))


def new_request_id() -> str:
    """A request id: ``req_`` and 96 random bits in base 62."""
    return "req_" + _token(_pool.take(12))


def _token(random_bytes: bytes) -> str:
    width = math.ceil(len(random_bytes) * 8 / math.log2(62))
    return encode_base62(int.from_bytes(random_bytes, "big"), width)
