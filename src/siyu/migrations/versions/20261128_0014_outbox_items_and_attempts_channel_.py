"""outbox items and attempts; channel configurations and the delivery log

Revision ID: 0014
Revises: 0012
Create Date: 2026-11-28 11:08:18.960265
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0014"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_configs",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("settings", siyu.db.JSONDocument(), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=True),
        sa.Column("secret_hint", sa.String(length=32), nullable=True),
        sa.Column("previous_secret_sealed", sa.Text(), nullable=True),
        sa.Column("previous_valid_until", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_channel_configs_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "channel", name=op.f("pk_channel_configs")),
    )
    op.create_table(
        "channel_deliveries",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=True),
        sa.Column("attempted_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("permanent", sa.Boolean(), nullable=False),
        sa.Column("recorded_only", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("provider_code", sa.String(length=128), nullable=True),
        sa.Column("provider_ref", sa.String(length=128), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_channel_deliveries_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_channel_deliveries")),
    )
    with op.batch_alter_table("channel_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_channel_deliveries_merchant_id_channel_id"),
            ["merchant_id", "channel", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_channel_deliveries_merchant_id_key"), ["merchant_id", "key"], unique=False
        )

    op.create_table(
        "outbox_items",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("payload", siyu.db.JSONDocument(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_outbox_items_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_outbox_items")),
        sa.UniqueConstraint("merchant_id", "key", name=op.f("uq_outbox_items_merchant_id_key")),
    )
    with op.batch_alter_table("outbox_items", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_items_claim", ["status", "available_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_outbox_items_merchant_id_status_id"), ["merchant_id", "status", "id"], unique=False
        )

    op.create_table(
        "outbox_attempts",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=False),
        sa.Column("started_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id", "item_id"],
            ["outbox_items.merchant_id", "outbox_items.id"],
            name=op.f("fk_outbox_attempts_merchant_id_item_id_outbox_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_outbox_attempts")),
    )
    with op.batch_alter_table("outbox_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_attempts_merchant_id_item_id_id"),
            ["merchant_id", "item_id", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_attempts_merchant_id_item_id_id"))

    op.drop_table("outbox_attempts")
    with op.batch_alter_table("outbox_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_items_merchant_id_status_id"))
        batch_op.drop_index("ix_outbox_items_claim")

    op.drop_table("outbox_items")
    with op.batch_alter_table("channel_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_deliveries_merchant_id_key"))
        batch_op.drop_index(batch_op.f("ix_channel_deliveries_merchant_id_channel_id"))

    op.drop_table("channel_deliveries")
    op.drop_table("channel_configs")
