"""messaging: templates, fatigue settings, messages, per-member contact rows, guide tasks

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28 11:36:46.114199
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fatigue_settings",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("marketing_per_day", sa.Integer(), nullable=False),
        sa.Column("marketing_per_week", sa.Integer(), nullable=False),
        sa.Column("channel_caps", siyu.db.JSONDocument(), nullable=False),
        sa.Column("quiet_start", sa.String(length=5), nullable=True),
        sa.Column("quiet_end", sa.String(length=5), nullable=True),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_fatigue_settings_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", name=op.f("pk_fatigue_settings")),
    )
    op.create_table(
        "guide_tasks",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("staff_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("due_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_guide_tasks_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_guide_tasks")),
        sa.UniqueConstraint("merchant_id", "key", name=op.f("uq_guide_tasks_merchant_id_key")),
    )
    with op.batch_alter_table("guide_tasks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_guide_tasks_merchant_id_member_id"), ["merchant_id", "member_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_guide_tasks_merchant_id_staff_id_status"),
            ["merchant_id", "staff_id", "status"],
            unique=False,
        )

    op.create_table(
        "message_contacts",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_message_contacts_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "member_id", name=op.f("pk_message_contacts")),
    )
    op.create_table(
        "message_templates",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("platform_template_id", sa.String(length=128), nullable=True),
        sa.Column("sms_template_code", sa.String(length=64), nullable=True),
        sa.Column("page", sa.String(length=500), nullable=True),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_message_templates_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_message_templates")),
    )
    op.create_table(
        "messages",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("template_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("send_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("local_day", sa.String(length=10), nullable=False),
        sa.Column("local_week", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("variables", siyu.db.JSONDocument(), nullable=True),
        sa.Column("provider_ref", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_messages_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_messages")),
        sa.UniqueConstraint("merchant_id", "key", name=op.f("uq_messages_merchant_id_key")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_messages_merchant_id_campaign_id_status"),
            ["merchant_id", "campaign_id", "status"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_messages_merchant_id_member_id_local_week"),
            ["merchant_id", "member_id", "local_week"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_merchant_id_member_id_local_week"))
        batch_op.drop_index(batch_op.f("ix_messages_merchant_id_campaign_id_status"))

    op.drop_table("messages")
    op.drop_table("message_templates")
    op.drop_table("message_contacts")
    with op.batch_alter_table("guide_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guide_tasks_merchant_id_staff_id_status"))
        batch_op.drop_index(batch_op.f("ix_guide_tasks_merchant_id_member_id"))

    op.drop_table("guide_tasks")
    op.drop_table("fatigue_settings")
