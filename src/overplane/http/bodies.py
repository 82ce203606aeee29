"""Request bodies: read within the size cap, check the content type, decode.

The decoded fields are then checked by :func:`overplane.validation.fields.validate_fields`
(re-exported here), which the dashboard's forms use too. JSON decoding is msgspec's; we check
the decoded values ourselves rather than through a generated msgspec Struct because the
contract distinguishes error codes (missing, unknown, invalid) and fields that a Struct's
single error message does not.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from overplane.http.errors import BodyInvalid, BodyTooLarge, ContentTypeUnsupported
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
    """The body (already within the size cap, see :func:`read_body`) as a JSON object, or 400
    body_invalid."""
    if not body.strip():
        raise BodyInvalid("The request body must be a JSON object.")
    try:
        payload = _decoder.decode(body)
    except msgspec.DecodeError as exc:
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
    return payload
