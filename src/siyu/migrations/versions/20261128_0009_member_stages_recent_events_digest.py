"""member_stages: the recent-events digest lifecycle classifies from

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 04:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows get no digest (recent_since NULL): their next classification reads the
    # member's events once and starts one.
    with op.batch_alter_table("member_stages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recent", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("recent_since", siyu.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("member_stages", schema=None) as batch_op:
        batch_op.drop_column("recent_since")
        batch_op.drop_column("recent")
