"""The ``crm`` module of the API."""

from overplane.declarations.resource import Field, Resource

APPOINTMENT = Resource(
    name="appointment",
    module="crm",
    id_prefix="appointment_",
    title="Appointment",
    plural="appointments",
    description="An appointment with a customer.",
    fields=(
        Field("customer_name", "The customer's name.", "customer_name_example", required=True),
        Field(
            "customer_phone_number", "The customer's phone number.", "customer_phone_number_example"
        ),
        Field("customer_skype", "The customer's Skype name.", "customer_skype_example"),
        Field(
            "customer_details",
            "Free-form notes about the customer.",
            "customer_details_example",
            max_length=65535,
        ),
        Field(
            "scheduled_time",
            "When the appointment takes place. Any string is accepted and returned as sent; "
            "values that are RFC 3339 date-times can also be filtered by range.",
            "scheduled_time_example",
            required=True,
            time_range=True,
        ),
        Field(
            "status",
            "The appointment's status, for example draft.",
            "draft",
            required=True,
            indexed=True,
        ),
        Field("calendar_event", "A reference to a calendar event.", "calendar_event_example"),
        Field(
            "customer_email",
            "The customer's e-mail address.",
            "customer@example.com",
            required=True,
            indexed=True,
        ),
        Field(
            "appointment_with", "Who the customer meets.", "appointment_with_example", indexed=True
        ),
        Field("party", "The party the appointment belongs to.", "party_example", indexed=True),
    ),
)
