"""Model fits: the record of each refit of the member models (CLV, churn risk, high-potential).

Revision ID: 0019_model_fits
Revises: 0018
Create Date: 2026-11-28 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0019_model_fits"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_fits",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("n_customers", sa.Integer(), nullable=True),
        sa.Column("n_repeat", sa.Integer(), nullable=True),
        sa.Column("n_prospects", sa.Integer(), nullable=True),
        sa.Column("log_likelihood", sa.Float(), nullable=True),
        sa.Column("auc", sa.Float(), nullable=True),
        sa.Column("params", siyu.db.JSONDocument(), nullable=False),
        sa.Column("members_scored", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_model_fits_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "id", name=op.f("pk_model_fits")),
    )
    with op.batch_alter_table("model_fits", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_fits_merchant_id_requested_at"),
            ["merchant_id", "requested_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("model_fits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_fits_merchant_id_requested_at"))
    op.drop_table("model_fits")
