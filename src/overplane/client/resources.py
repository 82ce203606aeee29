"""Typed objects and namespaces of the shipped resources. GENERATED from the declarations by
``python -m overplane.client.generate``: do not edit (tests/test_client.py fails when stale).
"""

from __future__ import annotations

from typing import Any

from overplane.client.calls import NOT_GIVEN, NotGiven
from overplane.client.namespaces import (
    AsyncSender,
    IsNull,
    Range,
    RangeOrNull,
    ResourceCalls,
    Sender,
    list_request,
)
from overplane.client.objects import APIObject, AsyncPage, Deleted, Page


class PartyLink(APIObject):
    """A link between two parties, each in a role."""

    __slots__ = ()
    OBJECT = "party_link"
    id: str
    created_at: str
    updated_at: str
    primary_role: str
    secondary_role: str | None
    primary_party: str | None
    secondary_party: str | None


class PartyLinks(ResourceCalls[PartyLink]):
    """``client.party_links``: party links at ``/api/accounts/party-link``."""

    def __init__(self, client: Sender) -> None:
        super().__init__("/api/accounts/party-link", PartyLink)
        self._client = client

    def create(
        self,
        *,
        primary_role: str,
        secondary_role: str | NotGiven | None = NOT_GIVEN,
        primary_party: str | NotGiven | None = NOT_GIVEN,
        secondary_party: str | NotGiven | None = NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> PartyLink:
        """Create a party link (a retry reuses ``idempotency_key``: never two)."""
        fields: dict[str, Any] = {
            "primary_role": primary_role,
            "secondary_role": secondary_role,
            "primary_party": primary_party,
            "secondary_party": secondary_party,
        }
        return self._client.send(self._create_call(fields, idempotency_key))

    def retrieve(self, id: str, /) -> PartyLink:
        """The party link with this id."""
        return self._client.send(self._retrieve_call(id))

    def update(
        self,
        id: str,
        /,
        *,
        primary_role: str | NotGiven = NOT_GIVEN,
        secondary_role: str | NotGiven | None = NOT_GIVEN,
        primary_party: str | NotGiven | None = NOT_GIVEN,
        secondary_party: str | NotGiven | None = NOT_GIVEN,
        if_match: str | None = None,
        idempotency_key: str | None = None,
    ) -> PartyLink:
        """Set the fields given (None clears an optional one); with ``if_match``, only if the
        party link has not changed since that ETag."""
        fields: dict[str, Any] = {
            "primary_role": primary_role,
            "secondary_role": secondary_role,
            "primary_party": primary_party,
            "secondary_party": secondary_party,
        }
        call = self._update_call(id, fields, if_match, idempotency_key)
        return self._client.send(call)

    def delete(
        self, id: str, /, *, if_match: str | None = None, idempotency_key: str | None = None
    ) -> Deleted:
        """Delete the party link for good."""
        return self._client.send(self._delete_call(id, if_match, idempotency_key))

    def list(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        primary_role: str | IsNull | None = None,
        secondary_role: str | IsNull | None = None,
        primary_party: str | IsNull | None = None,
        secondary_party: str | IsNull | None = None,
        created_at: Range | None = None,
        updated_at: Range | None = None,
    ) -> Page[PartyLink]:
        """A page of party links, newest first; ``.auto_paging_iter()`` walks them all."""
        filters: dict[str, Any] = {
            "primary_role": primary_role,
            "secondary_role": secondary_role,
            "primary_party": primary_party,
            "secondary_party": secondary_party,
            "created_at": created_at,
            "updated_at": updated_at,
        }
        request = list_request(self.path, limit, offset, starting_after, ending_before, filters)
        return self._client.list_page(request, PartyLink)


class AsyncPartyLinks(ResourceCalls[PartyLink]):
    """``client.party_links``: party links at ``/api/accounts/party-link``."""

    def __init__(self, client: AsyncSender) -> None:
        super().__init__("/api/accounts/party-link", PartyLink)
        self._client = client

    async def create(
        self,
        *,
        primary_role: str,
        secondary_role: str | NotGiven | None = NOT_GIVEN,
        primary_party: str | NotGiven | None = NOT_GIVEN,
        secondary_party: str | NotGiven | None = NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> PartyLink:
        """Create a party link (a retry reuses ``idempotency_key``: never two)."""
        fields: dict[str, Any] = {
            "primary_role": primary_role,
            "secondary_role": secondary_role,
            "primary_party": primary_party,
            "secondary_party": secondary_party,
        }
        return await self._client.send(self._create_call(fields, idempotency_key))

    async def retrieve(self, id: str, /) -> PartyLink:
        """The party link with this id."""
        return await self._client.send(self._retrieve_call(id))

    async def update(
        self,
        id: str,
        /,
        *,
        primary_role: str | NotGiven = NOT_GIVEN,
        secondary_role: str | NotGiven | None = NOT_GIVEN,
        primary_party: str | NotGiven | None = NOT_GIVEN,
        secondary_party: str | NotGiven | None = NOT_GIVEN,
        if_match: str | None = None,
        idempotency_key: str | None = None,
    ) -> PartyLink:
        """Set the fields given (None clears an optional one); with ``if_match``, only if the
        party link has not changed since that ETag."""
        fields: dict[str, Any] = {
            "primary_role": primary_role,
            "secondary_role": secondary_role,
            "primary_party": primary_party,
            "secondary_party": secondary_party,
        }
        call = self._update_call(id, fields, if_match, idempotency_key)
        return await self._client.send(call)

    async def delete(
        self, id: str, /, *, if_match: str | None = None, idempotency_key: str | None = None
    ) -> Deleted:
        """Delete the party link for good."""
        return await self._client.send(self._delete_call(id, if_match, idempotency_key))

    async def list(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        primary_role: str | IsNull | None = None,
        secondary_role: str | IsNull | None = None,
        primary_party: str | IsNull | None = None,
        secondary_party: str | IsNull | None = None,
        created_at: Range | None = None,
        updated_at: Range | None = None,
    ) -> AsyncPage[PartyLink]:
        """A page of party links, newest first; ``.auto_paging_iter()`` walks them all."""
        filters: dict[str, Any] = {
            "primary_role": primary_role,
            "secondary_role": secondary_role,
            "primary_party": primary_party,
            "secondary_party": secondary_party,
            "created_at": created_at,
            "updated_at": updated_at,
        }
        request = list_request(self.path, limit, offset, starting_after, ending_before, filters)
        return await self._client.list_page(request, PartyLink)


class Appointment(APIObject):
    """An appointment with a customer."""

    __slots__ = ()
    OBJECT = "appointment"
    id: str
    created_at: str
    updated_at: str
    customer_name: str
    customer_phone_number: str | None
    customer_skype: str | None
    customer_details: str | None
    scheduled_time: str
    status: str
    calendar_event: str | None
    customer_email: str
    appointment_with: str | None
    party: str | None


class Appointments(ResourceCalls[Appointment]):
    """``client.appointments``: appointments at ``/api/crm/appointment``."""

    def __init__(self, client: Sender) -> None:
        super().__init__("/api/crm/appointment", Appointment)
        self._client = client

    def create(
        self,
        *,
        customer_name: str,
        scheduled_time: str,
        status: str,
        customer_email: str,
        customer_phone_number: str | NotGiven | None = NOT_GIVEN,
        customer_skype: str | NotGiven | None = NOT_GIVEN,
        customer_details: str | NotGiven | None = NOT_GIVEN,
        calendar_event: str | NotGiven | None = NOT_GIVEN,
        appointment_with: str | NotGiven | None = NOT_GIVEN,
        party: str | NotGiven | None = NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> Appointment:
        """Create an appointment (a retry reuses ``idempotency_key``: never two)."""
        fields: dict[str, Any] = {
            "customer_name": customer_name,
            "customer_phone_number": customer_phone_number,
            "customer_skype": customer_skype,
            "customer_details": customer_details,
            "scheduled_time": scheduled_time,
            "status": status,
            "calendar_event": calendar_event,
            "customer_email": customer_email,
            "appointment_with": appointment_with,
            "party": party,
        }
        return self._client.send(self._create_call(fields, idempotency_key))

    def retrieve(self, id: str, /) -> Appointment:
        """The appointment with this id."""
        return self._client.send(self._retrieve_call(id))

    def update(
        self,
        id: str,
        /,
        *,
        customer_name: str | NotGiven = NOT_GIVEN,
        customer_phone_number: str | NotGiven | None = NOT_GIVEN,
        customer_skype: str | NotGiven | None = NOT_GIVEN,
        customer_details: str | NotGiven | None = NOT_GIVEN,
        scheduled_time: str | NotGiven = NOT_GIVEN,
        status: str | NotGiven = NOT_GIVEN,
        calendar_event: str | NotGiven | None = NOT_GIVEN,
        customer_email: str | NotGiven = NOT_GIVEN,
        appointment_with: str | NotGiven | None = NOT_GIVEN,
        party: str | NotGiven | None = NOT_GIVEN,
        if_match: str | None = None,
        idempotency_key: str | None = None,
    ) -> Appointment:
        """Set the fields given (None clears an optional one); with ``if_match``, only if the
        appointment has not changed since that ETag."""
        fields: dict[str, Any] = {
            "customer_name": customer_name,
            "customer_phone_number": customer_phone_number,
            "customer_skype": customer_skype,
            "customer_details": customer_details,
            "scheduled_time": scheduled_time,
            "status": status,
            "calendar_event": calendar_event,
            "customer_email": customer_email,
            "appointment_with": appointment_with,
            "party": party,
        }
        call = self._update_call(id, fields, if_match, idempotency_key)
        return self._client.send(call)

    def delete(
        self, id: str, /, *, if_match: str | None = None, idempotency_key: str | None = None
    ) -> Deleted:
        """Delete the appointment for good."""
        return self._client.send(self._delete_call(id, if_match, idempotency_key))

    def list(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        customer_name: str | IsNull | None = None,
        customer_phone_number: str | IsNull | None = None,
        customer_skype: str | IsNull | None = None,
        customer_details: str | IsNull | None = None,
        scheduled_time: str | RangeOrNull | None = None,
        status: str | IsNull | None = None,
        calendar_event: str | IsNull | None = None,
        customer_email: str | IsNull | None = None,
        appointment_with: str | IsNull | None = None,
        party: str | IsNull | None = None,
        created_at: Range | None = None,
        updated_at: Range | None = None,
    ) -> Page[Appointment]:
        """A page of appointments, newest first; ``.auto_paging_iter()`` walks them all."""
        filters: dict[str, Any] = {
            "customer_name": customer_name,
            "customer_phone_number": customer_phone_number,
            "customer_skype": customer_skype,
            "customer_details": customer_details,
            "scheduled_time": scheduled_time,
            "status": status,
            "calendar_event": calendar_event,
            "customer_email": customer_email,
            "appointment_with": appointment_with,
            "party": party,
            "created_at": created_at,
            "updated_at": updated_at,
        }
        request = list_request(self.path, limit, offset, starting_after, ending_before, filters)
        return self._client.list_page(request, Appointment)


class AsyncAppointments(ResourceCalls[Appointment]):
    """``client.appointments``: appointments at ``/api/crm/appointment``."""

    def __init__(self, client: AsyncSender) -> None:
        super().__init__("/api/crm/appointment", Appointment)
        self._client = client

    async def create(
        self,
        *,
        customer_name: str,
        scheduled_time: str,
        status: str,
        customer_email: str,
        customer_phone_number: str | NotGiven | None = NOT_GIVEN,
        customer_skype: str | NotGiven | None = NOT_GIVEN,
        customer_details: str | NotGiven | None = NOT_GIVEN,
        calendar_event: str | NotGiven | None = NOT_GIVEN,
        appointment_with: str | NotGiven | None = NOT_GIVEN,
        party: str | NotGiven | None = NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> Appointment:
        """Create an appointment (a retry reuses ``idempotency_key``: never two)."""
        fields: dict[str, Any] = {
            "customer_name": customer_name,
            "customer_phone_number": customer_phone_number,
            "customer_skype": customer_skype,
            "customer_details": customer_details,
            "scheduled_time": scheduled_time,
            "status": status,
            "calendar_event": calendar_event,
            "customer_email": customer_email,
            "appointment_with": appointment_with,
            "party": party,
        }
        return await self._client.send(self._create_call(fields, idempotency_key))

    async def retrieve(self, id: str, /) -> Appointment:
        """The appointment with this id."""
        return await self._client.send(self._retrieve_call(id))

    async def update(
        self,
        id: str,
        /,
        *,
        customer_name: str | NotGiven = NOT_GIVEN,
        customer_phone_number: str | NotGiven | None = NOT_GIVEN,
        customer_skype: str | NotGiven | None = NOT_GIVEN,
        customer_details: str | NotGiven | None = NOT_GIVEN,
        scheduled_time: str | NotGiven = NOT_GIVEN,
        status: str | NotGiven = NOT_GIVEN,
        calendar_event: str | NotGiven | None = NOT_GIVEN,
        customer_email: str | NotGiven = NOT_GIVEN,
        appointment_with: str | NotGiven | None = NOT_GIVEN,
        party: str | NotGiven | None = NOT_GIVEN,
        if_match: str | None = None,
        idempotency_key: str | None = None,
    ) -> Appointment:
        """Set the fields given (None clears an optional one); with ``if_match``, only if the
        appointment has not changed since that ETag."""
        fields: dict[str, Any] = {
            "customer_name": customer_name,
            "customer_phone_number": customer_phone_number,
            "customer_skype": customer_skype,
            "customer_details": customer_details,
            "scheduled_time": scheduled_time,
            "status": status,
            "calendar_event": calendar_event,
            "customer_email": customer_email,
            "appointment_with": appointment_with,
            "party": party,
        }
        call = self._update_call(id, fields, if_match, idempotency_key)
        return await self._client.send(call)

    async def delete(
        self, id: str, /, *, if_match: str | None = None, idempotency_key: str | None = None
    ) -> Deleted:
        """Delete the appointment for good."""
        return await self._client.send(self._delete_call(id, if_match, idempotency_key))

    async def list(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        customer_name: str | IsNull | None = None,
        customer_phone_number: str | IsNull | None = None,
        customer_skype: str | IsNull | None = None,
        customer_details: str | IsNull | None = None,
        scheduled_time: str | RangeOrNull | None = None,
        status: str | IsNull | None = None,
        calendar_event: str | IsNull | None = None,
        customer_email: str | IsNull | None = None,
        appointment_with: str | IsNull | None = None,
        party: str | IsNull | None = None,
        created_at: Range | None = None,
        updated_at: Range | None = None,
    ) -> AsyncPage[Appointment]:
        """A page of appointments, newest first; ``.auto_paging_iter()`` walks them all."""
        filters: dict[str, Any] = {
            "customer_name": customer_name,
            "customer_phone_number": customer_phone_number,
            "customer_skype": customer_skype,
            "customer_details": customer_details,
            "scheduled_time": scheduled_time,
            "status": status,
            "calendar_event": calendar_event,
            "customer_email": customer_email,
            "appointment_with": appointment_with,
            "party": party,
            "created_at": created_at,
            "updated_at": updated_at,
        }
        request = list_request(self.path, limit, offset, starting_after, ending_before, filters)
        return await self._client.list_page(request, Appointment)


class ResourceNamespaces:
    """The shipped resources' namespaces of :class:`~overplane.client.Client`."""

    party_links: PartyLinks
    appointments: Appointments


class AsyncResourceNamespaces:
    """The shipped resources' namespaces of :class:`~overplane.client.AsyncClient`."""

    party_links: AsyncPartyLinks
    appointments: AsyncAppointments


#: Collection path -> (sync namespace, async namespace, object class).
GENERATED: dict[str, tuple[Any, Any, type[APIObject]]] = {
    "/api/accounts/party-link": (PartyLinks, AsyncPartyLinks, PartyLink),
    "/api/crm/appointment": (Appointments, AsyncAppointments, Appointment),
}
