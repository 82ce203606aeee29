"""filter indexes only on fields declared indexed

Every filterable field used to have an index, each written by every create: an appointment
insert maintained 14 indexes. Now only fields declared ``indexed=True`` keep theirs; filters
on the others read the list index (docs/api.md, "Which equality filters are indexed").

Written by ``overplane migrations new`` from the declarations; every value is a literal,
so this file does not change when live code does.

- changed table accounts_party_link
- changed table crm_appointment

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_accounts_party_link_primary_role", table_name="accounts_party_link")
    op.drop_index("ix_accounts_party_link_secondary_role", table_name="accounts_party_link")
    op.drop_index("ix_crm_appointment_customer_name", table_name="crm_appointment")
    op.drop_index("ix_crm_appointment_customer_phone_number", table_name="crm_appointment")
    op.drop_index("ix_crm_appointment_customer_skype", table_name="crm_appointment")
    op.drop_index("ix_crm_appointment_customer_details", table_name="crm_appointment")
    op.drop_index("ix_crm_appointment_scheduled_time", table_name="crm_appointment")
    op.drop_index("ix_crm_appointment_calendar_event", table_name="crm_appointment")


def downgrade() -> None:
    raise NotImplementedError(
        "written by overplane migrations new: this change is not reversed automatically"
    )
