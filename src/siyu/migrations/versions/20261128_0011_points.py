"""points ledger, lots, earn rules and the points mall

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "goods_vouchers",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("exchange_id", sa.String(length=40), nullable=False),
        sa.Column("item_name", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("issued_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("used_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_goods_vouchers_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_goods_vouchers")),
        sa.UniqueConstraint("merchant_id", "code", name=op.f("uq_goods_vouchers_merchant_id_code")),
    )
    op.create_index(
        op.f("ix_goods_vouchers_merchant_id_member_id_id"),
        "goods_vouchers",
        ["merchant_id", "member_id", "id"],
        unique=False,
    )
    op.create_table(
        "mall_exchanges",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("coupon_id", sa.String(length=40), nullable=True),
        sa.Column("coupon_code", sa.String(length=64), nullable=True),
        sa.Column("voucher_code", sa.String(length=32), nullable=True),
        sa.Column("at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_mall_exchanges_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_mall_exchanges")),
        sa.UniqueConstraint("merchant_id", "key", name=op.f("uq_mall_exchanges_merchant_id_key")),
    )
    op.create_index(
        op.f("ix_mall_exchanges_merchant_id_member_id_id"),
        "mall_exchanges",
        ["merchant_id", "member_id", "id"],
        unique=False,
    )
    op.create_table(
        "mall_items",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("cost_points", sa.Integer(), nullable=False),
        sa.Column("coupon_template_id", sa.String(length=40), nullable=True),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("per_member_limit", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("valid_from", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("valid_until", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_mall_items_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_mall_items")),
    )
    op.create_table(
        "points_rules",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("daily_cap", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_points_rules_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_points_rules")),
        sa.UniqueConstraint("merchant_id", "event_type", name=op.f("uq_points_rules_merchant_id_event_type")),
    )
    op.create_table(
        "points_settings",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("points_per_yuan", sa.Integer(), nullable=False),
        sa.Column("expiry_policy", sa.String(length=32), nullable=False),
        sa.Column("expiry_days", sa.Integer(), nullable=True),
        sa.Column("allow_negative", sa.Boolean(), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_points_settings_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", name=op.f("pk_points_settings")),
    )
    op.create_table(
        "mall_member_counts",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id", "item_id"],
            ["mall_items.merchant_id", "mall_items.id"],
            name=op.f("fk_mall_member_counts_merchant_id_item_id_mall_items"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", "item_id", "member_id", name=op.f("pk_mall_member_counts")),
    )
    op.create_table(
        "points_accounts",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("balance", sa.Integer(), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id", "member_id"],
            ["members.merchant_id", "members.id"],
            name=op.f("fk_points_accounts_merchant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", "member_id", name=op.f("pk_points_accounts")),
    )
    op.create_table(
        "points_entries",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("balance_after", sa.Integer(), nullable=False),
        sa.Column("shortfall", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("amount_fen", sa.Integer(), nullable=True),
        sa.Column("action_type", sa.String(length=64), nullable=True),
        sa.Column("at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id", "member_id"],
            ["members.merchant_id", "members.id"],
            name=op.f("fk_points_entries_merchant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_points_entries")),
        sa.UniqueConstraint("merchant_id", "key", name=op.f("uq_points_entries_merchant_id_key")),
    )
    op.create_index(
        op.f("ix_points_entries_merchant_id_member_id_id"),
        "points_entries",
        ["merchant_id", "member_id", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_points_entries_merchant_id_order_id"),
        "points_entries",
        ["merchant_id", "order_id"],
        unique=False,
    )
    op.create_table(
        "points_lots",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("earned_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id", "member_id"],
            ["members.merchant_id", "members.id"],
            name=op.f("fk_points_lots_merchant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_points_lots")),
    )
    op.create_index(
        op.f("ix_points_lots_merchant_id_expires_at"),
        "points_lots",
        ["merchant_id", "expires_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_points_lots_merchant_id_member_id_expires_at"),
        "points_lots",
        ["merchant_id", "member_id", "expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_points_lots_merchant_id_member_id_expires_at"), table_name="points_lots")
    op.drop_index(op.f("ix_points_lots_merchant_id_expires_at"), table_name="points_lots")
    op.drop_table("points_lots")
    op.drop_index(op.f("ix_points_entries_merchant_id_order_id"), table_name="points_entries")
    op.drop_index(op.f("ix_points_entries_merchant_id_member_id_id"), table_name="points_entries")
    op.drop_table("points_entries")
    op.drop_table("points_accounts")
    op.drop_table("mall_member_counts")
    op.drop_table("points_settings")
    op.drop_table("points_rules")
    op.drop_table("mall_items")
    op.drop_index(op.f("ix_mall_exchanges_merchant_id_member_id_id"), table_name="mall_exchanges")
    op.drop_table("mall_exchanges")
    op.drop_index(op.f("ix_goods_vouchers_merchant_id_member_id_id"), table_name="goods_vouchers")
    op.drop_table("goods_vouchers")
