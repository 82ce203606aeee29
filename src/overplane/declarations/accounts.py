"""The ``accounts`` module of the API."""

from overplane.declarations.resource import Field, Resource

PARTY_LINK = Resource(
    name="party-link",
    module="accounts",
    id_prefix="party-link_",
    title="Party Link",
    plural="party links",
    description="A link between two parties, each in a role.",
    fields=(
        Field(
            "primary_role", "The role of the primary party.", "primary_role_example", required=True
        ),
        Field("secondary_role", "The role of the secondary party.", "secondary_role_example"),
        Field("primary_party", "The primary party.", "primary_party_example", indexed=True),
        Field("secondary_party", "The secondary party.", "secondary_party_example", indexed=True),
    ),
)
