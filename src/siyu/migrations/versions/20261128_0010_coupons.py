"""coupon templates, coupons, claim counters and redemptions

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coupon_claim_counts",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("template_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("claimed", sa.Integer(), nullable=False),
        sa.Column("cap", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "merchant_id", "template_id", "member_id", "period_key", name=op.f("pk_coupon_claim_counts")
        ),
    )
    op.create_table(
        "coupon_codes",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("template_id", sa.String(length=40), nullable=False),
        sa.Column("coupon_id", sa.String(length=40), nullable=True),
        sa.Column("claimed_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "code", name=op.f("pk_coupon_codes")),
    )
    with op.batch_alter_table("coupon_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_coupon_codes_merchant_id_template_id_code"),
            ["merchant_id", "template_id", "code"],
            unique=False,
        )

    op.create_table(
        "coupon_redemption_failures",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "merchant_id", "order_id", "code", name=op.f("pk_coupon_redemption_failures")
        ),
    )
    op.create_table(
        "coupon_stock_buckets",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("template_id", sa.String(length=40), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("remaining >= 0", name=op.f("ck_coupon_stock_buckets_remaining_not_negative")),
        sa.PrimaryKeyConstraint("merchant_id", "template_id", "bucket", name=op.f("pk_coupon_stock_buckets")),
    )
    op.create_table(
        "coupon_templates",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value_fen", sa.BigInteger(), nullable=True),
        sa.Column("discount_bp", sa.Integer(), nullable=True),
        sa.Column("cap_fen", sa.BigInteger(), nullable=True),
        sa.Column("item_name", sa.String(length=100), nullable=True),
        sa.Column("threshold_fen", sa.BigInteger(), nullable=True),
        sa.Column("min_spend_fen", sa.BigInteger(), nullable=True),
        sa.Column("code_mode", sa.String(length=16), nullable=False),
        sa.Column("shared_code", sa.String(length=32), nullable=True),
        sa.Column("total_stock", sa.BigInteger(), nullable=False),
        sa.Column("budget_fen", sa.BigInteger(), nullable=True),
        sa.Column("budget_used_fen", sa.BigInteger(), nullable=False),
        sa.Column("redeemed_count", sa.BigInteger(), nullable=False),
        sa.Column("per_member_limit", sa.Integer(), nullable=True),
        sa.Column("period", sa.String(length=8), nullable=True),
        sa.Column("period_limit", sa.Integer(), nullable=True),
        sa.Column("valid_from", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("valid_until", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("valid_days", sa.Integer(), nullable=True),
        sa.Column("store_ids", siyu.db.JSONDocument(), nullable=False),
        sa.Column("channels", siyu.db.JSONDocument(), nullable=False),
        sa.Column("stacking", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("budget_used_fen >= 0", name=op.f("ck_coupon_templates_budget_used_not_negative")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_coupon_templates_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_coupon_templates")),
        sa.UniqueConstraint(
            "merchant_id", "shared_code", name=op.f("uq_coupon_templates_merchant_id_shared_code")
        ),
    )
    with op.batch_alter_table("coupon_templates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_coupon_templates_merchant_id_status_id"),
            ["merchant_id", "status", "id"],
            unique=False,
        )

    op.create_table(
        "coupon_redemptions",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("codes_key", sa.String(length=400), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("discount_fen", sa.BigInteger(), nullable=False),
        sa.Column("store_id", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lines", siyu.db.JSONDocument(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reversed_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id", "member_id"],
            ["members.merchant_id", "members.id"],
            name=op.f("fk_coupon_redemptions_merchant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_coupon_redemptions")),
        sa.UniqueConstraint(
            "merchant_id", "order_id", name=op.f("uq_coupon_redemptions_merchant_id_order_id")
        ),
    )
    with op.batch_alter_table("coupon_redemptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_coupon_redemptions_merchant_id_member_id_id"),
            ["merchant_id", "member_id", "id"],
            unique=False,
        )

    op.create_table(
        "coupons",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("template_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("issued_to", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_ref", sa.String(length=200), nullable=True),
        sa.Column("valid_from", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("valid_until", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("issued_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("redemption_id", sa.String(length=40), nullable=True),
        sa.Column("redeemed_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id", "member_id"],
            ["members.merchant_id", "members.id"],
            name=op.f("fk_coupons_merchant_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_coupons")),
        sa.UniqueConstraint("merchant_id", "code", name=op.f("uq_coupons_merchant_id_code")),
        sa.UniqueConstraint(
            "merchant_id",
            "template_id",
            "issued_to",
            "source",
            "source_ref",
            name=op.f("uq_coupons_merchant_id_template_id_issued_to_source_source_ref"),
        ),
    )
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_coupons_merchant_id_member_id_id"),
            ["merchant_id", "member_id", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_coupons_merchant_id_status_valid_until"),
            ["merchant_id", "status", "valid_until"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_coupons_merchant_id_template_id_status"),
            ["merchant_id", "template_id", "status"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupons_merchant_id_template_id_status"))
        batch_op.drop_index(batch_op.f("ix_coupons_merchant_id_status_valid_until"))
        batch_op.drop_index(batch_op.f("ix_coupons_merchant_id_member_id_id"))

    op.drop_table("coupons")
    with op.batch_alter_table("coupon_redemptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupon_redemptions_merchant_id_member_id_id"))

    op.drop_table("coupon_redemptions")
    with op.batch_alter_table("coupon_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupon_templates_merchant_id_status_id"))

    op.drop_table("coupon_templates")
    op.drop_table("coupon_stock_buckets")
    op.drop_table("coupon_redemption_failures")
    with op.batch_alter_table("coupon_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupon_codes_merchant_id_template_id_code"))

    op.drop_table("coupon_codes")
    op.drop_table("coupon_claim_counts")
