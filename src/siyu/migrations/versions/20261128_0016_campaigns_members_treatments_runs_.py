"""campaigns: campaigns, their members (treatment/holdout), treatments, broadcast runs, trigger entries

Revision ID: 0016
Revises: 0013, 0015
Create Date: 2026-11-28 11:05:26.875044
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0016"
down_revision: str | tuple[str, ...] | None = ("0013", "0015")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("goal", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("audience_segment_id", sa.String(length=40), nullable=True),
        sa.Column("audience_rule", siyu.db.JSONDocument(), nullable=True),
        sa.Column("holdout_bp", sa.Integer(), nullable=False),
        sa.Column("variants", siyu.db.JSONDocument(), nullable=False),
        sa.Column("schedule", siyu.db.JSONDocument(), nullable=True),
        sa.Column("trigger", siyu.db.JSONDocument(), nullable=True),
        sa.Column("journey", siyu.db.JSONDocument(), nullable=True),
        sa.Column("placement", sa.String(length=32), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("budget_coupons", sa.BigInteger(), nullable=True),
        sa.Column("budget_points", sa.BigInteger(), nullable=True),
        sa.Column("budget_fen", sa.BigInteger(), nullable=True),
        sa.Column("spent_coupons", sa.BigInteger(), nullable=False),
        sa.Column("spent_points", sa.BigInteger(), nullable=False),
        sa.Column("spent_fen", sa.BigInteger(), nullable=False),
        sa.Column("attribution_days", sa.Integer(), nullable=False),
        sa.Column("recall", sa.Boolean(), nullable=False),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_campaigns_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_campaigns")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaigns_merchant_id_placement_status"),
            ["merchant_id", "placement", "status"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_campaigns_merchant_id_status_kind"),
            ["merchant_id", "status", "kind"],
            unique=False,
        )

    op.create_table(
        "campaign_members",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("group", sa.String(length=16), nullable=False),
        sa.Column("variant", sa.String(length=32), nullable=True),
        sa.Column("assigned_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("treated_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id", "campaign_id"],
            ["campaigns.merchant_id", "campaigns.id"],
            name=op.f("fk_campaign_members_merchant_id_campaign_id_campaigns"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id", "member_id"],
            ["members.merchant_id", "members.id"],
            name=op.f("fk_campaign_members_merchant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", "campaign_id", "member_id", name=op.f("pk_campaign_members")),
    )
    with op.batch_alter_table("campaign_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaign_members_merchant_id_campaign_id_group"),
            ["merchant_id", "campaign_id", "group"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_campaign_members_merchant_id_member_id"),
            ["merchant_id", "member_id"],
            unique=False,
        )

    op.create_table(
        "campaign_runs",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=False),
        sa.Column("occurrence", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("snapshot_id", sa.String(length=40), nullable=True),
        sa.Column("cursor", sa.String(length=64), nullable=True),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("treated", sa.Integer(), nullable=False),
        sa.Column("due_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id", "campaign_id"],
            ["campaigns.merchant_id", "campaigns.id"],
            name=op.f("fk_campaign_runs_merchant_id_campaign_id_campaigns"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", "campaign_id", "occurrence", name=op.f("pk_campaign_runs")),
    )
    with op.batch_alter_table("campaign_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaign_runs_merchant_id_status"), ["merchant_id", "status"], unique=False
        )

    op.create_table(
        "campaign_treatments",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("variant", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("cost_fen", sa.BigInteger(), nullable=False),
        sa.Column("at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id", "campaign_id"],
            ["campaigns.merchant_id", "campaigns.id"],
            name=op.f("fk_campaign_treatments_merchant_id_campaign_id_campaigns"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_campaign_treatments")),
        sa.UniqueConstraint("merchant_id", "key", name=op.f("uq_campaign_treatments_merchant_id_key")),
    )
    with op.batch_alter_table("campaign_treatments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaign_treatments_merchant_id_campaign_id_member_id"),
            ["merchant_id", "campaign_id", "member_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_campaign_treatments_merchant_id_campaign_id_status"),
            ["merchant_id", "campaign_id", "status"],
            unique=False,
        )

    op.create_table(
        "campaign_trigger_entries",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("occurrence", sa.String(length=140), nullable=False),
        sa.Column("due_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("processed_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id", "campaign_id"],
            ["campaigns.merchant_id", "campaigns.id"],
            name=op.f("fk_campaign_trigger_entries_merchant_id_campaign_id_campaigns"),
        ),
        sa.PrimaryKeyConstraint(
            "merchant_id", "campaign_id", "member_id", "occurrence", name=op.f("pk_campaign_trigger_entries")
        ),
    )
    with op.batch_alter_table("campaign_trigger_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaign_trigger_entries_merchant_id_status_due_at"),
            ["merchant_id", "status", "due_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("campaign_trigger_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_trigger_entries_merchant_id_status_due_at"))

    op.drop_table("campaign_trigger_entries")
    with op.batch_alter_table("campaign_treatments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_treatments_merchant_id_campaign_id_status"))
        batch_op.drop_index(batch_op.f("ix_campaign_treatments_merchant_id_campaign_id_member_id"))

    op.drop_table("campaign_treatments")
    with op.batch_alter_table("campaign_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_runs_merchant_id_status"))

    op.drop_table("campaign_runs")
    with op.batch_alter_table("campaign_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_members_merchant_id_member_id"))
        batch_op.drop_index(batch_op.f("ix_campaign_members_merchant_id_campaign_id_group"))

    op.drop_table("campaign_members")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_merchant_id_status_kind"))
        batch_op.drop_index(batch_op.f("ix_campaigns_merchant_id_placement_status"))

    op.drop_table("campaigns")
