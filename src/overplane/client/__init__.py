"""The Python client of the Overplane API: ``Client`` and ``AsyncClient``.

::

    from overplane import Client

    client = Client()  # OVERPLANE_API_KEY, OVERPLANE_BASE_URL
    appointment = client.appointments.create(customer_name="Ada", ...)
    for appointment in client.appointments.list(status="draft").auto_paging_iter():
        print(appointment.id, appointment.scheduled_time)

It imports nothing of the server (no storage, no HTTP app, no database driver): an application
that only calls the API installs ``overplane`` without the ``server`` extra. See docs/client.md.
"""

from overplane.client.calls import NOT_GIVEN, NotGiven, RetryPolicy
from overplane.client.clients import AsyncClient, Client
from overplane.client.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ConflictError,
    IdempotencyError,
    InvalidRequestError,
    NotFoundError,
    OverplaneError,
    PreconditionFailedError,
    RateLimitError,
)
from overplane.client.namespaces import IsNull, Range, RangeOrNull
from overplane.client.objects import (
    APIObject,
    AsyncPage,
    CalendarFeed,
    Deleted,
    Event,
    Page,
    Redelivered,
    WebhookAttempt,
    WebhookEndpoint,
)
from overplane.client.resources import Appointment, PartyLink
from overplane.webhooks.signature import (
    SIGNATURE_HEADER,
    SignatureVerificationError,
    verify,
)

__all__ = [
    "NOT_GIVEN",
    "SIGNATURE_HEADER",
    "APIConnectionError",
    "APIError",
    "APIObject",
    "Appointment",
    "AsyncClient",
    "AsyncPage",
    "AuthenticationError",
    "CalendarFeed",
    "Client",
    "ConflictError",
    "Deleted",
    "Event",
    "IdempotencyError",
    "InvalidRequestError",
    "IsNull",
    "NotFoundError",
    "NotGiven",
    "OverplaneError",
    "Page",
    "PartyLink",
    "PreconditionFailedError",
    "Range",
    "RangeOrNull",
    "RateLimitError",
    "Redelivered",
    "RetryPolicy",
    "SignatureVerificationError",
    "WebhookAttempt",
    "WebhookEndpoint",
    "verify",
]
