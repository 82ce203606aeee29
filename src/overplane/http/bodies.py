"""Request bodies: read within the size cap, check the content type, decode.

The decoded fields are then checked by :func:`overplane.validation.fields.validate_fields`
(re-exported here), which the dashboard's forms use too. JSON decoding is msgspec's; we check
the decoded values ourselves rather than through a generated msgspec Struct because the
contract distinguishes error codes (missing, unknown, invalid) and fields that a Struct's
single error message does not.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec

from overplane.http.errors import (
    BodyInvalid,
    BodyTooLarge,
    ContentTypeUnsupported,
    ParameterInvalid,
)
from overplane.http.messages import ApiRequest
from overplane.validation.fields import validate_fields

__all__ = ["MAX_BODY_BYTES", "check_content_type", "decode_object", "read_body", "validate_fields"]

#: The contract's cap on a request body.
MAX_BODY_BYTES = 1_048_576

#: Floats decode as Decimal, so that a number too large for a float (1e400) still reaches
#: field validation and is reported against its field, like any other number.
_decoder = msgspec.json.Decoder(float_hook=Decimal)


def _too_large() -> BodyTooLarge:
    return BodyTooLarge(f"The request body is larger than {MAX_BODY_BYTES} bytes.")


async def read_body(request: ApiRequest) -> bytes:
    """The whole request body, refusing (413) to read more than the contract's cap.

    A declared Content-Length over the cap is refused before reading; a chunked body is
    counted as it arrives, so no more than the cap is ever held in memory.
    """
    declared = request.header(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":  # http.disconnect: nobody is left to answer
            raise BodyInvalid("The client disconnected before sending the whole body.")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def check_content_type(content_type: str | None, body: bytes) -> None:
    """Accept ``application/json`` (with an optional UTF-8 charset); 415 for anything else.

    A request that carries a body but no Content-Type is a 415 too; an empty body with no
    Content-Type falls through to the JSON check, which reports the missing object.
    """
    if content_type is None:
        if body:
            raise ContentTypeUnsupported(
                "Send the body as JSON with Content-Type: application/json."
            )
        return
    media_type, _, parameters = content_type.partition(";")
    if media_type.strip().lower() != "application/json":
        raise ContentTypeUnsupported(
            f"Content-Type {media_type.strip()!r} is not supported; use application/json."
        )
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in {
            "utf-8",
            "utf8",
        }:
            raise ContentTypeUnsupported("JSON bodies must be encoded as UTF-8.")


def decode_object(body: bytes) -> dict[str, Any]:
    """The body (already within the size cap, see :func:`read_body`) as a JSON object, or 400.

    Beyond msgspec's checks: a key sent twice is 400 ``body_invalid`` naming it (msgspec, like
    most parsers, keeps one of the values silently, and parsers disagree on which: a proxy
    that checked the other one would be fooled), and a ``\\ud800`` escape with no partner is
    400 ``parameter_invalid`` naming the field it was in.
    """
    if not body.strip():
        raise BodyInvalid("The request body must be a JSON object.")
    try:
        payload = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        _raise_lone_surrogate(body)
        raise BodyInvalid(f"The request body is not valid UTF-8 JSON: {exc}.") from None
    except UnicodeDecodeError:
        # msgspec reports bytes that are not UTF-8 inside a string with Python's own error.
        raise BodyInvalid("The request body is not valid UTF-8.") from None
    except RecursionError:
        # msgspec decodes nested arrays and objects recursively; a small body can nest deep
        # enough to exhaust the interpreter's stack.
        raise BodyInvalid("The request body is nested too deeply.") from None
    if not isinstance(payload, dict):
        raise BodyInvalid("The request body must be a JSON object.")
    if not _surely_without_duplicates(body, payload):
        _raise_duplicate_key(body)
    return payload


def _surely_without_duplicates(body: bytes, payload: dict[str, Any]) -> bool:
    """Whether ``body`` (which decoded to the flat ``payload``) cannot hold a key twice.

    The cheap proof, for the bodies clients send (one object of strings, nulls and other
    scalars, no backslash): every ``"`` then delimits a string, so the body holds
    ``count('"') / 2`` strings; each key and each string value of ``payload`` accounts for
    one, and a key sent twice leaves at least one more string in the body than in the
    decoded object. Anything else (an escape, a nested value) is checked by a second parse
    (:func:`_raise_duplicate_key`). Measured on a 147-byte create body: decoding went from
    0.5 to 1.4 µs, under 0.5 % of a create's time; a body with an escape takes the second
    parse, +6.5 µs (docs/performance.md, "Duplicate keys").
    """
    if b"\\" in body:
        return False
    strings = len(payload)
    for value in payload.values():
        if value.__class__ is str:
            strings += 1
        elif value.__class__ is dict or value.__class__ is list:
            return False
    return body.count(b'"') == 2 * strings


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json``'s object hook: the object, or :class:`_DuplicateKey` for a key sent twice."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _raise_duplicate_key(body: bytes) -> None:
    """400 ``body_invalid`` naming the first key that ``body`` (valid JSON) holds twice in
    one object; nothing if there is none.

    The standard library's parser hands each object over as its list of pairs, which
    msgspec cannot; it is slower, so only bodies the cheap proof could not clear come here.
    """
    try:
        json.loads(body, object_pairs_hook=_pairs_without_duplicates)
    except _DuplicateKey as duplicate:
        raise BodyInvalid(
            f"The request body holds the key {duplicate.key!r} more than once; send each key once.",
            param=duplicate.key,
        ) from None
    except (ValueError, RecursionError):  # msgspec accepted it; nothing more to say here
        return


def _has_lone_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _raise_lone_surrogate(body: bytes) -> None:
    """400 naming the field whose string holds a lone surrogate escape (``"\\ud800"``),
    if that is why msgspec refused ``body``; nothing otherwise.

    msgspec refuses such strings (as "truncated" or "malformed" data, without the field),
    while the standard library's parser accepts them, so it finds the field.
    """
    if b"\\u" not in body:
        return
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return
    if not isinstance(payload, dict):
        return
    for key, value in payload.items():
        if _has_lone_surrogate(key):
            raise BodyInvalid("A key of the request body holds an unpaired surrogate escape.")
        if _holds_lone_surrogate(value):
            raise ParameterInvalid(
                f"{key} must not contain unpaired surrogates (an escape such as \\ud800 "
                "without its partner).",
                param=key,
            )


def _holds_lone_surrogate(value: object) -> bool:
    if isinstance(value, str):
        return _has_lone_surrogate(value)
    if isinstance(value, list):
        return any(_holds_lone_surrogate(item) for item in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _holds_lone_surrogate(v) for k, v in value.items())
    return False
