"""Webhooks: signing and verifying deliveries, and sending them safely.

``import overplane.webhooks`` loads only the standard library, so a receiver can use
``overplane.webhooks.verify`` without the server's dependencies. The sending side
(``addresses``, ``sender``) is imported explicitly by the server.
"""

from overplane.webhooks.signature import (
    DEFAULT_TOLERANCE,
    SIGNATURE_HEADER,
    SignatureVerificationError,
    sign,
    verify,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "SignatureVerificationError",
    "sign",
    "verify",
]
