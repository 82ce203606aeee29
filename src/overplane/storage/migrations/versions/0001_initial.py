"""Accounts, API keys, party links and appointments.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Sequence64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _object_table(name: str, fields: dict[str, int]) -> None:
    op.create_table(
        name,
        sa.Column("seq", Sequence64, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        *(sa.Column(field, sa.String(length), nullable=True) for field, length in fields.items()),
    )
    op.create_index(f"ix_{name}_list", name, ["account_id", "livemode", "created_at", "seq"])


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(64), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hint", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
    )
    _object_table(
        "accounts_party_link",
        {
            "primary_role": 1000,
            "secondary_role": 1000,
            "primary_party": 1000,
            "secondary_party": 1000,
        },
    )
    _object_table(
        "crm_appointment",
        {
            "customer_name": 1000,
            "customer_phone_number": 1000,
            "customer_skype": 1000,
            "customer_details": 65535,
            "scheduled_time": 1000,
            "status": 1000,
            "calendar_event": 1000,
            "customer_email": 1000,
            "appointment_with": 1000,
            "party": 1000,
        },
    )


def downgrade() -> None:
    op.drop_table("crm_appointment")
    op.drop_table("accounts_party_link")
    op.drop_table("api_keys")
    op.drop_table("accounts")
