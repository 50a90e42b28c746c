"""rollup order keys and byte-wise event ids

The events index on ``(merchant_id, occurred_at)`` becomes one on ``received_at``, which only
grows (cheap to maintain at ingestion speed; the mirror's watermark). Rollups are now folded in per batch (see ``MemberRollup``), which needs the tie-break keys of
the first event and of the latest event with a channel or store, and event ids that compare the
same in SQL and in Python (``COLLATE "C"`` on PostgreSQL; SQLite already compares bytes).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 18:42:44.958653
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_ID = sa.String(length=128).with_variant(sa.String(length=128, collation="C"), "postgresql")

_BACKFILL = """
UPDATE member_rollups SET
  first_event_id = (
    SELECT e.event_id FROM events e
    WHERE e.merchant_id = member_rollups.merchant_id AND e.member_id = member_rollups.member_id
    ORDER BY e.occurred_at, e.event_id LIMIT 1),
  last_touch_at = (
    SELECT max(e.occurred_at) FROM events e
    WHERE e.merchant_id = member_rollups.merchant_id AND e.member_id = member_rollups.member_id
      AND (e.channel IS NOT NULL OR e.store_id IS NOT NULL)),
  last_touch_event_id = (
    SELECT e.event_id FROM events e
    WHERE e.merchant_id = member_rollups.merchant_id AND e.member_id = member_rollups.member_id
      AND (e.channel IS NOT NULL OR e.store_id IS NOT NULL)
    ORDER BY e.occurred_at DESC, e.event_id DESC LIMIT 1)
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("events", "event_id", type_=sa.String(length=128, collation="C"))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_merchant_id_occurred_at")
        batch_op.create_index(
            "ix_events_merchant_id_received_at", ["merchant_id", "received_at"], unique=False
        )
    with op.batch_alter_table("member_rollups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_event_id", EVENT_ID, nullable=True))
        batch_op.add_column(sa.Column("last_touch_at", siyu.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_touch_event_id", EVENT_ID, nullable=True))
    op.execute(_BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("member_rollups", schema=None) as batch_op:
        batch_op.drop_column("last_touch_event_id")
        batch_op.drop_column("last_touch_at")
        batch_op.drop_column("first_event_id")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_merchant_id_received_at")
        batch_op.create_index(
            "ix_events_merchant_id_occurred_at", ["merchant_id", "occurred_at"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("events", "event_id", type_=sa.String(length=128))
