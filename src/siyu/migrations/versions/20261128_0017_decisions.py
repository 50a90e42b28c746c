"""Decisions: the payment-success-page decisions, their per-campaign settings and per-day caps.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-28 11:39:17.043345
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "decision_caps",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("local_day", sa.String(length=10), nullable=False),
        sa.Column("shown", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "merchant_id", "campaign_id", "member_id", "local_day", name=op.f("pk_decision_caps")
        ),
    )
    op.create_table(
        "decision_settings",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=False),
        sa.Column("min_amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("store_ids", siyu.db.JSONDocument(), nullable=False),
        sa.Column("channels", siyu.db.JSONDocument(), nullable=False),
        sa.Column("per_member_per_day", sa.Integer(), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id", "campaign_id"],
            ["campaigns.merchant_id", "campaigns.id"],
            name=op.f("fk_decision_settings_merchant_id_campaign_id_campaigns"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", "campaign_id", name=op.f("pk_decision_settings")),
    )
    op.create_table(
        "decisions",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=True),
        sa.Column("variant", sa.String(length=32), nullable=True),
        sa.Column("group", sa.String(length=16), nullable=True),
        sa.Column("template_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("store_id", sa.String(length=40), nullable=True),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("local_day", sa.String(length=10), nullable=False),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("coupon_id", sa.String(length=40), nullable=True),
        sa.Column("reserved_fen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id", "member_id"],
            ["members.merchant_id", "members.id"],
            name=op.f("fk_decisions_merchant_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_decisions_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_decisions")),
        sa.UniqueConstraint("merchant_id", "order_id", name=op.f("uq_decisions_merchant_id_order_id")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_decisions_merchant_id_campaign_id_status"),
            ["merchant_id", "campaign_id", "status"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_decisions_merchant_id_member_id_campaign_id_local_day"),
            ["merchant_id", "member_id", "campaign_id", "local_day"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_decisions_merchant_id_status_created_at"),
            ["merchant_id", "status", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_merchant_id_status_created_at"))
        batch_op.drop_index(batch_op.f("ix_decisions_merchant_id_member_id_campaign_id_local_day"))
        batch_op.drop_index(batch_op.f("ix_decisions_merchant_id_campaign_id_status"))

    op.drop_table("decisions")
    op.drop_table("decision_settings")
    op.drop_table("decision_caps")
