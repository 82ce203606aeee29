"""Identifiers: a prefix, a time-ordered lead and 96 bits from a CSPRNG.

The lead (milliseconds since the epoch) keeps new ids close together in the unique index; the
96 random bits make ids unguessable. Both are written in base 62 with a fixed width, in an
alphabet whose ASCII order matches the numeric order, so ids sort by creation time.
"""

from __future__ import annotations

import math
import secrets
import time

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_BITS = 96
_WIDTH = 25  # 62**25 > 2**(48 + 96): a 48-bit millisecond lead and the random bits


def encode_base62(number: int, width: int) -> str:
    """``number`` in base 62, left-padded with zeros to ``width`` characters."""
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(width, "0")


def new_object_id(prefix: str) -> str:
    """A new id such as ``appointment_0Vq3…``: time-ordered lead, then 96 random bits."""
    lead = time.time_ns() // 1_000_000
    return prefix + encode_base62((lead << RANDOM_BITS) | secrets.randbits(RANDOM_BITS), _WIDTH)


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
    """A URL-safe random token of ``nbytes`` bytes from the CSPRNG, in base 62."""
    width = math.ceil(nbytes * 8 / math.log2(62))
    return encode_base62(int.from_bytes(secrets.token_bytes(nbytes), "big"), width)
